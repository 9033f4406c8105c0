"""`nmt score --hyp FILE REF [REF ...]`: corpus BLEU/chrF/TER of a detokenized hypothesis file.

Prints one line per metric with its sacrebleu signature, or with `--json` one JSON object.
`--hyp -` reads the hypotheses from stdin. Files may be gzipped and must be valid UTF-8.
"""

from __future__ import annotations

import argparse
import json
import sys

from nmt.cli.files import input_file
from nmt.cli.guard import run_guarded
from nmt.errors import NmtError
from nmt.io import read_lines
from nmt.metrics import METRICS, corpus_scores, format_score


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hyp", required=True, metavar="FILE", help="detokenized hypotheses ('-' for stdin)"
    )
    parser.add_argument(
        "refs", nargs="+", metavar="REF", help="reference file(s), line-aligned with --hyp"
    )
    parser.add_argument("--lowercase", action="store_true", help="case-insensitive scoring")
    parser.add_argument(
        "--metrics",
        nargs="+",
        choices=METRICS,
        default=list(METRICS),
        metavar="METRIC",
        help=f"metrics to compute, from: {' '.join(METRICS)} (default: all)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    hyp_name = "<stdin>" if args.hyp == "-" else input_file(args.hyp, "--hyp")
    for path in args.refs:
        input_file(path, "reference")
    hyps = read_lines(None, sys.stdin.buffer) if args.hyp == "-" else read_lines(args.hyp)
    refs = [read_lines(path) for path in args.refs]
    for path, lines in zip(args.refs, refs, strict=True):
        if len(lines) != len(hyps):
            raise NmtError(
                f"line count mismatch: {hyp_name} has {len(hyps)} lines, "
                f"{path} has {len(lines)} lines"
            )
    if not hyps:
        raise NmtError(f"{hyp_name}: no lines to score")
    scores = corpus_scores(hyps, refs, lowercase=args.lowercase, metrics=args.metrics)
    if args.json:
        obj = {
            "hyp": args.hyp,
            "refs": list(args.refs),
            "lowercase": args.lowercase,
            "n_lines": len(hyps),
            "scores": [s.to_dict() for s in scores],
        }
        print(json.dumps(obj, ensure_ascii=False))
    else:
        for s in scores:
            print(format_score(s))
    if sys.stdout is not None:
        sys.stdout.flush()  # surface a closed pipe here, inside run_guarded
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="score", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
