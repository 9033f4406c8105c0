"""`nmt align-score --pred FILE --gold FILE`: precision, recall and AER of word alignments.

Both files hold one line of Pharaoh links per sentence, 0-based `i-j` (source word i, target
word j). Gold links may be sure (`i-j`) or possible (`i?j`, `ipj`); predicted links all count
as predictions A, whatever their mark. With sure S and possible P (P includes S), over the
whole corpus (Och and Ney, 2003): precision = |A&P| / |A|, recall = |A&S| / |S|,
AER = 1 - (|A&S| + |A&P|) / (|A| + |S|). With --src/--tgt (the sentence pairs) every index
is checked against its sentence's word count.
"""

from __future__ import annotations

import argparse
import json
import sys

from nmt.cli.guard import run_guarded
from nmt.errors import NmtError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, metavar="FILE", help="predicted alignments")
    parser.add_argument("--gold", required=True, metavar="FILE", help="reference alignments")
    parser.add_argument("--src", metavar="FILE", help="source sentences (range checks)")
    parser.add_argument("--tgt", metavar="FILE", help="target sentences (range checks)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from nmt.alignment.pharaoh import check_ranges, read_pharaoh, score_alignments
    from nmt.io import read_lines

    if bool(args.src) != bool(args.tgt):
        raise NmtError("--src and --tgt go together (both sides are needed for range checks)")
    pred = read_pharaoh(args.pred)
    gold = read_pharaoh(args.gold)
    texts = {}
    if args.src:
        texts = {args.src: read_lines(args.src), args.tgt: read_lines(args.tgt)}
    for name, n in [(args.gold, len(gold))] + [(k, len(v)) for k, v in texts.items()]:
        if n != len(pred):
            raise NmtError(f"line count mismatch: {args.pred} has {len(pred)} lines, "
                           f"{name} has {n} lines")
    if args.src:
        for name, links in ((args.pred, pred), (args.gold, gold)):
            check_ranges(links, name, texts[args.src], texts[args.tgt], args.src, args.tgt)
    scores = score_alignments([p for _, p in pred], gold)
    if args.json:
        print(json.dumps({"pred": args.pred, "gold": args.gold, **scores.to_dict()}))
    else:
        print(f"precision {scores.precision:.4f}  recall {scores.recall:.4f}  "
              f"AER {scores.aer:.4f}  ({scores.sentences} sentences, {scores.predicted} "
              f"predicted, {scores.sure} sure, {scores.possible} possible links)")
    if sys.stdout is not None:
        sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="align-score", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
