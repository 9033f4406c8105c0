"""`nmt train --config FILE --model-dir DIR` or `nmt train --resume DIR`: train a model."""

from __future__ import annotations

import argparse
import os
import sys

from nmt.cli.guard import run_guarded
from nmt.config import check_value, load_config, resume_overrides
from nmt.errors import NmtError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML config (see data/configs/)")
    parser.add_argument("--model-dir", "--checkpoint", dest="model_dir", metavar="DIR",
                        help="where config, subwords and checkpoints go (a new directory)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (repeatable); on --resume only train.* "
                        "(see the README for which keys may change)")
    parser.add_argument("--max-time", type=float, metavar="SECONDS",
                        help="wall-time budget of the whole run in seconds (summed across resumes)")
    parser.add_argument("--max-epochs", type=int, metavar="N",
                        help="stop after N passes over the training data")
    parser.add_argument("--max-steps", type=int, metavar="N",
                        help="stop after N updates")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines")


def _budget_overrides(args: argparse.Namespace) -> list[str]:
    """`--set` plus the budget flags as `train.*` overrides, each flag checked (and named)
    first."""
    out = list(args.set)
    for key in ("max_time", "max_epochs", "max_steps"):
        value = getattr(args, key)
        if value is not None:
            check_value(f"train.{key}", value, f"--{key.replace('_', '-')}")
            out.append(f"train.{key}={value}")
    return out


def run(args: argparse.Namespace) -> int:
    from nmt.training.run import train  # heavy imports only once arguments are fine

    overrides = _budget_overrides(args)
    if args.resume:
        if args.config or args.model_dir:
            raise NmtError("--resume DIR takes its config from DIR; drop --config/--model-dir")
        state = train(None, args.resume, resume=True, quiet=args.quiet,
                      train_overrides=resume_overrides(overrides))
    else:
        if not args.config or not args.model_dir:
            raise NmtError("train needs --config FILE and --model-dir DIR (or --resume DIR)")
        cfg = load_config(args.config, overrides)
        state = train(cfg, args.model_dir, quiet=args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 speaks for the job
        print(f"best dev BLEU {state.best_bleu:.2f} at step {state.best_step} "
              f"({state.stopped})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return run_guarded(run, parser.parse_args(argv))
