"""The training loss: label-smoothed cross-entropy, summed over non-pad target positions.

For logits z_n (V,) of position n with target y_n and smoothing eps (torch's
`label_smoothing`): loss_n = (1 - eps) (-log p_n[y_n]) + (eps / V) sum_v (-log p_n[v]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float,
                  ignore_index: int) -> torch.Tensor:
    """The summed loss from logits (.., V) and target (..) (torch's op, in fp32)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), target.reshape(-1),
                           ignore_index=ignore_index, label_smoothing=smoothing, reduction="sum")
