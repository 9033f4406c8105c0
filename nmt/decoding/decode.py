"""Searches configured from a `DecodeConfig`, and decoding id sequences in length-sorted
batches with the results back in input order.

A `Search` is called as `search(model, src, src_lengths, **per_sentence)`: the keyword
arguments are per-sentence lists that `decode_ids` slices to each batch, given only when the
caller has them: `prefix` (target ids each output starts with), `seeds` (sampling).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm import tqdm

from nmt.config import DecodeConfig
from nmt.data.batching import encode_sources
from nmt.decoding.beam import beam_search, check_beam_options
from nmt.decoding.processors import LengthPenalty
from nmt.decoding.sampling import Sampling, sample
from nmt.decoding.search import DEFAULT_LENGTH_PENALTY, Decodable, Hypothesis, greedy

Search = Callable[..., list[Hypothesis]]


def greedy_search(cfg: DecodeConfig) -> Search:
    """Greedy search with the options of `cfg` that can change an argmax (`ban_unk`); the
    length and coverage penalties cannot, and the beam size is 1 by definition."""

    def search(model: Decodable, src: torch.Tensor, src_lengths: torch.Tensor,
               prefix: Sequence[Sequence[int]] | None = None):
        return greedy(model, src, src_lengths, max_len_ratio=cfg.max_len_ratio,
                      max_len_offset=cfg.max_len_offset, ban_unk=cfg.ban_unk, prefix=prefix)

    return search


def sample_search(cfg: DecodeConfig, options: Sampling) -> Search:
    """Sampling (`nmt.decoding.sampling`) as a `Search`: per sentence its first sample, the
    others on its `alternatives` in the order drawn. `seeds` (one per sentence) make the
    samples independent of batching; without them each call draws fresh seeds from
    `options.seed`."""
    options.check()

    def search(model: Decodable, src: torch.Tensor, src_lengths: torch.Tensor,
               prefix: Sequence[Sequence[int]] | None = None,
               seeds: Sequence[int] | None = None):
        drawn = sample(model, src, src_lengths, options=options, seeds=seeds,
                       max_len_ratio=cfg.max_len_ratio, max_len_offset=cfg.max_len_offset,
                       ban_unk=cfg.ban_unk, prefix=prefix)
        for hyps in drawn:
            hyps[0].alternatives = hyps[1:]
        return [hyps[0] for hyps in drawn]

    return search


def make_search(cfg: DecodeConfig, n_best: int = 1, sampling: Sampling | None = None
                ) -> Search:
    """The search `cfg` asks for: sampling when `sampling` is given, else greedy for beam
    size 1 (and one hypothesis), else beam."""
    if sampling is not None:
        return sample_search(cfg, sampling)
    if cfg.beam_size == 1 and n_best == 1:
        return greedy_search(cfg)
    return beam_search_fn(cfg, cfg.beam_size, n_best, cfg.length_penalty, cfg.coverage_penalty,
                          cfg.ban_unk)


def beam_search_fn(cfg: DecodeConfig, beam_size: int, n_best: int = 1,
                   length_penalty: LengthPenalty | str = DEFAULT_LENGTH_PENALTY,
                   coverage_penalty: float = 0.0, ban_unk: bool = False) -> Search:
    """Beam search as a `Search`: the best hypothesis per sentence.

    With n_best > 1 the runners-up travel on the best one's `alternatives` (best first), so
    `decode_ids` and `Translator` keep one hypothesis per sentence. Options are checked here,
    before any decoding.
    """
    check_beam_options(beam_size, n_best, coverage=coverage_penalty)
    penalty = LengthPenalty.parse(length_penalty)

    def search(model: Decodable, src: torch.Tensor, src_lengths: torch.Tensor,
               prefix: Sequence[Sequence[int]] | None = None):
        nbest = beam_search(model, src, src_lengths, beam_size=beam_size, n_best=n_best,
                            max_len_ratio=cfg.max_len_ratio, max_len_offset=cfg.max_len_offset,
                            length_penalty=penalty, coverage_penalty=coverage_penalty,
                            ban_unk=ban_unk, prefix=prefix)
        for hyps in nbest:
            hyps[0].alternatives = hyps[1:]
        return [hyps[0] for hyps in nbest]

    return search


def decode_ids(model: Decodable, src_ids: list[list[int]], search: Search,
               batch_size: int, device: torch.device | str = "cpu",
               progress: bool = False, per_sentence: dict[str, Sequence[Any]] | None = None
               ) -> list[Hypothesis]:
    """Decode id sequences (no EOS) in batches of similar length; results in input order.

    per_sentence: keyword arguments of `search` with one entry per sequence (e.g.
    `{"prefix": [...]}`), passed to each batch for its own sequences."""
    per_sentence = per_sentence or {}
    for key, values in per_sentence.items():
        if len(values) != len(src_ids):
            raise ValueError(f"{key}: {len(values)} entries for {len(src_ids)} sentences")
    order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]), reverse=True)
    out: list[Hypothesis | None] = [None] * len(src_ids)
    with tqdm(total=len(order), desc="decode", unit="sent", disable=not progress or None,
              leave=False) as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start: start + batch_size]
            src, src_lengths = encode_sources([src_ids[i] for i in chunk])
            extra = {key: [values[i] for i in chunk] for key, values in per_sentence.items()}
            hyps = search(model, src.to(device), src_lengths, **extra)
            for i, hyp in zip(chunk, hyps, strict=True):
                out[i] = hyp
            bar.update(len(chunk))
    return out  # type: ignore[return-value]
