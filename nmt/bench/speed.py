"""Speed benchmark: training and decoding throughput against the machine's matmul peak.

Each phase runs in its own process (so each reports its own peak resident memory, and no
phase's numbers depend on what ran before it):
- `peak`: fp32 matmul GFLOP/s with the same thread count (median of several timed runs);
- `train`: `steps` training steps after `warmup` steps on the config's corpus; target
  tokens/s, model FLOPs per target token (counted on real batches, forward + backward, with
  `torch.utils.flop_counter` and the formulas of `nmt.bench.flops`), achieved GFLOP/s and its
  share of the peak;
- `decode`: greedy and beam-5 decoding of a test split with a trained model directory;
- `train_curve`: target tokens/s of a few training steps at each of several batch sizes;
- `decode_curve`: ms per sentence of greedy and beam-5 decoding against source length, on
  inputs of 1-10, 11-20, ..., 91-100 subword tokens made from the split (`length_inputs`);
- `profile`: the ops with the most self CPU time (`nmt.bench.profile`) in a few training steps
  and, with a trained model, in beam-5 decoding of the split's first N sentences; and the
  share of the peak the training steps' matrix products alone would allow;
- `ab`: two training code paths timed against each other in one process (`nmt.bench.ab`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from nmt.bench.ab import AB_BATCHES, PathB, ab_variables, parse_switches, time_paths
from nmt.bench.decode_variants import parse_variants, variants_phase
from nmt.bench.flops import count_flops
from nmt.config import Config, load_config
from nmt.data.vocab import SubwordVocab, Vocabs
from nmt.errors import NmtError
from nmt.training.device import keep_freed_memory

if TYPE_CHECKING:
    from nmt.decoding.translator import Translator
    from nmt.training.trainer import Trainer

# (name, beam size) of the decoding modes the decode phases time; JSON keys use the names
DECODE_MODES = (("greedy", 1), ("beam5", 5))
CURVE_BUCKETS = tuple((lo, lo + 9) for lo in range(1, 100, 10))  # source subword tokens
CURVE_BATCH_TOKENS = (512, 1024, 2048, 4096, 8192)  # defaults of --curve-batch-tokens
CURVE_INPUTS = 40  # inputs per source-length bucket
CURVE_STEPS = 10  # timed training steps per batch size
PROFILE_TRAIN_STEPS = 8
WARMUP_SENTS = 8  # decoded untimed before decoding is timed or profiled
TRAINING_PHASES = ("peak", "train", "train_curve")  # run with `keep_freed_memory`
PEAK_EVERY = 5  # timed training updates between two matmul peak measurements
PEAK_REPEATS = 3  # timed matmuls per peak measurement inside the train phase


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def matmul_peak_gflops(n: int = 2048, repeats: int = 7, backend: str = "torch") -> float:
    """Median GFLOP/s of an n x n x n fp32 matmul with the current thread count.

    backend "torch": `torch.mm` (MKL's sgemm), the peak the speed issue defines; "onednn":
    the same product through oneDNN (`nmt.cpu.matmul`), which on some CPUs is the faster of
    the two (figures in BENCHMARKS.md): the higher of the two is the machine's fp32 matmul
    peak.
    """
    from nmt.cpu.matmul import onednn_available, onednn_mm_nt

    if backend == "onednn" and not onednn_available():
        return float("nan")
    a, b = torch.randn(n, n), torch.randn(n, n)
    product = (lambda: torch.mm(a, b)) if backend == "torch" else (lambda: onednn_mm_nt(a, b))
    product()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product()
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times) / 1e9


# ---------------------------------------------------------------------------- training


@contextlib.contextmanager
def scratch_model_dir(cfg: Config) -> Iterator[tuple[Path, Vocabs]]:
    """A temporary model directory with subword models trained for `cfg`: (dir, Vocabs)."""
    from nmt.training.trainer import prepare_model_dir

    with tempfile.TemporaryDirectory(prefix="nmt-speed-") as tmp:
        yield Path(tmp), prepare_model_dir(cfg, Path(tmp), quiet=True)


def timed_updates(trainer: Trainer, batches: list[list[int]], start: int,
                  steps: int) -> tuple[int, float]:
    """(target tokens, seconds) of `steps` updates of one batch each, from batches[start] on
    (wrapping around at the end of the list)."""
    tokens, begin = 0, time.perf_counter()
    for i in range(start, start + steps):
        tokens += trainer.train_update([batches[i % len(batches)]])[1]
    return tokens, time.perf_counter() - begin


def counted_flops(trainer: Trainer, batch_indices: list[int]) -> float:
    """Model FLOPs (matmuls etc., as `torch.utils.flop_counter` counts them) of the forward
    and backward pass of one batch (`Trainer.forward_backward`: gradients only, weights and
    optimizer untouched)."""
    return count_flops(lambda: trainer.forward_backward([batch_indices]))


def train_phase(cfg: Config, steps: int, warmup: int) -> dict:
    """`steps` timed updates after `warmup` untimed ones, in blocks of `PEAK_EVERY` updates
    with the matmul peak measured before, between and after the blocks.

    The FLOPs are counted on exactly the timed batches (untimed, without updating). The
    share of the peak is given twice: `train_peak_share`, the median over blocks of the
    block's GFLOP/s over the mean of the two peaks around it (the machine's speed drifts;
    a ratio taken at the same moment does not), and `train_peak_share_of_max`, all blocks'
    GFLOP/s over the highest peak measured (a lower bound). Both against `torch.mm`'s peak;
    `train_peak_share_onednn` is the paired share against oneDNN's peak for the same product,
    measured beside it (the machine's fp32 peak where oneDNN is the faster, see `nmt.cpu.matmul`).
    """
    from nmt.training.trainer import Trainer

    with scratch_model_dir(cfg) as (model_dir, vocabs):
        trainer = Trainer(cfg, model_dir, vocabs, quiet=True)
        batches = trainer.batches.epoch_batches(0)
        if len(batches) < warmup + steps:
            raise NmtError(f"only {len(batches)} batches in an epoch; lower --steps")
        trainer.model.train()
        timed_updates(trainer, batches, 0, warmup)
        peaks, dnn_peaks, blocks = [matmul_peak_gflops(repeats=PEAK_REPEATS)], [], []
        dnn_peaks.append(matmul_peak_gflops(repeats=PEAK_REPEATS, backend="onednn"))
        for start in range(warmup, warmup + steps, PEAK_EVERY):
            n = min(PEAK_EVERY, warmup + steps - start)
            blocks.append((start, n, *timed_updates(trainer, batches, start, n)))
            peaks.append(matmul_peak_gflops(repeats=PEAK_REPEATS))
            dnn_peaks.append(matmul_peak_gflops(repeats=PEAK_REPEATS, backend="onednn"))
        flops = [sum(counted_flops(trainer, batches[i]) for i in range(start, start + n))
                 for start, n, _, _ in blocks]
    tokens = sum(b[2] for b in blocks)
    seconds = sum(b[3] for b in blocks)
    gflops = sum(flops) / seconds / 1e9

    def paired(peak_list: list[float]) -> list[float]:
        return [f / sec / 1e9 / ((peak_list[i] + peak_list[i + 1]) / 2)
                for i, (f, (_, _, _, sec)) in enumerate(zip(flops, blocks, strict=True))]

    shares = paired(peaks)
    return {"train_tokens_per_s": tokens / seconds, "train_flops_per_token": sum(flops) / tokens,
            "train_gflops": gflops, "train_peak_share": statistics.median(shares),
            "train_peak_share_of_max": gflops / max(peaks), "train_block_shares": shares,
            "matmul_peak_gflops_train": peaks,
            "train_peak_share_onednn": statistics.median(paired(dnn_peaks)),
            "matmul_peak_gflops_onednn_train": dnn_peaks, "train_steps": steps,
            "train_seconds": seconds, "train_peak_rss_mib": peak_rss_mib()}


def train_curve_phase(cfg: Config, batch_tokens: list[int], steps: int, warmup: int) -> dict:
    """Target tokens/s against `train.batch_tokens`: for each size a fresh model (same seed),
    `warmup` untimed then `steps` timed updates on the epoch's batches (reused if too few)."""
    from nmt.training.trainer import Trainer

    points = []
    with scratch_model_dir(cfg) as (model_dir, vocabs):
        for size in batch_tokens:
            sized = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train,
                                                                       batch_tokens=size))
            trainer = Trainer(sized, model_dir, vocabs, quiet=True)
            batches = trainer.batches.epoch_batches(0)
            trainer.model.train()
            timed_updates(trainer, batches, 0, warmup)
            tokens, seconds = timed_updates(trainer, batches, warmup, steps)
            points.append({"batch_tokens": size, "tgt_tokens_per_s": tokens / seconds,
                           "tgt_tokens_per_step": tokens / steps,
                           "ms_per_step": 1000 * seconds / steps})
    return {"train_curve": points}


