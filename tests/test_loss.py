"""The training loss: torch's op (`nmt.model.loss`) and the output layer fused with it
(`nmt.cpu.loss`) both equal the label-smoothed loss of docs/model.md §7, written out here."""

import math

import pytest
import torch

from nmt.cpu import accelerate, matmul, switches
from nmt.cpu.loss import output_loss
from nmt.model.loss import cross_entropy
from nmt.model.seq2seq import build_model
from nmt.special import PAD_ID
from tests.helpers import set_switch
from tests.test_model import padded_batch, tiny_config


def hand_loss(logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """docs/model.md §7 position by position, in float64: for each n with y_n != PAD,
    (1 - eps) (-log p_n[y_n]) + (eps / V) sum_v (-log p_n[v]), the smoothing mass spread over
    all V ids (special tokens included); log p from an explicit log-sum-exp. Differentiable,
    so autograd gives the formula's own gradients."""
    z = logits.reshape(-1, logits.size(-1)).double()  # (N, V)
    V = z.size(1)
    total = z.new_zeros(())
    for n, y in enumerate(target.reshape(-1).tolist()):
        if y == PAD_ID:
            continue
        top = z[n].max().detach()
        log_p = z[n] - (top + torch.log(torch.exp(z[n] - top).sum()))  # (V,)
        smoothed = sum(-log_p[v] for v in range(V)) / V
        total = total + (1 - eps) * -log_p[y] + eps * smoothed
    return total


def reference(h: torch.Tensor, w: torch.Tensor, target: torch.Tensor, eps: float):
    """Loss, dh, dW of `hand_loss` on z = h W^T, float64."""
    h, w = h.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    loss = hand_loss(h @ w.t(), target, eps)
    dh, dw = torch.autograd.grad(loss, (h, w))
    return loss.detach(), dh, dw


def fused(h: torch.Tensor, w: torch.Tensor, target: torch.Tensor, eps: float, scale=1.0):
    h, w = h.detach().requires_grad_(), w.detach().requires_grad_()
    loss = output_loss(h, w, target, eps, PAD_ID)
    (loss * scale).backward()
    return loss.detach(), h.grad, w.grad


def test_hand_loss_by_hand():
    """The reference itself on numbers worked out on paper: logits (0, ln 2, 0) give
    p = (1/4, 1/2, 1/4); target 1, eps 0.3: 0.7 ln 2 + (0.3 / 3) (ln 4 + ln 2 + ln 4)
    = 1.2 ln 2. A PAD target adds nothing."""
    logits = torch.tensor([[0.0, math.log(2), 0.0], [5.0, -1.0, 2.0]])
    target = torch.tensor([1, PAD_ID])
    assert hand_loss(logits, target, 0.3).item() == pytest.approx(1.2 * math.log(2))
    assert hand_loss(logits, target, 0.0).item() == pytest.approx(math.log(2))


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_cross_entropy_is_the_formula(eps):
    """`nmt.model.loss.cross_entropy` (torch's op, what the plain model trains with): the
    summed loss of §7 over non-pad positions, and its gradient with respect to the logits."""
    torch.manual_seed(2)
    logits = (3 * torch.randn(2, 5, 11)).requires_grad_()  # (B, T, V)
    target = torch.randint(PAD_ID + 1, 11, (2, 5))
    target[1, 3:] = PAD_ID  # not a position: no loss, no gradient
    got = cross_entropy(logits, target, eps, PAD_ID)
    want = hand_loss(logits, target, eps)
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-6, atol=1e-6)
    g_got, = torch.autograd.grad(got, logits)
    g_want, = torch.autograd.grad(want, logits)
    torch.testing.assert_close(g_got, g_want, rtol=1e-5, atol=1e-6)
    assert g_got[1, 3:].abs().max() == 0


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("onednn", [True, False])
def test_fused_loss_and_gradients_are_the_formula(monkeypatch, eps, onednn):
    monkeypatch.setattr(matmul, "MIN_MACS", 0)
    set_switch(monkeypatch, "NMT_ONEDNN_MATMUL", "1" if onednn else "0")
    if onednn and not matmul.onednn_available():
        pytest.skip("torch without oneDNN")
    products, real = [], matmul.onednn_mm_nt
    monkeypatch.setattr(matmul, "onednn_mm_nt", lambda *a: products.append(a) or real(*a))
    torch.manual_seed(0)
    h, w = torch.randn(2, 9, 16), torch.randn(40, 16)  # (B, T, A), (V, A)
    target = torch.randint(1, 40, (2, 9))
    target[0, 6:] = PAD_ID  # padded positions count for nothing
    target[1, 2] = 7  # a class that is also another row's target
    target[1, 3] = 7
    want, got = reference(h, w, target, eps), fused(h, w, target, eps)
    assert len(products) == (3 if onednn else 0)  # z = h W^T, dh and dW on oneDNN, or none
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5)
    assert got[1][0, 6:].abs().max() == 0  # no gradient from pad rows
    assert got[2].is_contiguous()  # the weight's layout: autograd keeps it without a copy


