"""`nmt shortlist --model-dir DIR [--frequent N] [--per-source K]`: a target-vocabulary shortlist.

Reads DIR's config.yaml and subword models, reads the training split as training does
(cleaned, tokenized, length-filtered; streamed, never loaded whole, when the config says
`data.streaming`; the first `--max-pairs` pairs only, if given), and keeps, for every
source subword, the K target
subwords it co-occurs with best (Dice over sentence pairs), plus the N most frequent target
subwords (UNK and EOS are always allowed). Writes DIR/shortlist.pt atomically; `translate
--shortlist` then scores only each batch's candidates. Prints, for the dev split, the share
of reference subwords inside their sentence's (and their batch's) candidate set and the mean
size of those sets.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

from nmt.cli.guard import run_guarded
from nmt.decoding.shortlist import DEFAULT_FREQUENT, DEFAULT_MIN_COUNT, DEFAULT_PER_SOURCE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", "--checkpoint", dest="model_dir", required=True,
                        metavar="DIR",
                        help="a model directory (config.yaml, subword models)")
    parser.add_argument("--frequent", type=int, default=DEFAULT_FREQUENT, metavar="N",
                        help=f"always allow the N most frequent target subwords "
                        f"(default {DEFAULT_FREQUENT})")
    parser.add_argument("--per-source", type=int, default=DEFAULT_PER_SOURCE, metavar="K",
                        help=f"allow the K best target subwords of each source subword "
                        f"(default {DEFAULT_PER_SOURCE})")
    parser.add_argument("--min-count", type=int, default=DEFAULT_MIN_COUNT, metavar="C",
                        help=f"ignore pairs co-occurring in fewer than C sentence pairs "
                        f"(default {DEFAULT_MIN_COUNT})")
    parser.add_argument("--max-pairs", type=int, default=None, metavar="N",
                        help="count only the first N training pairs (default: all)")
    parser.add_argument("--batch-size", type=int, default=100, metavar="N",
                        help="dev sentences per batch for the coverage report (default 100)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages on stderr")


def _check(args: argparse.Namespace) -> None:
    from nmt.errors import NmtError

    for flag, value, least in (("--frequent", args.frequent, 0),
                               ("--per-source", args.per_source, 0),
                               ("--min-count", args.min_count, 1),
                               ("--batch-size", args.batch_size, 1)):
        if value < least:
            raise NmtError(f"{flag}: must be >= {least}")
    if args.max_pairs is not None and args.max_pairs < 1:
        raise NmtError("--max-pairs: must be >= 1")


def run(args: argparse.Namespace) -> int:
    from nmt.checkpoint import read_config
    from nmt.data.corpus import prepare_split
    from nmt.data.stream import training_examples
    from nmt.data.vocab import load_vocabs
    from nmt.decoding.shortlist import SHORTLIST_FILE, count_pairs, coverage, shortlist_from_counts
    from nmt.errors import NmtError

    _check(args)
    model_dir = Path(args.model_dir)
    cfg = read_config(model_dir)
    vocabs = load_vocabs(model_dir, cfg.vocab.joint)

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr)

    if cfg.data.streaming:
        pairs = training_examples(cfg.data, vocabs.src, vocabs.tgt)
    else:
        limits = [n for n in (cfg.data.max_train_pairs, args.max_pairs) if n is not None]
        train_ds, report = prepare_split(cfg.data, cfg.data.train_split, vocabs.src,
                                         vocabs.tgt, train=True, limit=min(limits, default=None))
        say(str(report))
        pairs = zip(train_ds["src_ids"], train_ds["tgt_ids"], strict=True)
    start = time.perf_counter()
    counts = count_pairs(itertools.islice(pairs, args.max_pairs), len(vocabs.src),
                         len(vocabs.tgt))
    if counts.pairs == 0:
        raise NmtError(f"{cfg.data.train_split}: no training pairs to count")
    shortlist = shortlist_from_counts(counts, frequent=args.frequent,
                                      per_source=args.per_source, min_count=args.min_count)
    path = model_dir / SHORTLIST_FILE
    shortlist.save(path)
    print(f"{path}: {counts.pairs:,} training pairs, {time.perf_counter() - start:.1f} s "
          f"(frequent {args.frequent}, per source {args.per_source}, "
          f"min count {args.min_count})")
    dev_ds, report = prepare_split(cfg.data, cfg.data.dev_split, vocabs.src, vocabs.tgt,
                                   train=False, limit=cfg.data.max_dev_pairs)
    say(str(report))
    cov = coverage(shortlist, dev_ds["src_ids"], dev_ds["tgt_ids"], args.batch_size)
    print(f"{cfg.data.dev_split}: {cov.tokens:,} reference subwords of {cov.sentences:,} "
          f"sentences; {cov.sentence:.2%} inside their sentence's candidates (mean "
          f"{cov.mean_sentence_size:,.0f} ids), {cov.batch:.2%} inside their batch's "
          f"(batches of {args.batch_size}: mean {cov.mean_batch_size:,.0f} of "
          f"{len(vocabs.tgt):,} ids)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shortlist", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
