"""Training throughput of 1 process vs N gloo processes (torchrun) on the same machine.

Each run trains the same config for the same number of optimizer updates with the same
global batch: one process with `batch_tokens * N` tokens per update (as N micro-batches,
`update_freq` N) and all the machine's threads, then N processes with `batch_tokens` each
and threads split evenly among them (OMP_NUM_THREADS). Target tokens/s is measured by the
training loop itself over the timed updates (the first `--warmup` updates excluded), read
from the runs' `train.log`. Usage:

    python scripts/bench_ddp.py --config data/configs/multi30k_de_en.yaml --procs 2 \\
        --steps 60 --work runs/bench_ddp --json ddp.json
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG_LINE = re.compile(r"step (\d+) .* tokens/s (\d+)")


def tokens_per_s(log: Path, warmup: int) -> float:
    """Mean of the logged tokens/s after the warm-up steps."""
    rates = [int(m.group(2)) for m in map(LOG_LINE.search, log.read_text().splitlines())
             if m and int(m.group(1)) > warmup]
    if not rates:
        raise SystemExit(f"{log}: no tokens/s logged after step {warmup}")
    return sum(rates) / len(rates)


def run(cmd: list[str], threads: int, log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with open(log, "w") as f:
        res = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"failed ({res.returncode}): {' '.join(cmd)}; see {log}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--work", default="runs/bench_ddp")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    common = ["--config", args.config, "--quiet", "--set", f"train.max_steps={args.steps}",
              "--set", f"train.validate_every={10 * args.steps}", "--set", "train.log_every=5",
              "--set", "data.max_dev_pairs=20", "--set", "train.keep_checkpoints=0"]
    single = [sys.executable, "scripts/train.py", "--model-dir", str(work / "one"), *common,
              "--set", f"train.update_freq={args.procs}"]
    multi = [sys.executable, "-m", "torch.distributed.run", "--standalone",
             f"--nproc_per_node={args.procs}", "scripts/train.py",
             "--model-dir", str(work / "multi"), *common]
    run(single, args.threads, work / "one.out")
    run(multi, max(1, args.threads // args.procs), work / "multi.out")
    result = {"config": args.config, "procs": args.procs, "steps": args.steps,
              "threads": args.threads,
              "one_process_tokens_per_s": tokens_per_s(work / "one" / "train.log", args.warmup),
              "multi_process_tokens_per_s": tokens_per_s(work / "multi" / "train.log",
                                                         args.warmup)}
    result["speedup"] = result["multi_process_tokens_per_s"] / result["one_process_tokens_per_s"]
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
