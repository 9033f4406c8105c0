"""`nmt translate --model-dir DIR [--input FILE] [--output FILE]`: translate a text file.

Output line N is the translation of input line N. Empty or whitespace-only lines give empty
lines; a line longer than `decode.max_input_tokens` subwords is split between words into
chunks that are translated one by one and joined on the same output line (reported on
stderr). The output file is written atomically: it appears complete or not at all.
Without --input, --output and --prefix, and with a terminal on stdin, each line is
translated as soon as it is entered (Ctrl-D ends); from a pipe, stdin is read to its end
first, as a file is.

With `--nbest N`, `--format text` writes N lines per input line in the Moses n-best format
`LINE ||| translation ||| score` (LINE 0-based; an empty input line gets N empty entries
scored 0); `--format jsonl` writes one JSON object per input line:
{"line": N, "hyps": [{"text": ..., "score": ...}, ...]}.

With `--prefix FILE`, line N of FILE is the start of line N's translation (empty: none),
encoded with the target subword model; search goes on after it, and its tokens' log-probs
count in the score. A line split into chunks gets its prefix on the first chunk.

With `--sample`, each token is drawn from the model's distribution (`--temperature`,
`--top-k`, `--top-p`), `--samples N` times per line (written as --nbest N writes its N
entries, in the order drawn), the same again for the same `--seed`: the usual way to make
back-translations.

With `--replace-unk`, each UNK in the (1-best) output is replaced by the source word it
attends to most: its attention row summed over each source word's subwords, argmax. Words
are cut where sentencepiece cuts them (see `nmt.data.words`); a line whose subwords still
cannot be matched to its words keeps its UNKs, and one warning names it.

Translations that reach the maximum length (`--max-len-ratio`) are reported in one warning.

With `--shortlist`, each batch scores only the target subwords in its candidate set from
the model directory's `shortlist.pt` (see `nmt shortlist`): faster, nearly the same output.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from typing import IO

from nmt.cli.files import add_model_arguments
from nmt.cli.guard import run_guarded

# the decode.* keys that translate's flags set, each with its flag (errors name the flag)
DECODE_FLAGS = {"batch_size": "--batch-size", "beam_size": "--beam",
                "max_len_ratio": "--max-len-ratio", "max_input_tokens": "--max-input-tokens",
                "length_penalty": "--length-penalty", "coverage_penalty": "--coverage-penalty"}
# the sampling options, each with its flag
SAMPLING_FLAGS = {"temperature": "--temperature", "top_k": "--top-k", "top_p": "--top-p",
                  "samples": "--samples", "seed": "--seed"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, "repeat it to decode with an ensemble of the models",
                        "mean of the members' probabilities (default) or of their "
                        "log-probabilities, renormalised")
    parser.add_argument("--input", metavar="FILE", help="source text, one sentence per line "
                        "(default: stdin; from a terminal, line by line as entered)")
    parser.add_argument("--output", metavar="FILE", help="default: stdout")
    parser.add_argument("--prefix", metavar="FILE", help="line N is the start of line N's "
                        "translation (empty line: none); search continues after it")
    parser.add_argument("--batch-size", type=int, metavar="N", help="sentences per batch")
    parser.add_argument("--beam", dest="beam_size", type=int, metavar="K",
                        help="beam size (1 = greedy; default from the model's config)")
    parser.add_argument("--nbest", type=int, default=1, metavar="N",
                        help="output the N best hypotheses with scores (N <= beam)")
    parser.add_argument("--format", choices=("text", "jsonl"), default="text",
                        help="text (one line, or with --nbest/--samples N Moses n-best "
                        "lines, per input line) or jsonl (one JSON object per input line)")
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
    parser.add_argument("--sample", action="store_true", help="draw each token from the "
                        "model's distribution instead of searching (back-translation)")
    parser.add_argument("--temperature", type=float, metavar="T", help="with --sample: "
                        "divide the log-probs by T > 0 (default 1; lower is closer to greedy)")
    parser.add_argument("--top-k", type=int, metavar="K",
                        help="with --sample: draw from the K most likely tokens only")
    parser.add_argument("--top-p", type=float, metavar="P", help="with --sample: draw from "
                        "the fewest most likely tokens whose probability reaches P in (0, 1]")
    parser.add_argument("--samples", type=int, metavar="N", help="with --sample: N outputs "
                        "per line, written as --nbest N writes them (default 1)")
    parser.add_argument("--seed", type=int, metavar="S", help="with --sample: the same seed "
                        "gives the same samples (default: a fresh seed every run)")
    parser.add_argument("--quantize", action="store_true", help="int8 weights with dynamic "
                        "activation quantization (CPU; faster, slightly different output)")
    parser.add_argument("--shortlist", action="store_true", help="score only the target "
                        "subwords that each batch's source suggests, from DIR/shortlist.pt "
                        "(build it with `nmt shortlist --model-dir DIR`)")
    parser.add_argument("--num-threads", type=int, metavar="N", help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or warnings")


def outputs_per_line(args: argparse.Namespace) -> int:
    """--samples N with --sample, else --nbest N."""
    return (args.samples or 1) if args.sample else args.nbest


def sampling_options(args: argparse.Namespace):
    """The `Sampling` the flags ask for (None without --sample), each value checked, and
    options that belong to the other kind of decoding refused; one line naming the flag."""
    from nmt.decoding.sampling import Sampling
    from nmt.errors import NmtError

    given = [flag for key, flag in SAMPLING_FLAGS.items() if getattr(args, key) is not None]
    if not args.sample:
        if given:
            raise NmtError(f"{given[0]}: only with --sample")
        return None
    if args.beam_size is not None and args.beam_size > 1:
        raise NmtError(f"--beam {args.beam_size} with --sample: sampling draws one path per "
                       f"sample; drop --beam (--samples N gives N outputs per line)")
    if args.nbest != 1:
        raise NmtError("--nbest with --sample: use --samples N for N outputs per line")
    for key in ("length_penalty", "coverage_penalty"):
        if getattr(args, key) is not None:
            raise NmtError(f"{DECODE_FLAGS[key]} ranks beam-search hypotheses; not with "
                           f"--sample")
    sampling = Sampling(**{key: getattr(args, key) for key in SAMPLING_FLAGS
                           if getattr(args, key) is not None})
    try:
        sampling.check(SAMPLING_FLAGS)
    except ValueError as e:
        raise NmtError(str(e)) from None
    return sampling


def _check_flags(args: argparse.Namespace) -> None:
    """Each flag's own value, before anything is read; one line naming the flag."""
    from nmt.cli.files import input_file, output_file
    from nmt.config import check_value
    from nmt.errors import NmtError

    for key, flag in DECODE_FLAGS.items():
        check_value(f"decode.{key}", getattr(args, key), flag)
    if args.num_threads is not None and args.num_threads < 1:
        raise NmtError("--num-threads: must be >= 1")
    if args.nbest < 1:
        raise NmtError(f"--nbest: must be >= 1 (got {args.nbest})")
    sampling_options(args)
    if args.replace_unk and outputs_per_line(args) > 1:
        raise NmtError("--replace-unk works on the 1-best output; drop --nbest/--samples")
    if args.prefix and args.shortlist:
        raise NmtError("--prefix: not with --shortlist (a prefix's subwords may lie outside "
                       "the shortlist)")
    if args.input:
        input_file(args.input, "--input")
    if args.prefix:
        input_file(args.prefix, "--prefix")
    if args.output:
        output_file(args.output, "--output")


