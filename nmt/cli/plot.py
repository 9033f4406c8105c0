"""`nmt plot DIR [DIR ...]`: training curves (loss and dev BLEU against updates and minutes)
of one or several runs, from each model directory's metrics.jsonl: a self-contained HTML
page, and a PNG with matplotlib."""

from __future__ import annotations

import argparse
import sys

from nmt.cli.guard import run_guarded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dirs", nargs="+", metavar="DIR",
                        help="model directories (each holds metrics.jsonl)")
    parser.add_argument("--out", default="curves.html", metavar="FILE",
                        help="the HTML page (default curves.html)")
    parser.add_argument("--png", metavar="FILE",
                        help="also a PNG of the same panels (needs matplotlib: the plot extra)")


def run(args: argparse.Namespace) -> int:
    from nmt.training.plot import load_runs, write_html, write_png

    runs = load_runs(args.model_dirs)
    written = [write_html(args.out, runs)]
    if args.png:
        written.append(write_png(args.png, runs))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plot", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
