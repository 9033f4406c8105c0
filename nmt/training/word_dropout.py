"""Word dropout: a regulariser that hides whole words from the model while it trains.

Every real token of the source and of the decoder's input (`tgt_in`: BOS y_1..y_{n-1} ...)
is replaced by UNK with probability `p`, independently; PAD, BOS and EOS stay, and so do the
labels (`tgt_out`), so the model still learns to predict every word, now sometimes from an
unknown previous word or an unknown source word. This is the token-level form of the source
and target word dropout of Sennrich et al. (2016, Edinburgh's WMT16 systems; Marian's
`--dropout-src/--dropout-trg`), which zero the embedding instead: replacing the id keeps the
model's input path (and its fast paths) untouched, and trains the UNK embedding that unknown
words meet at test time.

Draws come from torch's generator on the batch's device, which checkpoints save and resume
restores, so a resumed run draws what the uninterrupted one would have drawn.
"""

from __future__ import annotations

import dataclasses

import torch

from nmt.data.batching import Batch
from nmt.special import EOS_ID, UNK_ID


def drop_words(ids: torch.Tensor, p: float) -> torch.Tensor:
    """`ids` (B, T) with each real token (id > EOS) replaced by UNK with probability `p`."""
    hide = (ids > EOS_ID) & (torch.rand(ids.shape, device=ids.device) < p)
    return ids.masked_fill(hide, UNK_ID)


def word_dropout(batch: Batch, p: float) -> Batch:
    """`batch` with word dropout on its source and decoder input; itself when `p` is 0."""
    if p <= 0:
        return batch
    return dataclasses.replace(batch, src=drop_words(batch.src, p),
                               tgt_in=drop_words(batch.tgt_in, p))