def _decode_config(args: argparse.Namespace, decode):
    """The model's decode config with the flags' values (checked by `_check_flags`)."""
    from nmt.config import Config, validate
    from nmt.errors import NmtError

    changes = {k: getattr(args, k) for k in DECODE_FLAGS if getattr(args, k) is not None}
    if args.ban_unk:
        changes["ban_unk"] = True
    decode = dataclasses.replace(decode, **changes)
    if args.nbest > decode.beam_size:
        beam = (f"--beam {decode.beam_size}" if args.beam_size is not None
                else f"{decode.beam_size}, the model's decode.beam_size; raise it with --beam")
        raise NmtError(f"--nbest {args.nbest}: must be at most the beam size ({beam})")
    validate(Config(decode=decode))  # the model's own values, checked when it was trained
    return decode


def format_output(translator, results, args: argparse.Namespace, start: int = 0) -> str:
    """The output text: one line per input line, or with --nbest/--samples N (text) N lines
    each. start: the 0-based number of results[0] among the input lines."""
    n_out = outputs_per_line(args)
    if n_out == 1 and args.format == "text":
        return "".join(r.text + "\n" for r in results)
    lines = []
    for n, r in enumerate(results, start=start):
        entries = translator.nbest(r, n_out) if n_out > 1 else [
            (r.text, sum(h.score for h in r.hyps))]
        if args.format == "jsonl":
            hyps = [{"text": t, "score": round(s, 6)} for t, s in entries]
            lines.append(json.dumps({"line": n, "hyps": hyps}, ensure_ascii=False))
        else:
            lines.extend(f"{n} ||| {t} ||| {s:.6f}" for t, s in entries)
    return "".join(line + "\n" for line in lines)


