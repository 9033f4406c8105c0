"""Two checkouts of `nmt` timed against each other in lockstep (`scripts/bench_paired.py`).

On a shared machine, whole runs a minute apart differ by more than a refactoring is allowed to
cost, so this starts one worker process per checkout (`PYTHONPATH` = the checkout), each
loads its model once and then waits; the driver asks the two in turn to run the same job and
report its seconds, in the order A B, B A, A B, ... (the one waiting uses no CPU). The result
is the median over pairs of seconds(B) / seconds(A), with the range: above 1, B is slower.

Jobs:
- `decode`: translate the first `--lines` lines of `--input` with the model directory
  `--checkpoint`, beam `--beam`, fp32 or `--quantize`, with or without `--shortlist`; each side
  also reports a hash of its output, and the driver checks that both sides wrote the same
  bytes in every job.
- `train`: forward and backward (gradients only, no optimizer step, so every job does the same
  work on the same weights) of `--batches` training batches of `--config`, the same batches
  on both sides: the training update without Adam's step, which both checkouts share.

The worker runs inside the other checkout, so it uses only what both layouts offer; module
paths that the package redesign (2026-12-05) moved are looked up under either name.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from nmt.cli.guard import run_guarded
from nmt.errors import NmtError

WORKER = r'''
import hashlib, importlib, json, sys, tempfile, time
from pathlib import Path
import torch

def first(*names):  # a module that moved in the redesign: the new path, else the old one
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            pass
    raise ImportError(names)

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
if args["job"] == "decode":
    import dataclasses
    load = getattr(first("nmt.checkpoint"), "load_for_inference", None) or \
        first("nmt.inference").load_for_inference
    Translator = first("nmt.decoding.translator", "nmt.translator").Translator
    Shortlist = first("nmt.decoding.shortlist", "nmt.shortlist").Shortlist
    model, cfg, vocabs = load(args["checkpoint"], quantize=args["quantize"])
    shortlist = Shortlist.beside(args["checkpoint"], vocabs) if args["shortlist"] else None
    decode = dataclasses.replace(cfg.decode, beam_size=args["beam"])
    translator = Translator(model, vocabs.src, vocabs.tgt, decode, shortlist=shortlist)
    with open(args["input"], encoding="utf-8") as f:
        lines = f.read().splitlines()[: args["lines"]]

    def job(i):
        texts = [t.text for t in translator.translate(lines)]
        return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
else:
    from nmt.config import load_config
    trainer_module = first("nmt.training.trainer", "nmt.train")
    cfg = load_config(args["config"], args["set"])
    model_dir = Path(tempfile.mkdtemp(prefix="nmt-paired-"))
    vocabs = trainer_module.prepare_model_dir(cfg, model_dir, quiet=True)
    trainer = trainer_module.Trainer(cfg, model_dir, vocabs, quiet=True)
    batches = trainer.batches.epoch_batches(0)
    trainer.model.train()
    gradients = getattr(trainer, "forward_backward", None) or \
        (lambda groups: trainer.train_update(groups, step=False))
    n = args["batches"]

    def job(i):
        for k in range(n):
            gradients([batches[(i * n + k) % len(batches)]])
        return ""
print("ready", flush=True)
for line in sys.stdin:
    i = int(line)
    start = time.perf_counter()
    digest = job(i)
    print(json.dumps({"seconds": time.perf_counter() - start, "digest": digest}), flush=True)
'''


class Worker:
    def __init__(self, checkout: Path, job_args: dict):
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(job_args)],
                                     cwd=checkout, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise NmtError(f"{checkout}: the worker did not start (see its messages above)")

    def run(self, i: int) -> dict:
        self.proc.stdin.write(f"{i}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise NmtError("a worker stopped (see its messages above)")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def compare(a: Path, b: Path, job_args: dict, pairs: int, warmup: int) -> dict:
    workers = {"A": Worker(a, job_args), "B": Worker(b, job_args)}
    try:
        for i in range(warmup):
            for w in workers.values():
                w.run(i)
        seconds: dict[str, list[float]] = {"A": [], "B": []}
        for i in range(pairs):
            results = {name: workers[name].run(warmup + i) for name in ("AB" if i % 2 == 0
                                                                        else "BA")}
            if results["A"]["digest"] != results["B"]["digest"]:
                raise NmtError(f"job {warmup + i}: the two checkouts wrote different output")
            for name in "AB":
                seconds[name].append(results[name]["seconds"])
    finally:
        for w in workers.values():
            w.close()
    ratios = [sb / sa for sa, sb in zip(seconds["A"], seconds["B"], strict=True)]
    return {"a": str(a), "b": str(b), "job": job_args, "pairs": pairs,
            "ratio_b_over_a": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "seconds_a": seconds["A"], "seconds_b": seconds["B"],
            "same_output": job_args["job"] == "decode"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_paired", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", choices=["decode", "train"])
    parser.add_argument("--a", required=True, type=Path, help="checkout A (e.g. a worktree)")
    parser.add_argument("--b", required=True, type=Path, help="checkout B")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2, help="untimed jobs per side first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the result here")
    decode = parser.add_argument_group("decode")
    decode.add_argument("--checkpoint", help="model directory")
    decode.add_argument("--input", help="source lines")
    decode.add_argument("--lines", type=int, default=300)
    decode.add_argument("--beam", type=int, default=5)
    decode.add_argument("--quantize", action="store_true")
    decode.add_argument("--shortlist", action="store_true")
    train = parser.add_argument_group("train")
    train.add_argument("--config", help="training config")
    train.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    train.add_argument("--batches", type=int, default=3, help="batches per job")


def _check_inputs(args: argparse.Namespace) -> None:
    """One line for what the workers would otherwise fail on with a traceback."""
    for flag, path in (("--a", args.a), ("--b", args.b)):
        if not (path / "nmt" / "__init__.py").is_file():
            raise NmtError(f"{flag} {path}: not a checkout of nmt (no nmt/__init__.py)")
    files = {"decode": (("--checkpoint", args.checkpoint, "dir"), ("--input", args.input, "file")),
             "train": (("--config", args.config, "file"),)}[args.job]
    for flag, value, kind in files:
        if not value:
            raise NmtError(f"{args.job} needs {' and '.join(f for f, _, _ in files)}")
        if not (Path(value).is_dir() if kind == "dir" else Path(value).is_file()):
            raise NmtError(f"{flag} {value}: no such {'folder' if kind == 'dir' else 'file'}")
    for flag in ("pairs", "lines", "batches"):
        if getattr(args, flag) < 1:
            raise NmtError(f"--{flag}: must be >= 1")


def run(args: argparse.Namespace) -> int:
    _check_inputs(args)
    job_args = {"job": args.job, "threads": args.threads}
    if args.job == "decode":
        job_args.update(checkpoint=str(Path(args.checkpoint).resolve()),
                        input=str(Path(args.input).resolve()), lines=args.lines,
                        beam=args.beam, quantize=args.quantize, shortlist=args.shortlist)
    else:
        job_args.update(config=str(Path(args.config).resolve()), set=args.set,
                        batches=args.batches)
    result = compare(args.a.resolve(), args.b.resolve(), job_args, args.pairs, args.warmup)
    print(f"{args.job}: B/A seconds, median of {args.pairs} pairs: "
          f"{result['ratio_b_over_a']:.3f} (range {result['ratio_min']:.3f}-"
          f"{result['ratio_max']:.3f}); A {statistics.median(result['seconds_a']):.3f} s, "
          f"B {statistics.median(result['seconds_b']):.3f} s per job"
          + ("; identical output in every job" if result["same_output"] else ""))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0
