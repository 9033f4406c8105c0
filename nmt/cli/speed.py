"""`bench_speed --config FILE --json OUT`: training/decoding speed against the matmul peak.

Optionally also how the cost grows (`--curves`: JSON `train_curve`, `decode_curve`) and where
the CPU time goes (`--profile N`: JSON `profile_train`, `profile_decode_beam5`, and the share
of the peak the training steps' products alone allow, `profile_train_share_bound`), and one
training code path against another in one process (`--ab NMT_NAME=VALUE`: `ab_time_ratio`).
"""

from __future__ import annotations

import argparse
import json

from nmt.cli.guard import run_guarded
from nmt.errors import NmtError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This front end's own options around those it passes on to each phase process
    (declared in `nmt.bench.speed.options`)."""
    from nmt.bench.speed import add_arguments as add_phase_arguments

    parser.add_argument("--data", metavar="DIR", help="corpus folder (sets data.path)")
    parser.add_argument("--json", required=True, metavar="OUT", help="results file")
    add_phase_arguments(parser)
    parser.add_argument("--curves", action="store_true",
                        help="also time training against batch size and (with --checkpoint) "
                             "decoding against source length; takes minutes")
    parser.add_argument("--skip-train", action="store_true",
                        help="leave out the training phases (decoding figures only)")


def check_arguments(args: argparse.Namespace) -> None:
    from nmt.bench.ab import parse_switches

    parse_switches(args.ab)
    for name in ("steps", "curve_inputs", "curve_steps", "ab_pairs"):
        if getattr(args, name) < 1:
            raise NmtError(f"--{name.replace('_', '-')}: must be >= 1")
    if args.warmup < 0 or args.profile < 0 or min(args.curve_batch_tokens) < 1:
        raise NmtError("--warmup and --profile must be >= 0, --curve-batch-tokens >= 1")
    if args.variants is not None:
        from nmt.bench.decode_variants import parse_variants

        parse_variants(args.variants)
        if not args.checkpoint:
            raise NmtError("--variants: needs --checkpoint")


def run(args: argparse.Namespace) -> int:
    from nmt.bench.bleu import git_commit, machine_info
    from nmt.bench.speed import run_phase
    from nmt.io import atomic_open

    check_arguments(args)
    if args.data:
        args.set = [f"data.path={args.data}", *args.set]
    result = {"config": args.config, "commit": git_commit(), "machine": machine_info(),
              "threads": args.threads, **run_phase(args, "peak")}
    if not args.skip_train:
        result.update(run_phase(args, "train"))  # its own peaks, taken between timed blocks
    if args.checkpoint:
        result.update(run_phase(args, "decode"))
    if args.variants:
        result.update(run_phase(args, "variants"))
    if args.curves:
        if not args.skip_train:
            result.update(run_phase(args, "train_curve"))
        if args.checkpoint:
            result.update(run_phase(args, "decode_curve"))
    if args.profile:
        result.update(run_phase(args, "profile"))
    if args.ab:
        result.update(run_phase(args, "ab"))
    with atomic_open(args.json) as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print_result(result)
    return 0


def format_rows(rows: list[dict], title: str) -> str:
    """Dicts with the same keys as a table under `title`: one column per key; floats with one
    decimal (3 significant digits below 1), lists joined with '-'."""
    def cell(value) -> str:
        if isinstance(value, list):
            return "-".join(str(v) for v in value)
        if isinstance(value, float):
            return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"
        return str(value)

    cells = [[cell(r[k]) for k in rows[0]] for r in rows]
    widths = [max(len(k), *(len(c[j]) for c in cells)) for j, k in enumerate(rows[0])]
    lines = [title, "  ".join(f"{k:>{w}}" for k, w in zip(rows[0], widths, strict=True))]
    lines += ["  ".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def print_result(result: dict) -> None:
    """The scalar figures, then the curves and profiles as tables."""
    from nmt.bench.profile import format_ops

    for key, value in result.items():
        if isinstance(value, float):
            print(f"{key}: {value:.4g}")
    if result.get("ab_switches"):  # what path B set
        print("ab_switches: " + " ".join(f"{k}={v}" for k, v in result["ab_switches"].items()))
    for key in ("train_curve", "decode_curve"):
        if result.get(key):
            print("\n" + format_rows(result[key], key))
    for key in ("profile_train", "profile_decode_beam5"):
        if result.get(key):
            print("\n" + format_ops(result[key], f"{key}: top ops by self CPU time"))
    if result.get("decode_variants"):
        from nmt.bench.decode_variants import format_variants

        print("\n" + "\n".join(format_variants(result["decode_variants"])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_speed", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
