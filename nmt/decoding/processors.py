"""Scoring pieces of beam search, each small and tested on its own (used by `search.py`).

- Log-prob processors, `(log_probs (N, V'), t, vocab) -> log_probs (N, V')`: applied to every
  step's next-token distribution before the beam picks its candidates; `t` is the number of
  tokens the hypotheses have emitted so far (all rows of a step share it); `vocab` (V',) the
  target ids of the columns under a shortlist, None when the columns are all V ids. They
  return a new tensor.
- `LengthPenalty`: turns a hypothesis' summed log-prob into a length-normalised score.
- `coverage_penalty`: GNMT's penalty for source words that received too little attention.
- `Prefixes` and `force_tokens`: target prefixes (the output of a sentence starts with its
  prefix, and search goes on from there), forced one step at a time after the processors.

The ranking score of a beam hypothesis is `LengthPenalty.normalise(raw, L) + coverage_penalty`,
where raw is the sum of its token log-probs and L the number of tokens it emitted (EOS
included when it finished).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from nmt.special import BOS_ID, EOS_ID, PAD_ID, UNK_ID

LogProbProcessor = Callable[[torch.Tensor, int, "torch.Tensor | None"], torch.Tensor]


def ban_tokens(ids: Sequence[int]) -> LogProbProcessor:
    """Never emit `ids`: their log-prob becomes -inf at every step."""
    index = list(ids)

    def process(log_probs: torch.Tensor, t: int, vocab: torch.Tensor | None = None
                ) -> torch.Tensor:
        banned = torch.tensor(index, device=log_probs.device)
        if vocab is not None:  # the columns holding those ids, where the shortlist has them
            banned = torch.isin(vocab, banned).nonzero().squeeze(1)
        return log_probs.index_fill(1, banned, -math.inf)

    return process


def min_length(n: int, eos_id: int = EOS_ID) -> LogProbProcessor:
    """No EOS before `n` tokens have been emitted (so every hypothesis has >= n tokens)."""
    ban_eos = ban_tokens([eos_id])

    def process(log_probs: torch.Tensor, t: int, vocab: torch.Tensor | None = None
                ) -> torch.Tensor:
        return ban_eos(log_probs, t, vocab) if t < n else log_probs

    return process


def build_processors(min_len: int = 0, ban_unk: bool = False) -> list[LogProbProcessor]:
    processors = []
    if ban_unk:
        processors.append(ban_tokens([UNK_ID]))
    if min_len > 0:
        processors.append(min_length(min_len))
    return processors


def apply_processors(processors: Sequence[LogProbProcessor], log_probs: torch.Tensor,
                     t: int, vocab: torch.Tensor | None = None) -> torch.Tensor:
    for process in processors:
        log_probs = process(log_probs, t, vocab)
    return log_probs


LENGTH_PENALTIES = ("none", "average", "gnmt")


@dataclass(frozen=True)
class LengthPenalty:
    """Length normalisation of a summed log-prob `raw` over L emitted tokens (EOS included).

    "none": raw; "average": raw / L; "gnmt" (Wu et al. 2016): raw / ((5 + L) / 6) ** alpha,
    where alpha = 0 is "none" and a larger alpha favours longer output.
    As a string (config files, command lines): "none", "average" or "gnmt:<alpha>".
    """

    kind: str = "none"
    alpha: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in LENGTH_PENALTIES:
            raise ValueError(f"unknown length penalty {self.kind!r}; valid: "
                             f"{', '.join(LENGTH_PENALTIES)}")
        if self.kind != "gnmt" and self.alpha != 0.0:
            raise ValueError(f"length penalty {self.kind!r} takes no alpha")

    @classmethod
    def parse(cls, spec: str | LengthPenalty) -> LengthPenalty:
        """"none" | "average" | "gnmt:0.6" (or an existing LengthPenalty) -> LengthPenalty."""
        if isinstance(spec, LengthPenalty):
            return spec
        kind, _, alpha = spec.strip().partition(":")
        if kind == "gnmt":
            try:
                return cls("gnmt", float(alpha))
            except ValueError:
                raise ValueError(f"length penalty {spec!r}: write gnmt:<alpha>, "
                                 f"e.g. gnmt:0.6") from None
        if alpha:
            raise ValueError(f"length penalty {spec!r}: {kind!r} takes no alpha")
        return cls(kind)

    def __str__(self) -> str:
        return f"gnmt:{self.alpha:g}" if self.kind == "gnmt" else self.kind

    def denominator(self, length: int) -> float:
        if self.kind == "average":
            return float(length)
        if self.kind == "gnmt":
            return ((5.0 + length) / 6.0) ** self.alpha
        return 1.0

    def normalise(self, raw: torch.Tensor, length: int) -> torch.Tensor:
        """raw (N,) summed log-probs of hypotheses with `length` tokens -> (N,) scores."""
        return raw / self.denominator(length)

    def best_possible(self, raw: float, shortest: int, longest: int) -> float:
        """An upper bound on the normalised score of any extension of a live hypothesis.

        raw <= 0 is its summed log-prob now; it may still end with any length in
        [shortest, longest]. Its raw score can only decrease, and raw' / d <= raw / d for
        d > 0, so the bound is raw divided by the largest denominator in that range, which
        (the denominator being monotone in L) is at one of the two ends.
        """
        return raw / max(self.denominator(shortest), self.denominator(longest))


def coverage_penalty(attn_sum: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """GNMT coverage penalty: beta * sum_i log(min(sum_t alpha_{t,i}, 1)) over real positions.

    Shapes: attn_sum (N, S), the attention summed over a hypothesis' steps; mask (N, S), True
    on real source positions -> (N,), <= 0. A real position that got no attention at all
    gives -inf (for beta > 0); beta = 0 gives exactly 0.
    """
    if beta == 0.0:
        return attn_sum.new_zeros(attn_sum.size(0))
    logs = attn_sum.clamp(max=1.0).log()
    return beta * torch.where(mask, logs, torch.zeros_like(logs)).sum(dim=-1)


# ---------------------------------------------------------------------------- target prefixes


@dataclass(frozen=True)
class Prefixes:
    """The target prefix of each sentence of a batch: the first len(ids[i]) tokens sentence
    i emits are ids[i], whatever the model prefers; the search goes on from there (nothing
    after the prefix is forced, EOS included). An empty prefix forces nothing.

    The prefix tokens count as emitted tokens: their log-probs (the model's, before any
    processor) are in the hypothesis' score, and they count in its length, as in fairseq.
    """

    ids: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, prefix: Sequence[Sequence[int]] | None, n: int) -> Prefixes:
        """Prefixes of `n` sentences (None: none); a prefix holding BOS, EOS or PAD, or a
        count other than n, is a ValueError."""
        if prefix is None:
            return cls(((),) * n)
        if len(prefix) != n:
            raise ValueError(f"prefix: {len(prefix)} prefixes for {n} sentences")
        ids = tuple(tuple(int(t) for t in p) for p in prefix)
        special = {BOS_ID, EOS_ID, PAD_ID} & {t for p in ids for t in p}
        if special:
            raise ValueError(f"prefix: holds special token id(s) {sorted(special)} "
                             f"(BOS, EOS or PAD)")
        return cls(ids)

    def limits(self, limits: list[int]) -> list[int]:
        """Maximum lengths raised to fit each prefix and one token after it."""
        return [max(n, len(p) + 1 if p else 0) for n, p in zip(limits, self.ids, strict=True)]

    @cached_property
    def longest(self) -> int:
        return max(map(len, self.ids), default=0)

    def forced(self, t: int, sentences: Sequence[int], device: torch.device, rows: int = 1
               ) -> torch.Tensor | None:
        """The token each row must emit at step t, -1 where the row is free: `rows`
        consecutive rows per sentence of `sentences` (a beam), (len(sentences) * rows,);
        None when no row is forced."""
        if t >= self.longest:
            return None
        tokens = [p[t] if t < len(p) else -1 for p in (self.ids[i] for i in sentences)]
        if all(x < 0 for x in tokens):
            return None
        forced = torch.tensor(tokens, dtype=torch.long, device=device)
        return forced.repeat_interleave(rows) if rows > 1 else forced


def force_tokens(log_probs: torch.Tensor, raw: torch.Tensor, forced: torch.Tensor | None,
                 vocab: torch.Tensor | None = None) -> torch.Tensor:
    """Rows r with forced[r] >= 0 may emit only that target id, at the model's own log-prob
    (`raw`, before the processors: a prefix may hold a token they ban); other rows unchanged.

    Shapes: log_probs, raw (N, V'), columns over the ids `vocab` (V',) under a shortlist;
    forced (N,) or None. A forced id outside the shortlist's columns is a ValueError.
    """
    if forced is None:
        return log_probs
    rows = (forced >= 0).nonzero().squeeze(1)
    ids = forced.index_select(0, rows)
    if vocab is None:
        cols = ids
    else:
        match = vocab.unsqueeze(0) == ids.unsqueeze(1)  # (R, V')
        if not bool(match.any(dim=1).all()):
            raise ValueError("prefix: a prefix token is not among the shortlist's candidates")
        cols = match.long().argmax(dim=1)
    out = log_probs.index_fill(0, rows, -math.inf)
    out[rows, cols] = raw[rows, cols]
    return out
