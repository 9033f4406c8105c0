"""`bleu_benchmark --config FILE --model-dir DIR --name NAME`: train, tune on dev, score tests."""

from __future__ import annotations

import argparse
from pathlib import Path

from nmt.cli.guard import run_guarded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="config to train with (omit to only "
                        "evaluate an existing model directory)")
    parser.add_argument("--model-dir", required=True, metavar="DIR")
    parser.add_argument("--name", required=True, help="results name, e.g. multi30k-en-de")
    parser.add_argument("--out", default="data/benchmarks", metavar="DIR")
    parser.add_argument("--weights", metavar="FILE",
                        help="weights file inside DIR to evaluate (default: best.pt or the "
                        "average of the last --average validations, whichever has the higher "
                        "dev BLEU)")
    parser.add_argument("--average", type=int, default=5, metavar="N",
                        help="candidate average of the newest N step*.pt files (0: off)")
    parser.add_argument("--beams", default="5", metavar="K[,K...]",
                        help="beam sizes tried on the dev split (comma-separated; default 5)")
    parser.add_argument("--length-penalties", default="gnmt:0.0,gnmt:0.6,gnmt:1.0,gnmt:1.5",
                        help="candidates tried on the dev split (comma-separated)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="config override (repeatable); when resuming only train.*")
    parser.add_argument("--quiet", action="store_true")


def _search_grid(args: argparse.Namespace) -> tuple[list[int], list[str]]:
    """The beam sizes and length penalties to try, checked before any training."""
    from nmt.decoding.processors import LengthPenalty
    from nmt.errors import NmtError

    try:
        beams = [int(k) for k in args.beams.split(",")]
    except ValueError:
        raise NmtError(f"--beams {args.beams}: expected comma-separated integers") from None
    if min(beams) < 1:
        raise NmtError("--beams: every beam size must be >= 1")
    penalties = [p.strip() for p in args.length_penalties.split(",")]
    for p in penalties:
        try:
            LengthPenalty.parse(p)
        except ValueError as e:
            raise NmtError(f"--length-penalties: {e}") from None
    if args.average < 0:
        raise NmtError("--average: must be >= 0")
    return beams, penalties


def run(args: argparse.Namespace) -> int:
    from nmt.bench.bleu import run_benchmark, select_weights, summary_rows, train_info
    from nmt.config import load_config, resume_overrides
    from nmt.errors import NmtError
    from nmt.training.trainer import train

    beams, penalties = _search_grid(args)
    model_dir = Path(args.model_dir)
    if args.config:
        if (model_dir / "last.pt").is_file():  # resume: the run's own config, train.* --set
            train(None, model_dir, resume=True, quiet=args.quiet,
                  train_overrides=resume_overrides(args.set))
        else:
            train(load_config(args.config, args.set), model_dir, quiet=args.quiet)
    elif not (model_dir / "last.pt").is_file():
        raise NmtError(f"{model_dir}: no trained model (give --config to train one)")
    if args.weights:
        weights, selection = model_dir / args.weights, {"chosen": args.weights, "note": "given"}
    else:
        weights, selection = select_weights(model_dir, args.average)
    if not weights.is_file():
        raise NmtError(f"{weights}: not found")
    record = run_benchmark(weights, Path(args.out), args.name, beams, penalties,
                           train_info(model_dir), selection=selection)
    print("| test set | search | BLEU | BLEU lc | chrF | sents/s |")
    print("|---|---|---|---|---|---|")
    print("\n".join(summary_rows(record)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bleu_benchmark", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