# ---------------------------------------------------------------------------- decoding


def decoding_setup(cfg: Config, checkpoint: str, split: str,
                   modes: tuple[tuple[str, int], ...] = DECODE_MODES
                   ) -> tuple[dict[str, Translator], SubwordVocab, list[str]]:
    """A checkpoint's translators by mode name (one per (name, beam) of `modes`), its source
    vocabulary, and the source lines of `split` (read as `cfg.data` says)."""
    from nmt.bench.bleu import load_pairs
    from nmt.checkpoint import load_for_inference
    from nmt.decoding.translator import Translator

    model, model_cfg, vocabs = load_for_inference(checkpoint)  # what `translate` runs
    src, _ = load_pairs(dataclasses.replace(model_cfg, data=cfg.data), split)
    translators = {name: Translator(model, vocabs.src, vocabs.tgt,
                                    dataclasses.replace(model_cfg.decode, beam_size=beam))
                   for name, beam in modes}
    return translators, vocabs.src, src


def decode_phase(cfg: Config, checkpoint: str, split: str) -> dict:
    from nmt.bench.bleu import decode_split

    translators, _, src = decoding_setup(cfg, checkpoint, split)
    out = {"decode_split": split, "decode_sentences": len(src)}
    for name, translator in translators.items():
        _, speed = decode_split(translator, src)
        out[f"decode_{name}_sents_per_s"] = speed["sents_per_s"]
        out[f"decode_{name}_tokens_per_s"] = speed["tgt_tokens_per_s"]
    out["decode_peak_rss_mib"] = peak_rss_mib()
    return out


