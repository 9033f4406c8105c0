"""`bench_speed --config FILE --json OUT`: training/decoding speed against the matmul peak."""

from __future__ import annotations

import argparse
import json

from nmt.commands import run_guarded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import torch

    parser.add_argument("--config", required=True, metavar="FILE")
    parser.add_argument("--data", metavar="DIR", help="corpus folder (sets data.path)")
    parser.add_argument("--json", required=True, metavar="OUT", help="results file")
    parser.add_argument("--checkpoint", metavar="DIR", help="trained model for decoding speed")
    parser.add_argument("--split", default="test_2016_flickr", help="split to decode")
    parser.add_argument("--steps", type=int, default=50, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")


def run(args: argparse.Namespace) -> int:
    from nmt.benchmark import git_commit, machine_info
    from nmt.io import atomic_open
    from nmt.speed import run_phase

    if args.data:
        args.set = [f"data.path={args.data}", *args.set]
    result = {"config": args.config, "commit": git_commit(), "machine": machine_info(),
              "threads": args.threads, **run_phase(args, "peak"), **run_phase(args, "train")}
    result["train_peak_share"] = result["train_gflops"] / result["matmul_peak_gflops"]
    if args.checkpoint:
        result.update(run_phase(args, "decode"))
    with atomic_open(args.json) as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    for key, value in result.items():
        if isinstance(value, float):
            print(f"{key}: {value:.4g}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_speed", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
