"""Training throughput of 1 process vs N gloo processes (torchrun) on the same machine.

Each run trains the same config for the same number of optimizer updates with the same
global batch: one process with `batch_tokens * N` tokens per update (as N micro-batches,
`update_freq` N) and all the machine's threads, then N processes with `batch_tokens` each
and threads split evenly among them (OMP_NUM_THREADS). Both are `nmt train` in child
processes (`python -m nmt.cli train`, under `torch.distributed.run` for the N processes).
Target tokens/s is measured by the training loop itself over the timed updates (the first
`--warmup` updates excluded), read from the runs' `train.log`. Usage:

    python scripts/bench_ddp.py --config data/configs/multi30k_de_en.yaml --procs 2 \\
        --steps 60 --work runs/bench_ddp --json ddp.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nmt
from nmt.cli.guard import run_guarded
from nmt.errors import NmtError

PACKAGE_ROOT = Path(nmt.__file__).resolve().parents[1]  # the folder holding `nmt`
LOG_LINE = re.compile(r"step (\d+) .* tokens/s (\d+)")


def tokens_per_s(log: Path, warmup: int) -> float:
    """Mean of the logged tokens/s after the warm-up steps."""
    rates = [int(m.group(2)) for m in map(LOG_LINE.search, log.read_text().splitlines())
             if m and int(m.group(1)) > warmup]
    if not rates:
        raise NmtError(f"{log}: no tokens/s logged after step {warmup}")
    return sum(rates) / len(rates)


def train_command(model_dir: Path, train_args: list[str], procs: int = 1) -> list[str]:
    """`nmt train --model-dir DIR ARGS` as a child process of this Python: `procs` > 1 runs
    that many ranks under `torch.distributed.run` (standalone, on this machine)."""
    launcher = ([] if procs == 1 else
                ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"])
    return [sys.executable, *launcher, "-m", "nmt.cli", "train", "--model-dir", str(model_dir),
            *train_args]


def run_logged(cmd: list[str], threads: int, log: Path) -> None:
    """`cmd` with `threads` OpenMP threads, stdout and stderr into `log`; this `nmt` first on
    the child's import path (as the scripts put it on theirs)."""
    path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": path}
    with open(log, "w") as f:
        res = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, check=False)
    if res.returncode != 0:
        raise NmtError(f"failed ({res.returncode}): {' '.join(cmd)}; see {log}")


def compare(config: str, procs: int, steps: int, warmup: int, threads: int,
            work: Path) -> dict:
    """Train `config` once in one process and once in `procs` processes into `work` (emptied
    first); the two runs' tokens/s after `warmup` steps and their ratio."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    common = ["--config", config, "--quiet", "--set", f"train.max_steps={steps}",
              "--set", f"train.validate_every={10 * steps}", "--set", "train.log_every=5",
              "--set", "data.max_dev_pairs=20", "--set", "train.keep_checkpoints=0"]
    run_logged(train_command(work / "one", [*common, "--set", f"train.update_freq={procs}"]),
               threads, work / "one.out")
    run_logged(train_command(work / "multi", common, procs), max(1, threads // procs),
               work / "multi.out")
    result = {"config": config, "procs": procs, "steps": steps, "threads": threads,
              "one_process_tokens_per_s": tokens_per_s(work / "one" / "train.log", warmup),
              "multi_process_tokens_per_s": tokens_per_s(work / "multi" / "train.log", warmup)}
    result["speedup"] = result["multi_process_tokens_per_s"] / result["one_process_tokens_per_s"]
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--work", default="runs/bench_ddp")
    parser.add_argument("--json")


def run(args: argparse.Namespace) -> int:
    result = compare(args.config, args.procs, args.steps, args.warmup, args.threads,
                     Path(args.work))
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_ddp", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
