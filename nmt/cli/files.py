"""The model-directory options the decoding commands share, and checks of the file paths a
command is given, each error naming the flag the user typed."""

from __future__ import annotations

import argparse
from pathlib import Path

from nmt.errors import NmtError


def add_model_arguments(parser: argparse.ArgumentParser, repeated: str,
                        combine_help: str = "how the members' next-token distributions combine"
                        ) -> None:
    """`--model-dir DIR` (alias `--checkpoint`), repeatable for an ensemble (`repeated` says
    what repeating it does), with `--ensemble-weights` and `--ensemble-combine`."""
    parser.add_argument("--model-dir", "--checkpoint", dest="model_dir", required=True,
                        metavar="DIR", action="append",
                        help="model directory (uses best.pt, else last.pt) or a .pt file in "
                        f"one; {repeated}")
    parser.add_argument("--ensemble-weights", type=float, nargs="+", metavar="W",
                        help="one weight per --model-dir (default equal)")
    parser.add_argument("--ensemble-combine", choices=("prob", "logprob"), default="prob",
                        help=combine_help)


def input_file(path: str, flag: str) -> str:
    """`path`, if it names a file; else one line naming `flag`: a directory, or nothing."""
    if Path(path).is_dir():
        raise NmtError(f"{flag} {path} is a directory, not a file")
    if not Path(path).exists():
        raise NmtError(f"{flag} {path}: no such file")
    return path


def output_file(path: str, flag: str) -> str:
    """`path`, unless it names a directory (a file cannot be written over one)."""
    if Path(path).is_dir():
        raise NmtError(f"{flag} {path} is a directory, not a file")
    return path
