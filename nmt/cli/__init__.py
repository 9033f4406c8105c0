"""The `nmt` command: `nmt train|translate|score|align|align-score ...`."""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

from nmt.cli.guard import run_guarded

COMMANDS = {
    "train": "train a model from a config (or resume one)",
    "translate": "translate a text file with a trained model",
    "score": "BLEU, chrF and TER of a hypothesis file, with sacrebleu signatures",
    "align": "word alignments from attention: JSON lines, Pharaoh, npz, HTML report",
    "align-score": "precision, recall and AER of Pharaoh alignments against a reference",
    "average": "average the weights of the last N validation checkpoints",
    "benchmark": "train, tune decoding on dev, score every test set (BLEU, chrF) to JSON",
    "shortlist": "build a target-vocabulary shortlist for faster decoding (shortlist.pt)",
    "plot": "training curves of one or several runs (HTML page, PNG with matplotlib)",
    "serve": "translate over HTTP: JSON API with dynamic batching, and a page at /",
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The `nmt` parser, one subparser per command (prog `nmt COMMAND`, the command
    module's docstring as its description, line breaks kept), and the command modules."""
    from nmt import __version__

    parser = argparse.ArgumentParser(prog="nmt", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"nmt {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")
    modules = {}
    for name, help_text in COMMANDS.items():
        modules[name] = importlib.import_module(f"nmt.cli.{name.replace('-', '_')}")
        p = sub.add_parser(name, help=help_text, description=modules[name].__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        modules[name].add_arguments(p)
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    return run_guarded(modules[args.command].run, args)