def _cut(lines: list[list[str]], start: int, n_tokens: Callable[[str], int], target: int,
         lo: int, hi: int) -> tuple[str, int] | None:
    """The words of lines[start], lines[start + 1], ... (wrapping around) joined with spaces
    until the text has >= `target` tokens: that text if it has <= `hi`, else the text one
    word shorter if it has >= `lo`, else None. Returns (text, index of the line after its
    last word). Gives up (None) after `hi` + 1 words: every word is taken to add a token."""
    words: list[str] = []
    shorter, i = None, start
    while len(words) <= hi:
        for word in lines[i % len(lines)]:
            words.append(word)
            text = " ".join(words)
            n = n_tokens(text)
            if n >= target:
                return (text, i + 1) if n <= hi else shorter
            shorter = (text, i + 1) if n >= lo else None
        i += 1
    return None


def length_inputs(lines: list[str], n_tokens: Callable[[str], int], lo: int, hi: int,
                  n: int) -> list[str]:
    """`n` texts of `lo`..`hi` tokens (as `n_tokens(text)` counts) made from consecutive
    `lines`, deterministically.

    Text i aims at lo + i % (hi - lo + 1) tokens, so the lengths spread over the bucket:
    lines are joined and cut at a word boundary by `_cut`, the first text starting at the
    first line and each next one at the line after the last line used (wrapping around). A
    start line from which no text fits the bucket is skipped.
    """
    words = [line.split() for line in lines if line.split()]
    out: list[str] = []
    start, skipped = 0, 0
    while len(out) < n:
        if skipped >= len(words):
            raise NmtError(f"no text of {lo}-{hi} tokens can be made from these lines")
        got = _cut(words, start, n_tokens, lo + len(out) % (hi - lo + 1), lo, hi)
        if got is None:
            start, skipped = start + 1, skipped + 1
            continue
        out.append(got[0])
        start, skipped = got[1], 0
    return out


