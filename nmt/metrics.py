"""Corpus-level BLEU, chrF and TER via sacrebleu, each with its reproducibility signature.

Scores are always computed on detokenized text with sacrebleu's default settings (BLEU:
13a tokenization, exponential smoothing; chrF: chrF2; TER: tercom). `lowercase=True`
makes all three case-insensitive, which the signature records as `case:lc`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

from nmt.errors import NmtError

METRICS = ("bleu", "chrf", "ter")
_NAMES = {"bleu": "BLEU", "chrf": "chrF", "ter": "TER"}


@dataclass(frozen=True)
class Score:
    """One corpus score: `name` is "BLEU", "chrF" or "TER"; `text` is sacrebleu's string."""

    name: str
    value: float
    signature: str
    text: str

    def to_dict(self) -> dict[str, str | float]:
        return dataclasses.asdict(self)


def _make_metric(name: str, lowercase: bool) -> Metric:
    if name == "bleu":
        return BLEU(lowercase=lowercase)
    if name == "chrf":
        return CHRF(lowercase=lowercase)
    if name == "ter":
        return TER(case_sensitive=not lowercase)
    raise NmtError(f"unknown metric {name!r}; valid metrics: {', '.join(METRICS)}")


def corpus_scores(
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]],
    *,
    lowercase: bool = False,
    metrics: Sequence[str] = METRICS,
) -> list[Score]:
    """Score `hyps` against one or more reference streams, each as long as `hyps`."""
    if not hyps:
        raise NmtError("no hypotheses to score (0 lines)")
    if not refs:
        raise NmtError("no reference streams given")
    for i, stream in enumerate(refs, start=1):
        if len(stream) != len(hyps):
            raise NmtError(
                f"reference stream {i} has {len(stream)} lines but there are {len(hyps)} hypotheses"
            )
    hyps, refs = list(hyps), [list(r) for r in refs]
    out = []
    for name in dict.fromkeys(m.lower() for m in metrics):
        metric = _make_metric(name, lowercase)
        result = metric.corpus_score(hyps, refs)
        out.append(
            Score(
                name=_NAMES[name],
                value=float(result.score),
                signature=str(metric.get_signature()),
                text=str(result),
            )
        )
    return out


def corpus_bleu(hyps: Sequence[str], refs_single: Sequence[str], lowercase: bool = False) -> Score:
    """BLEU against a single reference stream (used for validation during training)."""
    return corpus_scores(hyps, [refs_single], lowercase=lowercase, metrics=("bleu",))[0]


def format_score(score: Score) -> str:
    """`BLEU = 34.21 ... | signature: nrefs:1|case:mixed|...`"""
    return f"{score.text} | signature: {score.signature}"