def test_gradient_scales_with_upstream_gradient():
    torch.manual_seed(1)
    h, w, target = torch.randn(6, 8), torch.randn(30, 8), torch.randint(1, 30, (6,))
    _, dh, dw = fused(h, w, target, 0.1)
    _, dh3, dw3 = fused(h, w, target, 0.1, scale=-3.0)
    torch.testing.assert_close(dh3, -3 * dh)
    torch.testing.assert_close(dw3, -3 * dw)


def test_extreme_logits_stay_finite():
    """A target far below the best class (p underflows to 0) still has a finite loss."""
    h = torch.tensor([[100.0, 0.0], [0.0, 1.0]])
    w = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    target = torch.tensor([1, 2])
    loss, dh, dw = fused(h, w, target, 0.1)
    want = reference(h, w, target, 0.1)
    assert torch.isfinite(loss) and loss > 180
    for got, expected in zip((loss, dh, dw), want, strict=True):
        torch.testing.assert_close(got.double(), expected)


def test_all_padding_gives_zero():
    h, w = torch.randn(3, 4), torch.randn(5, 4)
    loss, dh, dw = fused(h, w, torch.full((3,), PAD_ID), 0.1)
    assert loss == 0 and dh.abs().max() == 0 and dw.abs().max() == 0


def test_backward_runs_once():
    h, w = torch.randn(3, 4, requires_grad=True), torch.randn(5, 4)
    loss = output_loss(h, w, torch.tensor([1, 2, 3]), 0.1, PAD_ID)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        loss.backward()


@pytest.mark.parametrize("tie", [False, True])
def test_model_loss_equals_loss_on_logits(tie):
    """Every parameter's gradient through the fused loss equals torch's loss on `logits`."""
    cfg = tiny_config(emb_size=16, out_size=16, tie_embeddings=tie, dropout=0.2)
    torch.manual_seed(0)
    model = accelerate(build_model(cfg, 20, 25))
    src, lengths = padded_batch([6, 4, 5])
    tgt_in = torch.randint(4, 25, (3, 7))
    tgt_out = torch.randint(4, 25, (3, 7))
    tgt_out[1, 5:] = PAD_ID

    def grads(loss_of):  # the same dropout masks for both
        model.zero_grad()
        torch.manual_seed(1)
        loss = loss_of(model(src, lengths, tgt_in))
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    fused_loss, fused_grads = grads(lambda out: out.loss(tgt_out, 0.1))
    plain_loss, plain_grads = grads(lambda out: cross_entropy(out.logits, tgt_out, 0.1, PAD_ID))
    torch.testing.assert_close(fused_loss, plain_loss)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_model_loss_under_autocast_uses_torchs_op(monkeypatch):
    calls = []
    monkeypatch.setattr("nmt.cpu.loss.output_loss", lambda *a: calls.append(a))
    model = accelerate(build_model(tiny_config(), 20, 25))
    src, lengths = padded_batch([6, 4])
    tgt = torch.randint(4, 25, (2, 5))
    tgt[1, 3:] = PAD_ID
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(src, lengths, tgt)
        loss = out.loss(tgt, 0.1)
    assert not calls and loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), hand_loss(out.logits, tgt, 0.1), rtol=1e-5,
                               atol=1e-5)


def test_switch_off_uses_torchs_op(monkeypatch):
    """`NMT_FUSED_LOSS=0` (what `bench_speed --ab` compares against) takes torch's op."""
    calls = []
    monkeypatch.setattr("nmt.cpu.loss.output_loss", lambda *a: calls.append(a))
    set_switch(monkeypatch, "NMT_FUSED_LOSS", "0")
    switches.reset()  # read the environment again
    try:
        model = accelerate(build_model(tiny_config(), 20, 25))
        src, lengths = padded_batch([6, 4])
        tgt = torch.randint(4, 25, (2, 5))
        tgt[1, 3:] = PAD_ID
        out = model(src, lengths, tgt)
        torch.testing.assert_close(out.loss(tgt, 0.1).double(),
                                   hand_loss(out.logits.detach(), tgt, 0.1), rtol=1e-5,
                                   atol=1e-5)
        assert not calls
        with switches.override(fused_loss=True):  # the same model, the switch on: fused
            model(src, lengths, tgt).loss(tgt, 0.1)
        assert len(calls) == 1
    finally:
        switches.reset()
