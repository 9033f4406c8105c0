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

How: `_Deferred` passes the tensor through unchanged, and `_Step` (the per-step product)
returns no gradient for it, only for x_t. `_Deferred`'s backward runs after every `_Step`
backward (they all depend on its output) and returns the whole gradient to autograd, which
accumulates it into the tensor's gradient as usual (so hooks, DDP and gradient clipping see an
ordinary gradient).
"""

from __future__ import annotations

import torch

from nmt.matmul import linear, mm_nt


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
        # (x_t, dy_t) of the steps whose backward has run; shared with the autograd nodes,
        # which hold this list and never this object (no reference cycle through the graph)
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._alias = (_Deferred.apply(tensor, self.pairs, type(self)) if self.deferred
                       else tensor)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.deferred:
            return self.plain(x, self.tensor)
        return _Step.apply(x, self._alias, self.pairs, type(self))

    @staticmethod
    def product(x: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def plain(x: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        """The product without a deferred gradient (no autograd, or autocast)."""
        raise NotImplementedError

    @staticmethod
    def input_grad(dy: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        """The gradient of one step's x from its dy."""
        raise NotImplementedError

    @staticmethod
    def tensor_grad(xs: tuple[torch.Tensor, ...], dys: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The tensor's gradient, summed over the steps, in one product."""
        raise NotImplementedError


class StepProjection(StepProduct):
    """x (B, in) -> x W^T (B, out), W (out, in)."""

    @staticmethod
    def product(x: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        return mm_nt(x, tensor)  # through oneDNN where faster (`nmt.matmul`)

    @staticmethod
    def plain(x: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        return linear(x, tensor)

    @staticmethod
    def input_grad(dy: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        return mm_nt(dy, tensor.t())  # dy W

    @staticmethod
    def tensor_grad(xs: tuple[torch.Tensor, ...], dys: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return mm_nt(torch.cat(dys).t(), torch.cat(xs).t())  # (out, B*T) @ (B*T, in)


class StepContext(StepProduct):
    """Attention weights (B, 1, S) -> the context (B, 1, M) they mix from values V (B, S, M)."""

    @staticmethod
    def product(x: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x, tensor)

    plain = product

    @staticmethod
    def input_grad(dy: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        return torch.bmm(dy, tensor.transpose(1, 2))

    @staticmethod
    def tensor_grad(xs: tuple[torch.Tensor, ...], dys: tuple[torch.Tensor, ...]) -> torch.Tensor:
        # (B, S, T) @ (B, T, M): alpha_t^T dc_t summed over t
        return torch.bmm(torch.cat(xs, dim=1).transpose(1, 2), torch.cat(dys, dim=1))


class _Deferred(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, pairs: list, kind: type[StepProduct]) -> torch.Tensor:
        ctx.pairs, ctx.kind = pairs, kind
        ctx.set_materialize_grads(False)
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor | None):
        if not ctx.pairs:
            return grad, None, None
        xs, dys = zip(*ctx.pairs, strict=True)
        ctx.pairs.clear()
        total = ctx.kind.tensor_grad(xs, dys)
        return (total if grad is None else total + grad), None, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, tensor: torch.Tensor, pairs: list,
                kind: type[StepProduct]) -> torch.Tensor:
        ctx.save_for_backward(x, tensor)
        ctx.pairs, ctx.kind = pairs, kind
        return kind.product(x, tensor)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, tensor = ctx.saved_tensors
        ctx.pairs.append((x, dy))
        dx = ctx.kind.input_grad(dy, tensor) if ctx.needs_input_grad[0] else None
        return dx, None, None, None
