"""Loading what decoding needs, once: one model or an ensemble, with int8 weights and
shortlists as asked. The command line and the benchmarks build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nmt.checkpoint import checkpoint_path, load_for_inference, load_model
from nmt.config import Config
from nmt.cpu import accelerate
from nmt.data.vocab import Vocabs
from nmt.decoding.ensemble import Ensemble, check_members
from nmt.decoding.search import Decodable
from nmt.decoding.shortlist import Shortlist
from nmt.model.seq2seq import Seq2Seq


@dataclass
class Loaded:
    """decodable: what search runs (the model, under its shortlist, or the ensemble);
    models: the members' plain models; cfg, vocabs: member 0's (the source side read,
    the decoding defaults) with the target vocabulary all members share."""

    decodable: Decodable
    models: list[Seq2Seq]
    cfg: Config
    vocabs: Vocabs
    names: list[str]

    @property
    def is_ensemble(self) -> bool:
        return len(self.models) > 1


def load(checkpoints: str | Path | Sequence[str | Path], *, quantize: bool = False,
         shortlist: bool = False, weights: Sequence[float] | None = None,
         combine: str = "prob", fused: bool = True) -> Loaded:
    """Model directories (or .pt files in them) ready to decode: one model, or with several
    an `Ensemble` (`weights`, `combine`: see `nmt.decoding.ensemble`). `shortlist` uses each
    directory's shortlist.pt (merged per batch in an ensemble). `fused=False` attaches the
    training kernels only (no fused decoding step: what alignment uses)."""
    paths = [checkpoints] if isinstance(checkpoints, (str, Path)) else list(checkpoints)
    names = [str(p) for p in paths]
    members = [load_for_inference(p, quantize=quantize) if fused else _load_plain(p)
               for p in paths]
    models = [m for m, _, _ in members]
    vocabs = [v for _, _, v in members]
    check_members([v.tgt for v in vocabs], names)
    decodables = []
    for path, model, vocab in zip(paths, models, vocabs, strict=True):
        if shortlist:
            decodables.append(Shortlist.beside(checkpoint_path(path).parent, vocab)
                              .restrict(model))
        else:
            decodables.append(model)
    if len(paths) == 1 and weights is None:
        decodable = decodables[0]
    else:
        decodable = Ensemble(decodables, [v.src for v in vocabs], weights, combine)
    return Loaded(decodable, models, members[0][1], vocabs[0], names)


def _load_plain(path: str | Path) -> tuple[Seq2Seq, Config, Vocabs]:
    model, cfg, vocabs = load_model(path)
    return accelerate(model), cfg, vocabs  # the CPU kernels, as in training
