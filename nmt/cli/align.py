"""`nmt align --model-dir DIR --src FILE [--tgt FILE] --out DIR`: word alignments from attention.

Without --tgt the model translates the source (beam search, or greedy with --beam 1) and the
chosen hypothesis' own attention is used; with --tgt the given translations are forced
through the model (teacher forcing), which aligns any parallel text. Subword attention is
merged into the words of the original lines (see `nmt.alignment.extract` for the rules).
OUTDIR gets:

  alignments.jsonl     per line: line (0-based), src, tgt, attention (T, S), eos_weight,
                       alignment (Pharaoh), score (summed token log-probs incl. EOS; for
                       forced decoding the log-prob of the given target); with --subword
                       also the subword pieces and their attention (EOS row/column incl.)
  alignments.pharaoh   `i-j` (source word i, target word j, 0-based), argmax source word per
                       target word; one line per input line, empty for empty input
  alignments.threshold.pharaoh   with --threshold X: argmax links plus every weight >= X
  alignments.npz       one (T, S) array per line, keyed s{line}; src_words, tgt_words
  report.html          one self-contained page: a heatmap table per sentence
  heatmap_{line}.png   with --plot N, for the first N sentences (needs matplotlib)

Lines are aligned whole (no chunking of long lines).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from nmt.cli.files import add_model_arguments, input_file
from nmt.cli.guard import run_guarded
from nmt.errors import NmtError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, "repeat it to align with an ensemble (its mean attention)")
    parser.add_argument("--src", required=True, metavar="FILE", help="source text")
    parser.add_argument("--tgt", metavar="FILE",
                        help="target text to force-decode (default: the model's translations)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--beam", type=int, metavar="K",
                        help="beam size without --tgt (1 = greedy; default from the config)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N lines")
    parser.add_argument("--subword", action="store_true",
                        help="also dump the subword-level attention in the JSON lines")
    parser.add_argument("--plot", type=int, default=0, metavar="N",
                        help="heatmap PNGs of the first N sentences (needs matplotlib)")
    parser.add_argument("--threshold", type=float, metavar="X",
                        help="also write alignments.threshold.pharaoh: argmax links plus "
                        "every link with weight >= X")
    parser.add_argument("--batch-size", type=int, metavar="N", help="sentences per batch")
    parser.add_argument("--num-threads", type=int, metavar="N", help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no summary on stderr")


def _check(args: argparse.Namespace) -> None:
    from nmt.alignment.report import PLOT_INSTALL, have_matplotlib

    for flag, value in (("--beam", args.beam), ("--batch-size", args.batch_size),
                        ("--num-threads", args.num_threads)):
        if value is not None and value < 1:
            raise NmtError(f"{flag}: must be >= 1")
    if args.limit is not None and args.limit < 0:
        raise NmtError("--limit: must be >= 0")
    if args.plot < 0:
        raise NmtError("--plot: must be >= 0")
    if args.threshold is not None and not 0.0 < args.threshold <= 1.0:
        raise NmtError(f"--threshold {args.threshold}: must be in (0, 1]")
    if args.tgt and args.beam is not None:
        raise NmtError("--beam chooses the search for the model's own translations; "
                       "drop it with --tgt (forced decoding)")
    if args.plot and not have_matplotlib():
        raise NmtError(f"--plot needs matplotlib: {PLOT_INSTALL}")
    input_file(args.src, "--src")
    if args.tgt:
        input_file(args.tgt, "--tgt")


def run(args: argparse.Namespace) -> int:
    import torch

    from nmt.alignment.extract import align_lines, write_dumps
    from nmt.alignment.report import plot_heatmaps, write_report
    from nmt.api import load
    from nmt.decoding.decode import make_search
    from nmt.io import read_lines

    _check(args)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    src_lines = read_lines(args.src)
    tgt_lines = read_lines(args.tgt) if args.tgt else None
    if tgt_lines is not None and len(tgt_lines) != len(src_lines):
        raise NmtError(f"line count mismatch: {args.src} has {len(src_lines)} lines, "
                       f"{args.tgt} has {len(tgt_lines)} lines")
    if args.limit is not None:
        src_lines = src_lines[: args.limit]
        tgt_lines = tgt_lines[: args.limit] if tgt_lines is not None else None
    loaded = load(args.model_dir, weights=args.ensemble_weights,
                  combine=args.ensemble_combine, fused=False)  # the kernels of training
    model, cfg, vocabs = loaded.decodable, loaded.cfg, loaded.vocabs
    decode = dataclasses.replace(cfg.decode, **{k: v for k, v in (
        ("beam_size", args.beam), ("batch_size", args.batch_size)) if v is not None})
    search = None if tgt_lines is not None else make_search(decode)
    sentences = align_lines(model, vocabs, src_lines, tgt_lines, search, decode.batch_size,
                            names=(args.src, args.tgt or "translation"))
    written = write_dumps(args.out, sentences, args.threshold, args.subword)
    how = (f"forced decoding of {args.tgt}" if tgt_lines is not None else
           "greedy search" if decode.beam_size == 1 else f"beam search (K={decode.beam_size})")
    title = f"Attention alignments: {args.src}, {how}"
    written.append(write_report(f"{args.out}/report.html", sentences, title, args.threshold))
    if args.plot:
        written.extend(plot_heatmaps(args.out, sentences, args.plot))
    if not args.quiet:
        print(f"aligned {len(sentences)} lines ({how}); wrote "
              f"{', '.join(p.name for p in written)} to {args.out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="align", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