def decode_curve_phase(cfg: Config, checkpoint: str, split: str, per_bucket: int) -> dict:
    """Per source-length bucket (`CURVE_BUCKETS`): `per_bucket` inputs from `length_inputs`,
    their mean subword length, and ms per sentence of each decoding mode (one timed
    `translate` call per mode and bucket, batched by the checkpoint's decode batch size)."""
    translators, vocab, src = decoding_setup(cfg, checkpoint, split)

    def n_tokens(text: str) -> int:
        return len(vocab.encode([text])[0])

    for translator in translators.values():
        translator.translate(src[:WARMUP_SENTS])
    curve = []
    for lo, hi in CURVE_BUCKETS:
        inputs = length_inputs(src, n_tokens, lo, hi, per_bucket)
        point = {"bucket": [lo, hi], "n": len(inputs),
                 "mean_src_len": statistics.mean(n_tokens(t) for t in inputs)}
        for name, translator in translators.items():
            begin = time.perf_counter()
            translator.translate(inputs)
            point[f"{name}_ms_per_sent"] = 1000 * (time.perf_counter() - begin) / len(inputs)
        curve.append(point)
    return {"decode_curve": curve}


# ---------------------------------------------------------------------------- profile


def _fp32_peak() -> float:
    """The faster of torch's and oneDNN's matmul peaks (oneDNN's is nan where unavailable)."""
    return max(g for g in (matmul_peak_gflops(repeats=PEAK_REPEATS),
                           matmul_peak_gflops(repeats=PEAK_REPEATS, backend="onednn")) if g == g)


def profile_phase(cfg: Config, checkpoint: str | None, split: str, n_sents: int,
                  warmup: int) -> dict:
    """Top ops by self CPU time of `PROFILE_TRAIN_STEPS` training updates (after `warmup`
    untimed ones) and, with a checkpoint, of beam-5 decoding of the first `n_sents` lines
    of `split` (after an untimed warm-up decode).

    Also how far the matrix products alone bound the share of the peak: over the profiled
    updates, the products' share of the wall time (`profile_train_product_time_share`),
    the GFLOP/s of the counted FLOPs over the products' own time
    (`profile_train_product_gflops`), and that over the fp32 matmul peak, the faster of
    torch's and oneDNN's, measured before and after them (`profile_train_share_bound`: the
    share of the peak if nothing but the products took time).
    """
    from nmt.bench.profile import profile_run, top_ops
    from nmt.training.trainer import Trainer

    with scratch_model_dir(cfg) as (model_dir, vocabs):
        trainer = Trainer(cfg, model_dir, vocabs, quiet=True)
        batches = trainer.batches.epoch_batches(0)
        trainer.model.train()
        timed_updates(trainer, batches, 0, warmup)
        # profiled twice, the first run untimed: the profiler's own allocations grow the heap
        # (`keep_freed_memory`), and the page faults of that growth would land on the products
        profile_run(lambda: timed_updates(trainer, batches, warmup, PROFILE_TRAIN_STEPS))
        peaks = [_fp32_peak()]  # before and after the profiled run (the machine drifts)
        prof = profile_run(lambda: timed_updates(trainer, batches, warmup, PROFILE_TRAIN_STEPS))
        peaks.append(_fp32_peak())
        flops = sum(counted_flops(trainer, batches[i % len(batches)])
                    for i in range(warmup, warmup + PROFILE_TRAIN_STEPS))
        peak = statistics.mean(peaks)
        product_gflops = flops / (prof.product_ms / 1000) / 1e9
        out = {"profile_train": prof.ops,
               "profile_train_product_time_share": prof.product_ms / prof.wall_ms,
               "profile_train_product_gflops": product_gflops,
               "profile_train_peak_gflops": peak,
               "profile_train_share_bound": product_gflops / peak}
    if checkpoint:
        translators, _, src = decoding_setup(cfg, checkpoint, split, modes=(("beam5", 5),))
        beam = translators["beam5"]
        beam.translate(src[:WARMUP_SENTS])
        out["profile_decode_beam5"] = top_ops(lambda: beam.translate(src[:n_sents]))
    return out


# ---------------------------------------------------------------------------- processes


def ab_phase(cfg: Config, path_b: PathB, pairs: int, warmup: int) -> dict:
    """Training with the switches of `path_b` against those in force, in this process
    (`nmt.bench.ab`)."""
    from nmt.training.trainer import Trainer

    with scratch_model_dir(cfg) as (model_dir, vocabs):
        return time_paths(Trainer(cfg, model_dir, vocabs, quiet=True), path_b, pairs, warmup)


PHASES = ("peak", "train", "decode", "train_curve", "decode_curve", "profile", "variants", "ab")


