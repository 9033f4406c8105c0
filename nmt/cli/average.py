"""`average --model-dir DIR [--last N]`: average the weights of the last N saved validations.

Training keeps `step{N}.pt` files when `train.keep_checkpoints` > 0. The average is written
(atomically) to `DIR/averaged.pt`, which translate/align/benchmark take as
`--checkpoint DIR/averaged.pt`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nmt.cli.guard import run_guarded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, metavar="DIR")
    parser.add_argument("--last", type=int, default=5, metavar="N",
                        help="how many of the newest step*.pt files (default 5)")
    parser.add_argument("--out", metavar="FILE", help="default: DIR/averaged.pt")


def run(args: argparse.Namespace) -> int:
    from nmt import checkpoint
    from nmt.errors import NmtError

    model_dir = Path(args.model_dir)
    if args.last < 1:
        raise NmtError("--last: must be >= 1")
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
