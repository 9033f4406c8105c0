"""Padded batches and token-bucketed batching of tokenized examples.

Batching groups examples of similar length so that each batch holds about `batch_tokens`
target tokens, padding included.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import datasets
import numpy as np
import torch

from nmt.special import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Batch:
    """A padded batch. Shapes: src (B, S), src_lengths (B,), tgt_in/tgt_out (B, T).

    tgt_in = BOS y_1..y_n, tgt_out = y_1..y_n EOS; src ends with EOS; PAD fills the rest.
    """

    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    indices: list[int]

    @property
    def n_tokens(self) -> int:
        return int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=non_blocking)

        return Batch(move(self.src), self.src_lengths, move(self.tgt_in), move(self.tgt_out),
                     self.indices)

    def pin_memory(self) -> Batch:
        return Batch(self.src.pin_memory(), self.src_lengths, self.tgt_in.pin_memory(),
                     self.tgt_out.pin_memory(), self.indices)


def pad(seqs: list[list[int]], value: int = PAD_ID) -> torch.Tensor:
    out = torch.full((len(seqs), max(len(s) for s in seqs)), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def encode_sources(ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Source id lists -> (src (B, S), src_lengths (B,)), EOS appended."""
    seqs = [list(s) + [EOS_ID] for s in ids]
    return pad(seqs), torch.tensor([len(s) for s in seqs], dtype=torch.long)


def collate(src_ids: list[list[int]], tgt_ids: list[list[int]], indices: list[int]) -> Batch:
    src, src_lengths = encode_sources(src_ids)
    tgt_in = pad([[BOS_ID] + list(t) for t in tgt_ids])
    tgt_out = pad([list(t) + [EOS_ID] for t in tgt_ids])
    return Batch(src, src_lengths, tgt_in, tgt_out, list(indices))


def window_batches(src_lens: np.ndarray, tgt_lens: np.ndarray, batch_tokens: int,
                   rng: np.random.Generator) -> list[list[int]]:
    """Length-bucketed batches of one window of examples (positions 0..n-1).

    The examples are sorted by target then source length (a stable sort: ties keep their
    order), cut into batches of at most `batch_tokens` padded tokens on either side
    (count * longest; at least one example each), and the batch order is shuffled.
    Used by in-memory training (one window: the shuffled corpus) and by streaming (windows
    of the shuffled stream), so both make the same batches from the same examples.
    """
    order = np.lexsort((src_lens, tgt_lens))
    batches, current, longest = [], [], 0
    for i in order:
        n = int(max(tgt_lens[i], src_lens[i]))
        if current and max(longest, n) * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(int(i))
        longest = max(longest, n)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def token_batches(src_lens: np.ndarray, tgt_lens: np.ndarray, batch_tokens: int,
                  seed: int, epoch: int) -> list[list[int]]:
    """Length-bucketed batches of a whole corpus for one epoch, deterministic in (seed, epoch):
    the corpus in a random order, then `window_batches` over all of it. Lengths include the
    EOS/BOS token."""
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(src_lens))
    batches = window_batches(src_lens[perm], tgt_lens[perm], batch_tokens, rng)
    return [[int(perm[i]) for i in b] for b in batches]


class BatchIterator:
    """Batches of a tokenized training split for one epoch, resumable at any position."""

    def __init__(self, ds: datasets.Dataset, batch_tokens: int, seed: int):
        self.ds = ds
        self.batch_tokens = batch_tokens
        self.seed = seed
        self.src_lens = np.array([len(x) + 1 for x in ds["src_ids"]])
        self.tgt_lens = np.array([len(x) + 1 for x in ds["tgt_ids"]])

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        return token_batches(self.src_lens, self.tgt_lens, self.batch_tokens, self.seed, epoch)

    def epoch(self, epoch: int) -> Iterator[list[int]]:
        """The epoch's batches as index lists (what `batch` takes)."""
        return iter(self.epoch_batches(epoch))

    def epoch_len(self, epoch: int) -> int | None:
        return len(self.epoch_batches(epoch))

    def batch(self, indices: list[int]) -> Batch:
        rows = self.ds[indices]
        return collate(rows["src_ids"], rows["tgt_ids"], indices)
