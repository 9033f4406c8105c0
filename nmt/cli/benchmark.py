"""`nmt benchmark --config FILE --model-dir DIR --name NAME`: train, tune on dev, score tests.

`--ensemble DIR [DIR ...]` evaluates the ensemble of trained model directories instead (each
member's weights chosen on dev as for one model), with every member's training minutes and
its own scores beside the ensemble's. `python scripts/bleu_benchmark.py` is the same command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nmt.cli.guard import run_guarded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="config to train with (omit to only "
                        "evaluate an existing model directory)")
    parser.add_argument("--model-dir", "--checkpoint", dest="model_dir", metavar="DIR",
                        help="the model directory to train and evaluate (or --ensemble)")
    parser.add_argument("--ensemble", nargs="+", metavar="DIR",
                        help="evaluate the ensemble of these trained model directories")
    parser.add_argument("--name", required=True, help="results name, e.g. multi30k-en-de")
    parser.add_argument("--out", default="data/benchmarks", metavar="DIR",
                        help="where the results JSON and hypotheses go (default "
                        "data/benchmarks)")
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
    parser.add_argument("--num-threads", type=int, metavar="N",
                        help="torch CPU threads for evaluation (training takes "
                        "train.num_threads)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines")


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
    if args.num_threads is not None and args.num_threads < 1:
        raise NmtError("--num-threads: must be >= 1")
    return beams, penalties


def run(args: argparse.Namespace) -> int:
    from nmt.bench.bleu import run_benchmark, train_info
    from nmt.config import load_config, resume_overrides
    from nmt.errors import NmtError
    from nmt.training.run import train

    beams, penalties = _search_grid(args)
    if args.ensemble:
        return _run_ensemble(args, beams, penalties)
    if not args.model_dir:
        raise NmtError("benchmark needs --model-dir DIR (or --ensemble DIR DIR ...)")
    model_dir = Path(args.model_dir)
    if args.config:
        if (model_dir / "last.pt").is_file():  # resume: the run's own config, train.* --set
            train(None, model_dir, resume=True, quiet=args.quiet,
                  train_overrides=resume_overrides(args.set))
        else:
            train(load_config(args.config, args.set), model_dir, quiet=args.quiet)
    elif not (model_dir / "last.pt").is_file():
        raise NmtError(f"{model_dir}: no trained model (give --config to train one)")
    _evaluation_threads(args)
    weights, selection = _weights(model_dir, args, "")
    record = run_benchmark(weights, Path(args.out), args.name, beams, penalties,
                           train_info(model_dir), selection=selection)
    _print_summary(record)
    return 0


def _run_ensemble(args: argparse.Namespace, beams: list[int], penalties: list[str]) -> int:
    from nmt.bench.bleu import run_benchmark, train_info
    from nmt.errors import NmtError

    if args.config or args.model_dir:
        raise NmtError("--ensemble evaluates trained model directories; drop --config and "
                       "--model-dir (train each member first)")
    _evaluation_threads(args)
    weights, members = [], []
    for d in map(Path, args.ensemble):
        if not (d / "last.pt").is_file():
            raise NmtError(f"--ensemble {d}: no trained model there (no last.pt)")
        w, selection = _weights(d, args, f"--ensemble {d}: ")
        weights.append(w)
        members.append({"model_dir": str(d), "train": train_info(d), "selection": selection})
    record = run_benchmark(weights, Path(args.out), args.name, beams, penalties,
                           {"members": len(members)}, members=members)
    print(f"members' training: {record['train_minutes_total']} minutes in all")
    _print_summary(record)
    return 0


def _evaluation_threads(args: argparse.Namespace) -> None:
    if args.num_threads:
        import torch

        torch.set_num_threads(args.num_threads)


def _weights(model_dir: Path, args: argparse.Namespace, where: str) -> tuple[Path, dict]:
    """The weights file to evaluate in `model_dir` (--weights, or chosen on dev) and how."""
    from nmt.bench.bleu import select_weights
    from nmt.errors import NmtError

    if args.weights:
        weights, selection = model_dir / args.weights, {"chosen": args.weights, "note": "given"}
    else:
        weights, selection = select_weights(model_dir, args.average)
    if not weights.is_file():
        raise NmtError(f"{where}{weights}: not found")
    return weights, selection


def _print_summary(record: dict) -> None:
    from nmt.bench.bleu import summary_rows

    print("| test set | search | BLEU | BLEU lc | chrF | sents/s |")
    print("|---|---|---|---|---|---|")
    print("\n".join(summary_rows(record)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bleu_benchmark", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