def options() -> list[tuple[str, dict]]:
    """The options the front end (`nmt.cli.speed`, `scripts/bench_speed.py`) takes and passes
    on to each phase process, declared once: (flag, keywords of `add_argument`)."""
    return [
        ("--config", dict(required=True, metavar="FILE")),
        ("--checkpoint", dict(metavar="DIR", help="trained model for decoding speed")),
        ("--split", dict(default="test_2016_flickr", help="split to decode")),
        ("--steps", dict(type=int, default=50, help="timed training steps")),
        ("--warmup", dict(type=int, default=20,
                          help="untimed steps first (the allocator and caches settle)")),
        ("--threads", dict(type=int, default=torch.get_num_threads(),
                           help="torch threads (default: %(default)s)")),
        ("--set", dict(action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="config override (repeatable)")),
        ("--curve-inputs", dict(type=int, default=CURVE_INPUTS, metavar="N",
                                help="decoding inputs per source-length bucket")),
        ("--curve-batch-tokens", dict(type=int, nargs="+", metavar="N",
                                      default=list(CURVE_BATCH_TOKENS),
                                      help="batch sizes to train with")),
        ("--curve-steps", dict(type=int, default=CURVE_STEPS, metavar="N",
                               help="timed training steps per batch size (after --warmup)")),
        ("--profile", dict(type=int, default=0, metavar="N",
                           help="profile a few training steps and (with --checkpoint) beam-5 "
                                "decoding of N sentences of --split")),
        ("--variants", dict(metavar="LIST",
                            help="with --checkpoint: time and score decoding with each of "
                                 "plain,fused,int8,shortlist,int8+shortlist (comma-separated)")),
        ("--ab", dict(action="append", default=[], metavar="NMT_NAME=VALUE",
                      help="also time training with this switch set (path B) against the "
                           "switches as the environment sets them (path A) in one process, on "
                           f"the same batches; repeatable ({', '.join(ab_variables())})")),
        ("--ab-pairs", dict(type=int, default=20, metavar="N",
                            help=f"timed A/B pairs (each path on the same {AB_BATCHES} "
                                 "batches)")),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The shared options (`options`) on `parser`."""
    for flag, keywords in options():
        parser.add_argument(flag, **keywords)


def phase_argv(args: argparse.Namespace) -> list[str]:
    """The shared options' values in `args` as the command line of a phase process."""
    argv: list[str] = []
    for flag, keywords in options():
        value = getattr(args, flag[2:].replace("-", "_"))
        if keywords.get("action") == "append":
            for item in value:
                argv += [flag, item]
        elif keywords.get("nargs") == "+":
            argv += [flag, *[str(v) for v in value]]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def phase_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nmt.bench.speed")
    parser.add_argument("--phase", required=True, choices=PHASES)
    add_arguments(parser)
    return parser


def run_phase(args: argparse.Namespace, phase: str) -> dict:
    """One phase in a child process (its own peak memory); returns the child's JSON."""
    argv = ["--phase", phase, *phase_argv(args)]
    res = subprocess.run([sys.executable, "-m", "nmt.bench.speed", *argv], capture_output=True,
                         text=True, check=False)
    if res.returncode != 0:
        raise NmtError(f"speed phase '{phase}' failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def child_main(argv: list[str] | None = None) -> None:
    args = phase_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.phase in (*TRAINING_PHASES, "ab"):  # as training (`Trainer`); decoding does not
        keep_freed_memory()
    if args.phase == "peak":
        print(json.dumps({"matmul_peak_gflops": matmul_peak_gflops(),
                          "matmul_peak_gflops_onednn": matmul_peak_gflops(backend="onednn")}))
        return
    cfg = load_config(args.config, args.set)
    phases = {
        "train": lambda: train_phase(cfg, args.steps, args.warmup),
        "decode": lambda: decode_phase(cfg, args.checkpoint, args.split),
        "train_curve": lambda: train_curve_phase(cfg, args.curve_batch_tokens,
                                                 args.curve_steps, args.warmup),
        "decode_curve": lambda: decode_curve_phase(cfg, args.checkpoint, args.split,
                                                   args.curve_inputs),
        "profile": lambda: profile_phase(cfg, args.checkpoint, args.split, args.profile,
                                         args.warmup),
        "variants": lambda: variants_phase(cfg, args.checkpoint, args.split,
                                           parse_variants(args.variants)),
        "ab": lambda: ab_phase(cfg, parse_switches(args.ab), args.ab_pairs, args.warmup),
    }
    print(json.dumps(phases[args.phase]()))


if __name__ == "__main__":
    child_main()
