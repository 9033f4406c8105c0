"""Tensors used at every step of a recurrence, with their gradients computed once.

Teacher forcing applies some tensors at every decoder step, in a product whose gradient with
respect to that tensor is a sum over the steps of thin products:
- the recurrent weight W (out, in): y_t = x_t W^T, x_t (B, in); dW = sum_t dy_t^T x_t, T
  matmuls with only the batch B as inner dimension (`StepProjection`);
- the encoder memory V (B, S, M) that attention mixes: c_t = alpha_t V, alpha_t (B, 1, S);
  dV = sum_t alpha_t^T dc_t, T batched outer products, each a full (B, S, M) tensor
  (`StepContext`).
Autograd computes each term as its step's backward runs and accumulates it into a buffer of
the tensor's size: T thin products and T additions. A `StepProduct` instead keeps (x_t, dy_t)
as each step's backward runs and computes the sum in one product over all steps, after the
last of them (dW = [dy_1; ..; dy_T]^T [x_1; ..; x_T], inner dimension B*T; dV with inner
dimension T): the same sum, to float rounding, at a fraction of the cost (few large products
run near the machine's peak, many thin ones do not).

Operands the steps share are prepared once per sequence as well: `StepProjection` packs W
(for the products x_t W^T) and W^T (for the input gradients dy_t W) into oneDNN's blocked
layout at their first use (`nmt.cpu.matmul.pack_weight`), instead of oneDNN reordering W at
every step.

How: `_Deferred` passes the tensor through unchanged, and `_Step` (the per-step product)
returns no gradient for it, only for x_t. `_Deferred`'s backward runs after every `_Step`
backward (they all depend on its output) and returns the whole gradient to autograd, which
accumulates it into the tensor's gradient as usual (so hooks, DDP and gradient clipping see an
ordinary gradient).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nmt.cpu.matmul import linear, mm_nt, mm_nt_packed, pack_weight


@dataclass
class _Shared:
    """What the autograd nodes of one sequence share (never the `StepProduct`, so no reference
    cycle runs through the graph): the (x_t, dy_t) of the steps whose backward has run, and
    operands prepared once per sequence, by name (`StepProduct.product`)."""

    pairs: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    prepared: dict[str, torch.Tensor | None] = field(default_factory=dict)


class StepProduct:
    """x -> the step's product of x with a tensor, at each step of one sequence; the tensor's
    gradient deferred as above. Subclasses say what the product and its gradients are.

    One instance per sequence (per forward pass). Without autograd (no grad needed, or
    autocast, whose dtype casts the plain product handles), the plain product.
    """

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor
        self.deferred = (torch.is_grad_enabled() and tensor.requires_grad
                         and not torch.is_autocast_enabled(tensor.device.type))
        self.shared = _Shared()
        self._alias = (_Deferred.apply(tensor, self.shared, type(self)) if self.deferred
                       else tensor)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.deferred:
            return self.plain(x, self.tensor)
        return _Step.apply(x, self._alias, self.shared, type(self))

    @staticmethod
    def product(x: torch.Tensor, tensor: torch.Tensor, prepared: dict) -> torch.Tensor:
        """One step's product; `prepared` holds what the sequence's steps share (they may add
        to it at their first use)."""
        raise NotImplementedError

    @staticmethod
    def plain(x: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        """The product without a deferred gradient (no autograd, or autocast)."""
        raise NotImplementedError

    @staticmethod
    def input_grad(dy: torch.Tensor, tensor: torch.Tensor, prepared: dict) -> torch.Tensor:
        """The gradient of one step's x from its dy (`prepared` as in `product`)."""
        raise NotImplementedError

    @staticmethod
    def tensor_grad(xs: tuple[torch.Tensor, ...], dys: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The tensor's gradient, summed over the steps, in one product."""
        raise NotImplementedError


class StepProjection(StepProduct):
    """x (B, in) -> x W^T (B, out), W (out, in)."""

    @staticmethod
    def _packed(prepared: dict, name: str, weight: torch.Tensor, rows: int
                ) -> torch.Tensor | None:
        if name not in prepared:
            prepared[name] = pack_weight(weight, rows)
        return prepared[name]

    @staticmethod
    def product(x: torch.Tensor, tensor: torch.Tensor, prepared: dict) -> torch.Tensor:
        packed = StepProjection._packed(prepared, "w", tensor, x.size(0))
        # through oneDNN where faster (`nmt.cpu.matmul`)
        return mm_nt(x, tensor) if packed is None else mm_nt_packed(x, packed)

    @staticmethod
    def plain(x: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        return linear(x, tensor)

    @staticmethod
    def input_grad(dy: torch.Tensor, tensor: torch.Tensor, prepared: dict) -> torch.Tensor:
        packed = StepProjection._packed(prepared, "w_t", tensor.t(), dy.size(0))
        return mm_nt(dy, tensor.t()) if packed is None else mm_nt_packed(dy, packed)  # dy W

    @staticmethod
    def tensor_grad(xs: tuple[torch.Tensor, ...], dys: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return mm_nt(torch.cat(dys).t(), torch.cat(xs).t())  # (out, B*T) @ (B*T, in)


class StepContext(StepProduct):
    """Attention weights (B, 1, S) -> the context (B, 1, M) they mix from values V (B, S, M)."""

    @staticmethod
    def product(x: torch.Tensor, tensor: torch.Tensor, prepared: dict) -> torch.Tensor:
        return torch.bmm(x, tensor)

    @staticmethod
    def plain(x: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x, tensor)

    @staticmethod
    def input_grad(dy: torch.Tensor, tensor: torch.Tensor, prepared: dict) -> torch.Tensor:
        return torch.bmm(dy, tensor.transpose(1, 2))

    @staticmethod
    def tensor_grad(xs: tuple[torch.Tensor, ...], dys: tuple[torch.Tensor, ...]) -> torch.Tensor:
        # (B, S, T) @ (B, T, M): alpha_t^T dc_t summed over t
        return torch.bmm(torch.cat(xs, dim=1).transpose(1, 2), torch.cat(dys, dim=1))


class _Deferred(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, shared: _Shared, kind: type[StepProduct]
                ) -> torch.Tensor:
        ctx.shared, ctx.kind = shared, kind
        ctx.set_materialize_grads(False)
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor | None):
        shared = ctx.shared
        shared.prepared.clear()
        if not shared.pairs:
            return grad, None, None
        xs, dys = zip(*shared.pairs, strict=True)
        shared.pairs.clear()
        total = ctx.kind.tensor_grad(xs, dys)
        return (total if grad is None else total + grad), None, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, tensor: torch.Tensor, shared: _Shared,
                kind: type[StepProduct]) -> torch.Tensor:
        ctx.save_for_backward(x, tensor)
        ctx.shared, ctx.kind = shared, kind
        return kind.product(x, tensor, shared.prepared)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, tensor = ctx.saved_tensors
        ctx.shared.pairs.append((x, dy))
        dx = (ctx.kind.input_grad(dy, tensor, ctx.shared.prepared) if ctx.needs_input_grad[0]
              else None)
        return dx, None, None, None
