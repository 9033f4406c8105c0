"""The training loss fused with the output layer: `nmt.model.loss.cross_entropy` of
z = h W^T, summed over non-pad target positions, in fewer passes over the logits.

For logits z_n (V,) of position n with target y_n, smoothing eps (torch's `label_smoothing`):

    loss_n = (1 - eps) (-log p_n[y_n]) + (eps / V) sum_v (-log p_n[v])
           = lse_n - (1 - eps) z_n[y_n] - (eps / V) sum_v z_n[v],     lse_n = log sum_v exp z_n[v]

and its gradient with respect to z_n is p_n - (1 - eps) onehot(y_n) - eps / V.

`output_loss` fuses the output layer z = h W^T with the loss. Every elementwise pass over z
(N positions x V classes) reads and writes a large buffer, and torch's op makes about ten:
log-softmax, the smoothing sum, and backward a zero-filled one-hot gradient, its sum with
the smoothing gradient and the log-softmax backward (an exp pass), each into a fresh
buffer. `output_loss` makes three: the max of z, the softmax p (in place: z's buffer, kept
for backward) and the max of p; the only N x V buffer is the product's. lse = max_v z - log max_v p
(max_v p = exp(max_v z - lse) >= 1/V, so its log is exact to rounding); sum_v z_v = h_n .
sum_v W_v comes from the small operands (no pass over z); the gradient is p itself,
corrected in place at the N target entries (and zeroed on pad rows), with the constant
-eps/V applied to the products' results as rank-1 corrections instead of to all N x V
entries: dh = g (p W - eps/V 1 (sum_v W_v)^T), dW = g (p^T h - eps/V 1_V (sum_n h_n)^T),
sums over non-pad rows. The products go through `nmt.cpu.matmul.mm_nt` (oneDNN where faster).
Loss and gradients equal `nmt.model.loss.cross_entropy`'s to float rounding (tested).
"""

from __future__ import annotations

import torch
from torch import nn

from nmt.cpu import switches
from nmt.cpu.matmul import mm_nt
from nmt.model.seq2seq import ModelOutput
from nmt.special import PAD_ID


def output_loss(hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor,
                smoothing: float, ignore_index: int) -> torch.Tensor:
    """The summed loss of the output layer z = hidden W^T, without a bias.

    Shapes: hidden (.., A), weight (V, A), target (..). Same value and gradients as
    `cross_entropy(hidden @ weight.T, ...)`; fp32 only (autocast takes `cross_entropy`).
    Its backward may run once (it reuses the softmax's buffer for the gradient).
    """
    rows = hidden.reshape(-1, hidden.size(-1))
    return _OutputLoss.apply(rows if rows.is_contiguous() else rows.contiguous(), weight,
                             target.reshape(-1), smoothing, ignore_index)


class _OutputLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, target: torch.Tensor,
                smoothing: float, ignore_index: int) -> torch.Tensor:
        V = weight.size(0)
        z = mm_nt(h, weight)  # (N, V)
        z_max = z.amax(dim=1)  # (N,)
        z_target = z.gather(1, target.unsqueeze(1)).squeeze(1)
        p = torch.ops.aten._softmax.out(z, 1, False, out=z)  # (N, V) in z's buffer
        lse = z_max - p.amax(dim=1).log()  # max_v p_v = exp(z_max - lse)
        w_sum = weight.sum(dim=0)  # (A,): sum_v W_v
        z_sum = h @ w_sum  # sum_v z_v, without a pass over z
        keep = target != ignore_index  # (N,)
        losses = lse - (1.0 - smoothing) * z_target - (smoothing / V) * z_sum
        ctx.save_for_backward(h, weight, target, p, keep, w_sum)
        ctx.smoothing = smoothing
        ctx.used = False
        return torch.where(keep, losses, 0.0).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if ctx.used:
            raise RuntimeError("output_loss: backward can run only once (its buffer is reused)")
        ctx.used = True
        h, weight, target, p, keep, w_sum = ctx.saved_tensors
        eps, V = ctx.smoothing, weight.size(0)
        # p becomes p - (1 - eps) onehot(y) on kept rows, 0 on pad rows (in place)
        p.index_fill_(0, (~keep).nonzero().squeeze(1), 0.0)
        kept = keep.nonzero().squeeze(1)
        p.view(-1).index_add_(0, kept * V + target[kept],
                              p.new_full(kept.shape, -(1.0 - eps)))
        keep_f = keep.to(h.dtype)
        dh = dw = None
        if ctx.needs_input_grad[0]:  # g (p W - eps/V keep (sum_v W_v)^T)
            dh = mm_nt(p, weight.t())
            if eps:
                dh.sub_(torch.outer(keep_f, w_sum), alpha=eps / V)
            dh.mul_(grad)
        if ctx.needs_input_grad[1]:  # g (p^T h - eps/V 1_V (sum_n keep_n h_n)^T)
            # scaled into the weight's own layout (oneDNN gives p^T h as a transposed view),
            # which autograd then keeps as the gradient instead of copying it
            dw = torch.mul(mm_nt(p.t(), h.t()), grad, out=torch.empty_like(weight))
            if eps:
                dw.sub_((keep_f @ h) * (grad * (eps / V)))  # (A,), on every row
        return dh, dw, None, None, None


class FusedOutput(ModelOutput):
    """`ModelOutput` whose `loss` is `output_loss` unless autocast is on, the output layer is
    not an `nn.Linear` without a bias, or the `fused_loss` switch is off; then the plain
    loss on `logits`."""

    def loss(self, target: torch.Tensor, smoothing: float) -> torch.Tensor:
        layer = self.generator
        if (isinstance(layer, nn.Linear) and layer.bias is None
                and not torch.is_autocast_enabled(self.hidden.device.type)
                and switches.current().fused_loss):
            return output_loss(self.hidden, layer.weight, target, smoothing, PAD_ID)
        return super().loss(target, smoothing)
