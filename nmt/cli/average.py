"""`nmt average --model-dir DIR [--last N | --around-best N]`: average saved validations' weights.

Training keeps `step{N}.pt` files when `train.keep_checkpoints` > 0: those of the newest N
validations and of N around the best one. `--last N` averages the newest N, `--around-best N`
the N around the best validation (the best in the middle). The average is written
(atomically) to `DIR/averaged.pt`, which translate/align/benchmark take as
`--model-dir DIR/averaged.pt`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nmt.cli.guard import run_guarded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", "--checkpoint", dest="model_dir", required=True,
                        metavar="DIR", help="the model directory holding the step*.pt files")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--last", type=int, default=5, metavar="N",
                       help="how many of the newest step*.pt files (default 5)")
    which.add_argument("--around-best", type=int, metavar="N",
                       help="instead, the N step*.pt files around the best validation")
    parser.add_argument("--out", metavar="FILE", help="default: DIR/averaged.pt")


def run(args: argparse.Namespace) -> int:
    from nmt import checkpoint
    from nmt.errors import NmtError

    model_dir = Path(args.model_dir)
    for flag, n in (("--last", args.last), ("--around-best", args.around_best)):
        if n is not None and n < 1:
            raise NmtError(f"{flag}: must be >= 1")
    if args.around_best is not None:
        if not (model_dir / "last.pt").is_file():
            raise NmtError(f"{model_dir}: no last.pt (its history names the best validation)")
        files = checkpoint.numbered_around_best(model_dir, args.around_best)
        if not files and checkpoint.numbered(model_dir):
            raise NmtError(f"{model_dir}: the best validation's weights are not among the "
                           "step*.pt files (trained before they were kept around the best)")
    else:
        files = checkpoint.numbered(model_dir)[-args.last:]
    if not files:
        raise NmtError(f"{model_dir}: no step*.pt files (train with train.keep_checkpoints > 0)")
    out = Path(args.out) if args.out else model_dir / "averaged.pt"
    if out.parent.resolve() != model_dir.resolve():
        raise NmtError(f"--out {out}: must be inside {model_dir} (it needs config.yaml and the "
                       f"subword models beside it)")
    checkpoint.write_average(model_dir, files, out)
    print(f"averaged {', '.join(f.name for f in files)} -> {out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="average", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
