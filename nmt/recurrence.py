"""A weight applied at every step of a recurrence, with its gradient computed once.

Teacher forcing applies the decoder's recurrent weight W (out, in) at every step:
y_t = x_t W^T for t = 1..T, x_t (B, in). Autograd's gradient of W is then T matmuls
dW += dy_t^T x_t, each with only the batch B as inner dimension, and T accumulations into an
(out, in) buffer. `StepProjection` instead keeps (x_t, dy_t) as each step's backward runs and
computes dW = [dy_1; ..; dy_T]^T [x_1; ..; x_T] in one matmul with inner dimension B*T, after
the last of them: the same sum, to float rounding, at a fraction of the cost (few large
matmuls run near the machine's peak, many thin ones do not).

How: `_Deferred` passes W through unchanged, and `_Step` (the per-step product) returns no
gradient for it, only for x_t. `_Deferred`'s backward runs after every `_Step` backward (they
all depend on its output), and returns the whole dW to autograd, which accumulates it into
W.grad as usual (so hooks, DDP and gradient clipping see an ordinary gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class StepProjection:
    """x (B, in) -> x W^T (B, out) at each step of one sequence; W's gradient deferred as above.

    One instance per sequence (per forward pass). Without autograd (no grad needed, or
    autocast, whose dtype casts the plain product handles), a plain `F.linear`.
    """

    def __init__(self, weight: torch.Tensor):
        self.weight = weight
        self.deferred = (torch.is_grad_enabled() and weight.requires_grad
                         and not torch.is_autocast_enabled(weight.device.type))
        # (x_t, dy_t) of the steps whose backward has run; shared with the autograd nodes,
        # which hold this list and never this object (no reference cycle through the graph)
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._alias = _Deferred.apply(weight, self.pairs) if self.deferred else weight

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.deferred:
            return F.linear(x, self.weight)
        return _Step.apply(x, self._alias, self.pairs)


class _Deferred(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: torch.Tensor, pairs: list) -> torch.Tensor:
        ctx.pairs = pairs
        ctx.set_materialize_grads(False)
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor | None):
        if not ctx.pairs:
            return grad, None
        xs, dys = zip(*ctx.pairs, strict=True)
        ctx.pairs.clear()
        dw = torch.mm(torch.cat(dys).t(), torch.cat(xs))  # (out, B*T) @ (B*T, in)
        return dw if grad is None else dw + grad, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, pairs: list) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.pairs = pairs
        return torch.mm(x, weight.t())

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, weight = ctx.saved_tensors
        ctx.pairs.append((x, dy))
        dx = torch.mm(dy, weight) if ctx.needs_input_grad[0] else None
        return dx, None, None
