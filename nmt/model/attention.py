"""Attention over the encoder memory, one signature for every score function.

`keys(memory)` is the per-sentence work (the key projection U h_i), done once when the memory
is built. `forward(query, keys, values, mask)` scores one query per sentence (B, Hq) or a
whole sequence of queries (B, T, Hq) at once, and returns (context, weights). Padded source
positions get exactly zero weight. No state is kept on the module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nmt.cpu.matmul import project
from nmt.cpu.recurrence import StepContext, StepProjection


@dataclass
class StepProducts:
    """Teacher forcing's products of one sequence whose gradients are computed once per
    sequence (`nmt.cpu.recurrence`): `context` mixes the values with the step's weights; `query`
    projects the step's query (additive attention; None where scoring has no projection)."""

    context: StepContext
    query: StepProjection | None = None


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim of scores (B, T, S), with mask (B, S) True at real tokens."""
    scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
    return torch.softmax(scores, dim=-1)


class Attention(nn.Module):
    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """memory (B, S, M) -> keys (B, S, K)."""
        raise NotImplementedError

    def scores(self, query: torch.Tensor, keys: torch.Tensor,
               step_query: StepProjection | None = None) -> torch.Tensor:
        """query (B, T, Hq), keys (B, S, K) -> scores (B, T, S).

        step_query: `StepProducts.query`, for a single query (T = 1) in teacher forcing."""
        raise NotImplementedError

    def step_products(self, values: torch.Tensor) -> StepProducts:
        """The `StepProducts` of a teacher-forced sequence over the memory `values`."""
        return StepProducts(StepContext(values))

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor, products: StepProducts | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Shapes: query (B, Hq) or (B, T, Hq); keys (B, S, K); values (B, S, M); mask (B, S).

        products: with teacher forcing, the sequence's `StepProducts` (from `step_products`),
        through which a single query is projected and its context mixed (the gradients of the
        weights and values then come as one product per sequence, see `nmt.cpu.recurrence`).
        Returns context (B, M) or (B, T, M), weights (B, S) or (B, T, S).
        """
        single = query.dim() == 2
        if single:
            query = query.unsqueeze(1)  # (B, 1, Hq)
        step_query = None if products is None else products.query
        weights = masked_softmax(self.scores(query, keys, step_query), mask)  # (B, T, S)
        context = (torch.bmm(weights, values) if products is None
                   else products.context(weights))  # (B, T, M)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights


class AdditiveAttention(Attention):
    """e_i = v^T tanh(W q + U h_i): Bahdanau's score, and Luong's "concat".

    Computed as e_i = 2 v^T sigmoid(2 W q + 2 U h_i) - sum(v), which is the same number
    (tanh x = 2 sigmoid(2x) - 1, exact up to float rounding): torch's CPU sigmoid is about 3x
    faster than its tanh, and this (B, T, S, A) elementwise pass is most of what attention costs
    a decoding step. So `keys` holds 2 U h_i (computed once per sentence, like U h_i).
    Without autograd the (rows, T, S, A) energies are built a block of rows at a time, small
    enough to stay in cache between the add, the sigmoid and the product with v.
    """

    BLOCK = 1 << 18  # energy elements per block when no gradient is needed

    def __init__(self, query_size: int, memory_size: int, hidden_size: int):
        super().__init__()
        self.query_proj = nn.Linear(query_size, hidden_size, bias=False)
        self.key_proj = nn.Linear(memory_size, hidden_size, bias=False)
        self.energy = nn.Linear(hidden_size, 1, bias=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return 2 * project(self.key_proj, memory)  # (B, S, A): 2 U h_i

    def step_products(self, values: torch.Tensor) -> StepProducts:
        return StepProducts(StepContext(values), StepProjection(self.query_proj.weight))

    def scores(self, query: torch.Tensor, keys: torch.Tensor,
               step_query: StepProjection | None = None) -> torch.Tensor:
        if step_query is None:
            q = 2 * project(self.query_proj, query)  # (B, T, A)
        else:  # one query per row
            q = 2 * step_query(query.squeeze(1)).unsqueeze(1)
        v = self.energy.weight.view(-1)  # (A,)
        B, T, A = q.shape
        if torch.is_grad_enabled() and (q.requires_grad or keys.requires_grad):
            # sigmoid in place: one (B, T, S, A) tensor fewer
            s = torch.matmul((q.unsqueeze(2) + keys.unsqueeze(1)).sigmoid_(), v)  # (B, T, S)
        else:
            s = q.new_empty(B, T, keys.size(1))
            rows = max(1, self.BLOCK // (T * keys.size(1) * A))
            for i in range(0, B, rows):
                z = (q[i: i + rows].unsqueeze(2) + keys[i: i + rows].unsqueeze(1)).sigmoid_()
                torch.matmul(z, v, out=s[i: i + rows])
        return 2 * s - v.sum()


class DotAttention(Attention):
    """Luong "dot": e_i = q^T h_i (query and memory sizes must match)."""

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return memory

    def scores(self, query: torch.Tensor, keys: torch.Tensor,
               step_query: StepProjection | None = None) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


class GeneralAttention(DotAttention):
    """Luong "general": e_i = q^T W_a h_i, with the keys W_a h_i computed once."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__()
        self.key_proj = nn.Linear(memory_size, query_size, bias=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return project(self.key_proj, memory)


def build_attention(kind: str, query_size: int, memory_size: int, hidden_size: int) -> Attention:
    if kind in ("bahdanau", "concat"):
        return AdditiveAttention(query_size, memory_size, hidden_size)
    if kind == "general":
        return GeneralAttention(query_size, memory_size)
    if kind == "dot":
        assert query_size == memory_size, "dot attention needs equal query and memory sizes"
        return DotAttention()
    raise ValueError(f"unknown attention {kind!r}")
