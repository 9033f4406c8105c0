"""nmt.matmul: oneDNN products equal torch's to fp32 rounding, with gradients; fallbacks."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nmt import matmul
from nmt.matmul import linear, mm_nt, onednn_available, onednn_matmul, project

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                                  reason="torch without oneDNN")


@pytest.fixture(autouse=True)
def opted_in(monkeypatch):
    """These tests run with the opt-in set (training's products through oneDNN)."""
    monkeypatch.setenv("NMT_ONEDNN_MATMUL", "1")


def test_off_unless_opted_in(monkeypatch):
    monkeypatch.delenv("NMT_ONEDNN_MATMUL")
    assert not onednn_matmul()
    x, w = torch.randn(3, 4), torch.randn(5, 4, requires_grad=True)
    assert torch.equal(linear(x, w), torch.nn.functional.linear(x, w))


@needs_onednn
def test_onednn_is_used_here_and_mm_nt_equals_torch_mm():
    assert onednn_matmul()
    torch.manual_seed(0)
    a, b = torch.randn(37, 300), torch.randn(53, 300)
    torch.testing.assert_close(mm_nt(a, b), a @ b.t(), atol=1e-4, rtol=1e-5)
    # strided operands, as in the gradients: (K, M)^T and (K, N)^T
    at, bt = torch.randn(300, 37), torch.randn(300, 53)
    torch.testing.assert_close(mm_nt(at.t(), bt.t()), at.t() @ bt, atol=1e-4, rtol=1e-5)


def test_linear_and_project_gradients_equal_torch():
    torch.manual_seed(1)
    layer = nn.Linear(24, 16)
    x = torch.randn(3, 5, 24, requires_grad=True)
    params = [x, layer.weight, layer.bias]
    got = project(layer, x)
    g_got = torch.autograd.grad(got.sin().sum(), params)
    want = layer(x)
    g_want = torch.autograd.grad(want.sin().sum(), params)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for g, w in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    w = torch.randn(7, 24, requires_grad=True)
    torch.testing.assert_close(linear(x, w), F.linear(x, w), atol=1e-5, rtol=1e-5)


def test_without_autograd_and_for_other_modules_it_is_torch_itself(monkeypatch):
    calls = []
    monkeypatch.setattr(matmul, "_Linear", type("Spy", (), {
        "apply": staticmethod(lambda *a: calls.append(a) or F.linear(*a))}))
    w = torch.randn(4, 6, requires_grad=True)
    x = torch.randn(2, 6)
    with torch.no_grad():
        assert torch.equal(linear(x, w), F.linear(x, w))  # decoding: torch's product
    assert torch.equal(linear(x.double(), w.double()), F.linear(x.double(), w.double()))
    assert not calls
    if onednn_matmul():  # with autograd, fp32: the oneDNN function
        linear(x, w)
        assert len(calls) == 1
    seq = nn.Sequential(nn.Linear(6, 4))
    assert torch.equal(project(seq, x), seq(x))  # not an nn.Linear: called as it is


def test_the_probe_leaves_the_global_rng_alone():
    """Probing draws nothing from torch's generator: a run that probes first (a fresh
    process, a resumed one) sees the same dropout masks as one that probed earlier."""
    onednn_available.cache_clear()
    state = torch.get_rng_state()
    onednn_available()
    assert torch.equal(torch.get_rng_state(), state)


@needs_onednn
def test_column_slices_are_not_given_to_onednn():
    """oneDNN runs a row-strided matrix (a column slice) through its reference kernel,
    about 1000x slower: mm_nt leaves it to torch, linear multiplies a contiguous copy."""
    wide = torch.randn(16, 40, requires_grad=True)
    part = wide[:, :24]  # strides (40, 1)
    assert not matmul._use_onednn(part) and matmul._use_onednn(part.t().contiguous().t())
    x = torch.randn(5, 24)
    torch.testing.assert_close(mm_nt(x, part.detach()), x @ part.detach().t())
    got = linear(x, part)
    grad = torch.autograd.grad(got.sum(), wide)[0]
    torch.testing.assert_close(got, x @ part.t(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad[:, :24], x.sum(0).expand(16, 24), atol=1e-5, rtol=1e-5)
    assert torch.all(grad[:, 24:] == 0)


@needs_onednn
def test_flop_counter_counts_onednn_products():
    from torch.utils.flop_counter import FlopCounterMode

    import nmt.speed  # noqa: F401  (registers the formula)

    w = torch.randn(6, 4, requires_grad=True)
    x = torch.randn(3, 4, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        linear(x, w).sum().backward()
    assert counter.get_total_flops() == 3 * 2 * 3 * 4 * 6  # forward, dx, dW
