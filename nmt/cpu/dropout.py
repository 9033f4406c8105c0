"""Dropout with a cheaper CPU mask than torch's.

torch's CPU dropout draws its mask with `bernoulli_(p)`: one call of the 64-bit generator per
element, in a serial loop, a visible share of a training update (BENCHMARKS.md). `dropout`
here draws 64-bit words with `random_()` (63 uniform bits each: torch leaves
the top bit 0), views each word as four 16-bit lanes and uses the three low lanes, so a word
serves three elements; an element is kept when its lane is below a threshold, i.e. with
probability keep = round((1 - p) 2^16) / 2^16 (within 2^-17 of 1 - p), and kept elements are
scaled by 1 / keep, so the output's expectation is the input, exactly as with torch's dropout.
The mask comes from torch's default generator, so `torch.manual_seed` and the saved RNG state
make it reproducible.

On other devices (CUDA's dropout is one fused kernel) this is `F.dropout` itself.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn

LANE_BITS = 16
LANES = 3  # of the four 16-bit lanes of a 63-bit word, those with 16 random bits
# the lanes of a word holding its low 48 bits (the top lane has only 15 random bits)
_LOW_LANES = slice(0, LANES) if sys.byteorder == "little" else slice(1, 1 + LANES)


def keep_probability(p: float) -> float:
    """The probability with which `dropout(.., p)` keeps an element on the CPU."""
    return round((1.0 - p) * 2 ** LANE_BITS) / 2 ** LANE_BITS


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype) -> torch.Tensor:
    """A CPU mask of `shape`: 1 / keep where kept (probability keep), 0 where dropped."""
    n = shape.numel()
    words = -(-n // LANES)
    bits = torch.empty(words, dtype=torch.int64).random_()  # uniform in [0, 2^63)
    lanes = bits.view(torch.int16).view(words, 4)[:, _LOW_LANES]  # uniform in [-2^15, 2^15)
    keep = keep_probability(p)
    threshold = round(keep * 2 ** LANE_BITS) - 2 ** (LANE_BITS - 1)
    kept = torch.lt(lanes, threshold).view(-1)[:n].view(shape)
    return torch.mul(kept, 1.0 / keep, out=torch.empty(shape, dtype=dtype))


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout: x with each element zeroed with probability ~p, the rest scaled."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, True)
    return x * keep_mask(x.shape, p, x.dtype)


class Dropout(nn.Dropout):
    """`nn.Dropout` with the mask of `dropout` (see the module docstring); what
    `nmt.cpu.accelerate` makes of a model's `nn.Dropout`s."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
