"""Speed benchmark: training and decoding throughput against the machine's matmul peak.

Each phase runs in its own process (so each reports its own peak resident memory):
- `peak`: fp32 matmul GFLOP/s with the same thread count (median of several timed runs);
- `train`: `steps` training steps after `warmup` steps on the config's corpus; target
  tokens/s, model FLOPs per target token (counted with `torch.utils.flop_counter` on real
  batches, forward + backward), achieved GFLOP/s and its share of the peak;
- `decode`: greedy and beam-5 decoding of a test split with a trained model directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from nmt.config import Config, load_config
from nmt.errors import NmtError


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def matmul_peak_gflops(n: int = 2048, repeats: int = 7) -> float:
    """Median GFLOP/s of an n x n x n fp32 matmul with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def train_phase(cfg: Config, steps: int, warmup: int) -> dict:
    from nmt.train import Trainer, prepare_model_dir

    model_dir = Path(tempfile.mkdtemp(prefix="nmt-speed-"))
    vocabs = prepare_model_dir(cfg, model_dir, quiet=True)
    trainer = Trainer(cfg, model_dir, vocabs, quiet=True)
    batches = trainer.batches.epoch_batches(0)
    if len(batches) < warmup + steps + 1:
        raise NmtError(f"only {len(batches)} batches in an epoch; lower --steps")
    trainer.model.train()
    for i in range(warmup):
        trainer.train_update([batches[i]])
    with FlopCounterMode(display=False) as counter:  # one counted step, not timed
        _, counted_tokens = trainer.train_update([batches[warmup]])
    flops_per_token = counter.get_total_flops() / counted_tokens
    tokens, start = 0, time.perf_counter()
    for i in range(warmup + 1, warmup + 1 + steps):
        tokens += trainer.train_update([batches[i]])[1]
    seconds = time.perf_counter() - start
    return {"train_tokens_per_s": tokens / seconds, "train_flops_per_token": flops_per_token,
            "train_gflops": tokens / seconds * flops_per_token / 1e9, "train_steps": steps,
            "train_seconds": seconds, "train_peak_rss_mib": peak_rss_mib()}


def decode_phase(cfg: Config, checkpoint: str, split: str) -> dict:
    from nmt.benchmark import decode_split, load_pairs
    from nmt.checkpoint import load_model
    from nmt.translator import Translator

    model, model_cfg, vocabs = load_model(checkpoint)
    src, _ = load_pairs(dataclasses.replace(model_cfg, data=cfg.data), split)
    out = {"decode_split": split, "decode_sentences": len(src)}
    for name, beam in (("greedy", 1), ("beam5", 5)):
        decode = dataclasses.replace(model_cfg.decode, beam_size=beam)
        _, speed = decode_split(Translator(model, vocabs.src, vocabs.tgt, decode), src)
        out[f"decode_{name}_sents_per_s"] = speed["sents_per_s"]
        out[f"decode_{name}_tokens_per_s"] = speed["tgt_tokens_per_s"]
    out["decode_peak_rss_mib"] = peak_rss_mib()
    return out


def phase_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nmt.speed")
    parser.add_argument("--phase", choices=("peak", "train", "decode"), required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--checkpoint")
    parser.add_argument("--split", default="test_2016_flickr")
    parser.add_argument("--set", action="append", default=[])
    return parser


def run_phase(args: argparse.Namespace, phase: str) -> dict:
    """One phase in a child process (its own peak memory); returns the child's JSON."""
    argv = ["--phase", phase, "--config", args.config, "--threads", str(args.threads),
            "--steps", str(args.steps), "--warmup", str(args.warmup), "--split", args.split]
    argv += ["--checkpoint", args.checkpoint] if args.checkpoint else []
    for override in args.set:
        argv += ["--set", override]
    res = subprocess.run([sys.executable, "-m", "nmt.speed", *argv], capture_output=True,
                         text=True, check=False)
    if res.returncode != 0:
        raise NmtError(f"speed phase '{phase}' failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def child_main(argv: list[str] | None = None) -> None:
    args = phase_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.phase == "peak":
        print(json.dumps({"matmul_peak_gflops": matmul_peak_gflops()}))
        return
    cfg = load_config(args.config, args.set)
    if args.phase == "train":
        print(json.dumps(train_phase(cfg, args.steps, args.warmup)))
    else:
        print(json.dumps(decode_phase(cfg, args.checkpoint, args.split)))


if __name__ == "__main__":
    child_main()
