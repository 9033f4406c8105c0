"""Attention over the encoder memory, one signature for every score function.

`keys(memory)` is the per-sentence work (the key projection U h_i), done once when the memory
is built. `forward(query, keys, values, mask)` scores one query per sentence (B, Hq) or a
whole sequence of queries (B, T, Hq) at once, and returns (context, weights):

    alpha_t = softmax_i(score(q_t, h_i)) over the real source positions;  c_t = sum_i alpha_ti h_i

Padded source positions get exactly zero weight. No state is kept on the module.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim of scores (B, T, S), with mask (B, S) True at real tokens."""
    scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
    return torch.softmax(scores, dim=-1)


class Attention(nn.Module):
    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """memory (B, S, M) -> keys (B, S, K)."""
        raise NotImplementedError

    def scores(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query (B, T, Hq), keys (B, S, K) -> scores (B, T, S)."""
        raise NotImplementedError

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shapes: query (B, Hq) or (B, T, Hq); keys (B, S, K); values (B, S, M); mask (B, S).

        Returns context (B, M) or (B, T, M), weights (B, S) or (B, T, S).
        """
        single = query.dim() == 2
        if single:
            query = query.unsqueeze(1)  # (B, 1, Hq)
        weights = masked_softmax(self.scores(query, keys), mask)  # (B, T, S)
        context = torch.bmm(weights, values)  # (B, T, M)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights


class AdditiveAttention(Attention):
    """e_i = v^T tanh(W q + U h_i): Bahdanau's score, and Luong's "concat" (whose
    v^T tanh(W_a [q; h_i]) is the same function, W_a = [W U]). Keys: U h_i."""

    def __init__(self, query_size: int, memory_size: int, hidden_size: int):
        super().__init__()
        self.query_proj = nn.Linear(query_size, hidden_size, bias=False)  # W
        self.key_proj = nn.Linear(memory_size, hidden_size, bias=False)  # U
        self.energy = nn.Linear(hidden_size, 1, bias=False)  # v

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key_proj(memory)  # (B, S, A)

    def scores(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        q = self.query_proj(query)  # (B, T, A)
        energies = torch.tanh(q.unsqueeze(2) + keys.unsqueeze(1))  # (B, T, S, A)
        return self.energy(energies).squeeze(-1)  # (B, T, S)


class DotAttention(Attention):
    """Luong "dot": e_i = q^T h_i (query and memory sizes must match)."""

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return memory

    def scores(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


class GeneralAttention(DotAttention):
    """Luong "general": e_i = q^T W_a h_i, with the keys W_a h_i computed once."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__()
        self.key_proj = nn.Linear(memory_size, query_size, bias=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key_proj(memory)


def build_attention(kind: str, query_size: int, memory_size: int, hidden_size: int) -> Attention:
    if kind in ("bahdanau", "concat"):
        return AdditiveAttention(query_size, memory_size, hidden_size)
    if kind == "general":
        return GeneralAttention(query_size, memory_size)
    if kind == "dot":
        assert query_size == memory_size, "dot attention needs equal query and memory sizes"
        return DotAttention()
    raise ValueError(f"unknown attention {kind!r}")
