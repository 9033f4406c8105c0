"""`translate --checkpoint DIR [--input FILE] [--output FILE]`: translate a text file.

Output line N is the translation of input line N. Empty or whitespace-only lines give empty
lines; a line longer than `decode.max_input_tokens` subwords is split between words into
chunks that are translated one by one and joined on the same output line (reported on
stderr). The output file is written atomically: it appears complete or not at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from nmt.commands import run_guarded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="model directory (uses best.pt, else last.pt) or a .pt file in one")
    parser.add_argument("--input", metavar="FILE", help="source text, one sentence per line "
                        "(default: stdin)")
    parser.add_argument("--output", metavar="FILE", help="default: stdout")
    parser.add_argument("--batch-size", type=int, metavar="N", help="sentences per batch")
    parser.add_argument("--max-len-ratio", type=float, metavar="R",
                        help="max output length = R * source length + offset")
    parser.add_argument("--max-input-tokens", type=int, metavar="N",
                        help="split longer source lines into chunks of at most N subwords")
    parser.add_argument("--num-threads", type=int, metavar="N", help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or warnings")


def run(args: argparse.Namespace) -> int:
    import torch

    from nmt.checkpoint import load_model
    from nmt.errors import NmtError
    from nmt.io import atomic_open, read_lines
    from nmt.translator import Translator

    for name in ("batch_size", "max_input_tokens"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise NmtError(f"--{name.replace('_', '-')}: must be >= 1")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    lines = read_lines(args.input) if args.input else read_lines(None, sys.stdin.buffer)
    model, cfg, vocabs = load_model(args.checkpoint)
    decode = cfg.decode
    changes = {k: getattr(args, k) for k in ("batch_size", "max_len_ratio", "max_input_tokens")
               if getattr(args, k) is not None}
    decode = dataclasses.replace(decode, **changes)

    def on_split(line_no: int, n_chunks: int) -> None:
        if not args.quiet:
            print(f"warning: {args.input or '<stdin>'}:{line_no}: longer than "
                  f"{decode.max_input_tokens} subwords; translated in {n_chunks} chunks",
                  file=sys.stderr)

    translator = Translator(model, vocabs.src, vocabs.tgt, decode)
    results = translator.translate(lines, progress=not args.quiet, on_split=on_split)
    text = "".join(r.text + "\n" for r in results)
    if args.output:
        with atomic_open(args.output) as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="translate", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