def _replace_unks(translator, lines: list[str], results, name: str, quiet: bool,
                  start: int = 0) -> None:
    """Each result's UNKs replaced by source words. A line whose subwords cannot be matched
    to its words keeps its UNKs (its translation is still written): one warning names it."""
    from nmt.errors import NmtError
    from nmt.special import UNK_ID

    failed = []
    for n, (line, result) in enumerate(zip(lines, results, strict=True), start=start + 1):
        if not any(UNK_ID in h.tokens for h in result.hyps):
            continue
        try:
            result.text = translator.replace_unk(line, result)
        except NmtError as e:
            failed.append((n, e))
    if failed and not quiet:
        n, error = failed[0]
        more = (f" (and in {len(failed) - 1} more line{'s' if len(failed) > 2 else ''})"
                if len(failed) > 1 else "")
        print(f"warning: {name}:{n}: {error}; its UNKs are left in place{more}",
              file=sys.stderr)


def _warn_cut(results, decode, name: str, start: int = 0) -> None:
    """One warning if some translations reached the maximum length (cut before their end)."""
    cut = [n for n, r in enumerate(results, start=start + 1)
           if any(not h.finished for h in r.hyps)]
    if cut:
        shown = ", ".join(map(str, cut[:10])) + (", ..." if len(cut) > 10 else "")
        what, where = (f"{len(cut)} of {len(results)} translations", f": lines {shown}") \
            if len(results) > 1 else (f"the translation of line {shown}", "")
        print(f"warning: {name}: {what} stopped at the "
              f"maximum length ({decode.max_len_ratio:g} x source subwords + "
              f"{decode.max_len_offset}; --max-len-ratio) and may be cut short{where}",
              file=sys.stderr)


def interactive(args: argparse.Namespace, stdin: IO) -> bool:
    """Whether to translate line by line as lines are entered: stdin is a terminal and
    nothing asks for the whole input first (--input, --output, --prefix)."""
    return (args.input is None and args.output is None and args.prefix is None
            and stdin.isatty())


def translate_interactively(translate: Callable[[list[str], int], str], stdin: IO[bytes],
                            stdout: IO[str], name: str = "<stdin>") -> int:
    """Read `stdin` (bytes) a line at a time; write `translate([line], n)` (n: the line's
    0-based number) to `stdout` and flush it before reading the next line. A line that is
    not UTF-8 gets an error on stderr and an empty output line. Returns the line count."""
    n = 0
    while raw := stdin.readline():
        try:
            line = raw.rstrip(b"\n").removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError as e:
            print(f"error: {name}:{n + 1}: invalid UTF-8 at byte {e.start}; line skipped",
                  file=sys.stderr)
            line = ""
        stdout.write(translate([line], n))
        stdout.flush()
        n += 1
    return n


def _read_prefixes(args: argparse.Namespace, n_lines: int, name: str) -> list[str] | None:
    from nmt.errors import NmtError
    from nmt.io import read_lines

    if not args.prefix:
        return None
    prefixes = read_lines(args.prefix)
    if len(prefixes) != n_lines:
        raise NmtError(f"line count mismatch: {name} has {n_lines} lines, {args.prefix} has "
                       f"{len(prefixes)} lines")
    return prefixes


def run(args: argparse.Namespace) -> int:
    import torch

    from nmt.api import load
    from nmt.decoding.decode import make_search
    from nmt.decoding.translator import Translator
    from nmt.io import atomic_open, read_lines

    _check_flags(args)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    name = args.input or "<stdin>"
    live = interactive(args, sys.stdin)
    lines: list[str] = []
    prefixes = None
    if not live:
        lines = read_lines(args.input) if args.input else read_lines(None, sys.stdin.buffer)
        prefixes = _read_prefixes(args, len(lines), name)
    loaded = load(args.model_dir, quantize=args.quantize, shortlist=args.shortlist,
                  weights=args.ensemble_weights, combine=args.ensemble_combine)
    cfg, vocabs = loaded.cfg, loaded.vocabs
    decode = _decode_config(args, cfg.decode)
    sampling = sampling_options(args)

    def on_split(line_no: int, n_chunks: int) -> None:
        if not args.quiet:
            print(f"warning: {name}:{line_no}: longer than "
                  f"{decode.max_input_tokens} subwords; translated in {n_chunks} chunks",
                  file=sys.stderr)

    translator = Translator(loaded.decodable, vocabs.src, vocabs.tgt, decode,
                            search=make_search(decode, args.nbest, sampling), sampling=sampling)

    def translate(lines: list[str], start: int, prefixes: list[str] | None = None) -> str:
        results = translator.translate(lines, progress=not args.quiet and not live,
                                       on_split=lambda n, k: on_split(start + n, k),
                                       prefixes=prefixes)
        if args.replace_unk:
            _replace_unks(translator, lines, results, name, args.quiet, start)
        if not args.quiet:
            _warn_cut(results, decode, name, start)
        return format_output(translator, results, args, start)

    if live:
        if not args.quiet:
            print("translating each line as it is entered (Ctrl-D ends)", file=sys.stderr)
        translate_interactively(translate, sys.stdin.buffer, sys.stdout, name)
        return 0
    text = translate(lines, 0, prefixes)
    if args.output:
        with atomic_open(args.output) as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="translate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
