"""`translate --checkpoint DIR [--input FILE] [--output FILE]`: translate a text file.

Output line N is the translation of input line N. Empty or whitespace-only lines give empty
lines; a line longer than `decode.max_input_tokens` subwords is split between words into
chunks that are translated one by one and joined on the same output line (reported on
stderr). The output file is written atomically: it appears complete or not at all.

With `--nbest N`, `--format text` writes N lines per input line in the Moses n-best format
`LINE ||| translation ||| score` (LINE 0-based); `--format jsonl` writes one JSON object per
input line: {"line": N, "hyps": [{"text": ..., "score": ...}, ...]}.

With `--replace-unk`, each UNK in the (1-best) output is replaced by the source word it
attends to most: its attention row summed over each source word's subwords, argmax.

With `--shortlist`, each batch scores only the target subwords in its candidate set from
the model directory's `shortlist.pt` (see `nmt shortlist`): faster, nearly the same output.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from nmt.cli.guard import run_guarded

DECODE_FLAGS = ("batch_size", "beam_size", "max_len_ratio", "max_input_tokens",
                "length_penalty", "coverage_penalty")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="model directory (uses best.pt, else last.pt) or a .pt file in one")
    parser.add_argument("--input", metavar="FILE", help="source text, one sentence per line "
                        "(default: stdin)")
    parser.add_argument("--output", metavar="FILE", help="default: stdout")
    parser.add_argument("--batch-size", type=int, metavar="N", help="sentences per batch")
    parser.add_argument("--beam", dest="beam_size", type=int, metavar="K",
                        help="beam size (1 = greedy; default from the model's config)")
    parser.add_argument("--nbest", type=int, default=1, metavar="N",
                        help="output the N best hypotheses with scores (N <= beam)")
    parser.add_argument("--format", choices=("text", "jsonl"), default="text")
    parser.add_argument("--length-penalty", metavar="P",
                        help="none, average or gnmt:ALPHA (default gnmt:0.6)")
    parser.add_argument("--coverage-penalty", type=float, metavar="BETA",
                        help="GNMT coverage penalty weight (default 0)")
    parser.add_argument("--ban-unk", action="store_true", help="never output UNK")
    parser.add_argument("--replace-unk", action="store_true", help="replace each UNK in the "
                        "output by the source word it attends to most (1-best output only)")
    parser.add_argument("--max-len-ratio", type=float, metavar="R",
                        help="max output length = R * source length + offset")
    parser.add_argument("--max-input-tokens", type=int, metavar="N",
                        help="split longer source lines into chunks of at most N subwords")
    parser.add_argument("--quantize", action="store_true", help="int8 weights with dynamic "
                        "activation quantization (CPU; faster, slightly different output)")
    parser.add_argument("--shortlist", action="store_true", help="score only the target "
                        "subwords that each batch's source suggests, from DIR/shortlist.pt "
                        "(build it with `nmt shortlist --model-dir DIR`)")
    parser.add_argument("--num-threads", type=int, metavar="N", help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or warnings")


def _decode_config(args: argparse.Namespace, decode):
    from nmt.config import validate
    from nmt.errors import NmtError

    changes = {k: getattr(args, k) for k in DECODE_FLAGS if getattr(args, k) is not None}
    if args.ban_unk:
        changes["ban_unk"] = True
    decode = dataclasses.replace(decode, **changes)
    if args.replace_unk and args.nbest > 1:
        raise NmtError("--replace-unk works on the 1-best output; drop --nbest")
    if args.nbest < 1 or args.nbest > decode.beam_size:
        raise NmtError(f"--nbest {args.nbest}: must be between 1 and the beam size "
                       f"({decode.beam_size})")
    from nmt.config import Config

    validate(Config(decode=decode))  # one-line errors for bad values
    return decode


def format_output(translator, results, args: argparse.Namespace) -> str:
    if args.nbest == 1 and args.format == "text":
        return "".join(r.text + "\n" for r in results)
    lines = []
    for n, r in enumerate(results):
        entries = translator.nbest(r)[: args.nbest] if args.nbest > 1 else [
            (r.text, sum(h.score for h in r.hyps))]
        if args.format == "jsonl":
            hyps = [{"text": t, "score": round(s, 6)} for t, s in entries]
            lines.append(json.dumps({"line": n, "hyps": hyps}, ensure_ascii=False))
        else:
            lines.extend(f"{n} ||| {t} ||| {s:.6f}" for t, s in entries)
    return "".join(line + "\n" for line in lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from nmt.checkpoint import checkpoint_path, load_for_inference
    from nmt.decoding.decode import make_search
    from nmt.decoding.shortlist import Shortlist
    from nmt.decoding.translator import Translator
    from nmt.errors import NmtError
    from nmt.io import atomic_open, read_lines

    if args.num_threads is not None and args.num_threads < 1:
        raise NmtError("--num-threads: must be >= 1")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    lines = read_lines(args.input) if args.input else read_lines(None, sys.stdin.buffer)
    model, cfg, vocabs = load_for_inference(args.checkpoint, quantize=args.quantize)
    decode = _decode_config(args, cfg.decode)
    shortlist = (Shortlist.beside(checkpoint_path(args.checkpoint).parent, vocabs)
                 if args.shortlist else None)

    def on_split(line_no: int, n_chunks: int) -> None:
        if not args.quiet:
            print(f"warning: {args.input or '<stdin>'}:{line_no}: longer than "
                  f"{decode.max_input_tokens} subwords; translated in {n_chunks} chunks",
                  file=sys.stderr)

    translator = Translator(model, vocabs.src, vocabs.tgt, decode,
                            search=make_search(decode, args.nbest), shortlist=shortlist)
    results = translator.translate(lines, progress=not args.quiet, on_split=on_split)
    if args.replace_unk:
        for line, result in zip(lines, results, strict=True):
            result.text = translator.replace_unk(line, result)
    text = format_output(translator, results, args)
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
