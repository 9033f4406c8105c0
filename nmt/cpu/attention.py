"""The attention modules' CPU kernels: the same scores as `nmt.model.attention`, faster.

- Products through `nmt.cpu.matmul` (the layers are `FastLinear`s once accelerated).
- Additive attention computes e_i = 2 v^T sigmoid(2 W q + 2 U h_i) - sum(v), which is
  v^T tanh(W q + U h_i) (tanh x = 2 sigmoid(2x) - 1, equal up to float rounding): torch's CPU
  sigmoid is cheaper than its tanh, and this (B, T, S, A) elementwise pass is
  most of what attention costs a decoding step. So its keys hold 2 U h_i (computed once per
  sentence, like U h_i). Without autograd the (rows, T, S, A) energies are built a block of
  rows at a time, small enough to stay in cache between the add, the sigmoid and the
  product with v.
- In teacher forcing, a sequence's per-step products share their operands and defer their
  gradients to one product per sequence (`StepProducts`, see `nmt.cpu.recurrence`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nmt.cpu.recurrence import StepContext, StepProjection
from nmt.model.attention import (
    AdditiveAttention,
    Attention,
    DotAttention,
    GeneralAttention,
    masked_softmax,
)


@dataclass
class StepProducts:
    """Teacher forcing's products of one sequence whose gradients are computed once per
    sequence (`nmt.cpu.recurrence`): `context` mixes the values with the step's weights; `query`
    projects the step's query (additive attention; None where scoring has no projection)."""

    context: StepContext
    query: StepProjection | None = None


class FastAttention(Attention):
    """`Attention.forward` with a teacher-forced sequence's `StepProducts`."""

    def step_products(self, values: torch.Tensor) -> StepProducts:
        """The `StepProducts` of a teacher-forced sequence over the memory `values`."""
        return StepProducts(StepContext(values))

    def scores(self, query: torch.Tensor, keys: torch.Tensor,
               step_query: StepProjection | None = None) -> torch.Tensor:
        return super().scores(query, keys)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor, products: StepProducts | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """`Attention.forward`; with `products` (teacher forcing, one query (B, Hq) per row)
        the query is projected and the context mixed through them."""
        if products is None:
            return super().forward(query, keys, values, mask)
        scores = self.scores(query.unsqueeze(1), keys, products.query)  # (B, 1, S)
        weights = masked_softmax(scores, mask)
        return products.context(weights).squeeze(1), weights.squeeze(1)  # (B, M), (B, S)


class FastAdditiveAttention(FastAttention, AdditiveAttention):
    BLOCK = 1 << 18  # energy elements per block when no gradient is needed

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return 2 * self.key_proj(memory)  # (B, S, A): 2 U h_i

    def step_products(self, values: torch.Tensor) -> StepProducts:
        return StepProducts(StepContext(values), StepProjection(self.query_proj.weight))

    def scores(self, query: torch.Tensor, keys: torch.Tensor,
               step_query: StepProjection | None = None) -> torch.Tensor:
        if step_query is None:
            q = 2 * self.query_proj(query)  # (B, T, A)
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


class FastDotAttention(FastAttention, DotAttention):
    pass


class FastGeneralAttention(FastAttention, GeneralAttention):
    pass


KERNELS = {AdditiveAttention: FastAdditiveAttention, DotAttention: FastDotAttention,
           GeneralAttention: FastGeneralAttention}
