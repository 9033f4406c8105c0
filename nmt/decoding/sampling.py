"""Sampling: each output token drawn from the model's distribution (back-translation).

`sample` walks one path per (sentence, sample) as greedy search does (`search.walk`: the
same processors, prefixes and maximum lengths), but draws each token from the step's
distribution, reshaped by the options in `Sampling`: divided by the temperature, cut to
the `top_k` most likely tokens, then to the smallest set of most likely tokens whose
probability (renormalised over what top_k left) reaches `top_p` (nucleus), and
renormalised. top_k = 1 is greedy search.

Randomness: every path draws its uniforms from its own `torch.Generator`, seeded from its
sentence's seed and its sample number, never from torch's global generator. The caller
gives each sentence a seed (`Translator` draws them, in input order, from one generator
seeded per call), so a sentence's samples do not depend on the batch it lands in, and the
same seed repeats a run exactly. A token is drawn by inverting the cumulative distribution
of the kept tokens at the path's uniform for that step.

A hypothesis' score is the sum of the model's log-probs of its tokens (before temperature
and cuts), as greedy search scores it. PAD and BOS, which no training target holds, are never
drawn (a weak model gives them some probability).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from nmt.decoding.processors import Prefixes, ban_tokens, build_processors
from nmt.decoding.search import Decodable, Hypothesis, max_lengths, walk
from nmt.special import BOS_ID, PAD_ID

_GOLDEN = 0x9E3779B97F4A7C15  # spreads sample numbers over the seed space
# never targets in training, yet not quite improbable under a weak model: never drawn
NEVER_SAMPLED = (PAD_ID, BOS_ID)


@dataclass(frozen=True)
class Sampling:
    """temperature > 0; top_k >= 1 or None (no cut); top_p in (0, 1] (1: no cut); samples
    >= 1 outputs per sentence; seed: the run's seed (None: a fresh one per call)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    samples: int = 1
    seed: int | None = None

    def check(self, names: Mapping[str, str] | None = None) -> None:
        """Each value in its range, else a ValueError naming it as `names` spells it (the
        command line's flags, the API's keywords)."""
        name = dict(temperature="temperature", top_k="top_k", top_p="top_p",
                    samples="samples") | dict(names or {})
        if not self.temperature > 0:
            raise ValueError(f"{name['temperature']}: must be > 0 (got {self.temperature})")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"{name['top_k']}: must be >= 1 (got {self.top_k})")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"{name['top_p']}: must be in (0, 1] (got {self.top_p})")
        if self.samples < 1:
            raise ValueError(f"{name['samples']}: must be >= 1 (got {self.samples})")

    def seeds(self, n: int) -> list[int]:
        """One seed per sentence, in input order, from a generator seeded with `seed` (or
        seeded afresh when it is None); torch's global generator is left alone."""
        gen = torch.Generator()
        if self.seed is None:
            gen.seed()
        else:
            gen.manual_seed(self.seed)
        return torch.randint(0, 2**62, (n,), generator=gen).tolist()


def kept_distribution(log_probs: torch.Tensor, temperature: float = 1.0,
                      top_k: int | None = None, top_p: float = 1.0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The distribution a token is drawn from, most likely first.

    log_probs (N, V') -> probs (N, V'), sorted descending and zero outside the kept tokens
    (not renormalised), and order (N, V'): the log_probs column of each. The kept tokens are
    a leading run of each row: the top_k most likely, then of those the ones whose
    probability before them (temperature applied, renormalised over what top_k kept) is
    < top_p; always at least the most likely one.
    """
    probs = torch.softmax(log_probs.float() / temperature, dim=-1)
    probs, order = probs.sort(dim=-1, descending=True, stable=True)
    keep = probs > 0
    if top_k is not None:
        keep &= torch.arange(probs.size(1), device=probs.device) < top_k
    if top_p < 1.0:  # over what top_k left, renormalised
        left = probs * keep
        before = (left.cumsum(dim=-1) - left) / left.sum(dim=-1, keepdim=True)
        keep &= before < top_p
    keep[:, 0] = True
    return probs * keep, order


def draw(log_probs: torch.Tensor, uniforms: torch.Tensor, temperature: float = 1.0,
         top_k: int | None = None, top_p: float = 1.0) -> torch.Tensor:
    """One column per row of log_probs (N, V'), at uniforms (N,) in [0, 1): the token where
    the cumulative kept distribution passes uniform * its total."""
    probs, order = kept_distribution(log_probs, temperature, top_k, top_p)
    cumulative = probs.cumsum(dim=-1)  # (N, V')
    target = uniforms.to(cumulative.dtype).unsqueeze(1) * cumulative[:, -1:]
    index = torch.searchsorted(cumulative, target, right=True)  # first cumulative > target
    last = (probs > 0).sum(dim=1, keepdim=True) - 1  # rounding never picks a cut token
    return order.gather(1, torch.minimum(index, last)).squeeze(1)


def path_uniforms(seeds: Sequence[int], samples: int, length: int) -> torch.Tensor:
    """(len(seeds) * samples, length) uniforms: path i * samples + j, sample j of sentence
    i, from its own CPU generator (so the same on every device)."""
    rows = []
    for seed in seeds:
        for j in range(samples):
            gen = torch.Generator().manual_seed((seed + j * _GOLDEN) % 2**63)
            rows.append(torch.rand(length, generator=gen))
    return torch.stack(rows)


@torch.inference_mode()
def sample(model: Decodable, src: torch.Tensor, src_lengths: torch.Tensor, *,
           options: Sampling, seeds: Sequence[int] | None = None, max_len_ratio: float = 2.0,
           max_len_offset: int = 10, min_len: int = 0, ban_unk: bool = False,
           prefix: Sequence[Sequence[int]] | None = None) -> list[list[Hypothesis]]:
    """Per sentence, `options.samples` sampled hypotheses, in the order drawn.

    Shapes: src (B, S), src_lengths (B,). seeds: one per sentence (default: from
    `options.seeds(B)`). min_len, ban_unk, prefix and the maximum length as for `greedy`
    (the processors act before temperature and cuts; a prefix is emitted as given). PAD
    and BOS are never drawn.
    """
    options.check()
    B, n = src.size(0), options.samples
    seeds = list(options.seeds(B) if seeds is None else seeds)
    if len(seeds) != B:
        raise ValueError(f"seeds: {len(seeds)} seeds for {B} sentences")
    prefixes = Prefixes.of(prefix, B)
    limits = prefixes.limits(max_lengths(src_lengths, max_len_ratio, max_len_offset).tolist())
    memory, state = model.encode(src, src_lengths)
    if n > 1:  # n paths per sentence, consecutive rows
        expand = torch.arange(B, device=src.device).repeat_interleave(n)
        memory, state = memory.select(expand), model.reorder_state(state, expand)
    uniforms = path_uniforms(seeds, n, max(limits)).to(src.device)  # (B*n, T)

    def choose(log_probs: torch.Tensor, paths: list[int], t: int) -> torch.Tensor:
        return draw(log_probs, uniforms[paths, t], options.temperature, options.top_k,
                    options.top_p)

    processors = [ban_tokens(NEVER_SAMPLED), *build_processors(min_len, ban_unk)]
    paths = walk(model, memory, state, [p // n for p in range(B * n)], src_lengths.tolist(),
                 limits, processors, prefixes, choose)
    return [paths[i * n: (i + 1) * n] for i in range(B)]
