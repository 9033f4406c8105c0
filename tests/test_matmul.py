"""nmt.cpu.matmul: oneDNN products equal torch's to fp32 rounding, with gradients; fallbacks."""

import copy
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nmt.cpu import accelerate, matmul
from nmt.cpu.matmul import linear, mm_nt, onednn_available, onednn_matmul
from nmt.decoding.beam import beam_search
from nmt.decoding.search import greedy
from nmt.model.seq2seq import build_model
from tests.helpers import fast_linear, set_switch
from tests.test_model import padded_batch, tiny_config

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                                  reason="torch without oneDNN")


@pytest.fixture(autouse=True)
def every_size(monkeypatch):
    """Default settings, except that the tests' small products go to oneDNN too."""
    set_switch(monkeypatch, "NMT_ONEDNN_MATMUL", None)
    monkeypatch.setattr(matmul, "MIN_MACS", 0)


class OnednnCalls(list):
    """The operands (a, b) of every oneDNN product (`matmul.onednn_mm_nt`, which every
    oneDNN path of `nmt.cpu.matmul` calls), and in `biases` the bias each one was given."""

    def __init__(self):
        super().__init__()
        self.biases = []

    def clear(self) -> None:
        super().clear()
        self.biases.clear()

    def packed(self) -> int:
        """How many of the products multiplied a packed weight (oneDNN's blocked layout)."""
        return sum(b.layout == torch._mkldnn for _, b in self)


@pytest.fixture
def onednn_calls(monkeypatch) -> OnednnCalls:
    onednn_available()  # the probe's own product (once per process) is not counted
    calls = OnednnCalls()
    real = matmul.onednn_mm_nt

    def spy(a, b, bias=None):
        calls.append((a, b))
        calls.biases.append(bias)
        return real(a, b, bias)

    monkeypatch.setattr(matmul, "onednn_mm_nt", spy)
    return calls


@needs_onednn
def test_on_by_default_off_when_opted_out(monkeypatch, onednn_calls):
    """Where this torch has oneDNN, fp32 products go through it unless NMT_ONEDNN_MATMUL=0
    (a probe that wrongly finds oneDNN missing turns it off silently: caught here)."""
    assert onednn_available() and onednn_matmul()
    x, w, dy = torch.randn(3, 4), torch.randn(5, 4, requires_grad=True), torch.randn(3, 5)
    got = linear(x, w)
    got.backward(dy)
    assert len(onednn_calls) == 2  # forward and dW (x needs no gradient)
    torch.testing.assert_close(got, F.linear(x, w), atol=1e-6, rtol=1e-5)
    onednn_calls.clear()
    set_switch(monkeypatch, "NMT_ONEDNN_MATMUL", "0")
    assert not onednn_matmul()
    got = linear(x, w)
    got.backward(dy)
    assert not onednn_calls
    assert torch.equal(got, F.linear(x, w))


@needs_onednn
@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # torch's, on exit
def test_torchs_onednn_switch_turns_it_off(onednn_calls):
    a, b = torch.randn(8, 16), torch.randn(4, 16)
    with torch.backends.mkldnn.flags(enabled=False):
        torch.testing.assert_close(mm_nt(a, b), a @ b.t())
    assert not onednn_calls
    mm_nt(a, b)
    assert len(onednn_calls) == 1


@needs_onednn
def test_small_products_stay_with_torch(monkeypatch, onednn_calls):
    monkeypatch.setattr(matmul, "MIN_MACS", 64 * 64 * 64)
    a, b = torch.randn(64, 64), torch.randn(63, 64)
    torch.testing.assert_close(mm_nt(a, b), a @ b.t())
    w = torch.randn(64, 64, requires_grad=True)
    linear(torch.randn(63, 64), w).sum().backward()
    assert not onednn_calls
    mm_nt(a, torch.randn(64, 64))
    assert len(onednn_calls) == 1


@needs_onednn
@pytest.mark.parametrize("a_t, b_t", [(False, False), (False, True), (True, False),
                                      (True, True)])
@pytest.mark.parametrize("m", [37, 900])
def test_mm_nt_layouts_equal_torch_with_a_row_major_input(a_t, b_t, m, onednn_calls):
    """Every layout pair gives torch's product, and oneDNN always gets its first operand
    row-major (so torch never copies it inside the op): with both operands transposed, as
    in a weight gradient, the smaller one is copied."""
    torch.manual_seed(m)
    a = torch.randn(300, m).t() if a_t else torch.randn(m, 300)
    b = torch.randn(300, 53).t() if b_t else torch.randn(53, 300)
    got = mm_nt(a, b)
    torch.testing.assert_close(got, a @ b.t(), atol=1e-4, rtol=1e-5)
    assert got.shape == (m, 53)
    (first, second), = onednn_calls
    assert first.is_contiguous()
    if not a_t:  # a row-major: a b^T as it is
        assert first.data_ptr() == a.data_ptr() and second.data_ptr() == b.data_ptr()
    elif not b_t:  # b row-major: b a^T, transposed back
        assert first.data_ptr() == b.data_ptr() and second.data_ptr() == a.data_ptr()
    else:  # both transposed: the smaller one copied
        assert first.shape == (min(m, 53), 300)


@needs_onednn
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_accelerate_caps_onednn_caches_and_importing_changes_nothing(tmp_path):
    """oneDNN and ideep keep a primitive (~1 MiB) per product shape, 1,024 of each by
    default; `nmt.cpu.accelerate` caps both (importing `nmt` changes no process setting), so
    a stream of new shapes (each batch's row count) does not grow the process without bound.
    Uncapped, this loop grows by ~300 MiB."""
    script = tmp_path / "shapes.py"
    script.write_text(textwrap.dedent("""
        import os
        import torch
        import nmt.cpu, nmt.checkpoint, nmt.training.trainer
        assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ  # not at import
        from nmt.config import ModelConfig
        from nmt.model import build_model
        nmt.cpu.accelerate(build_model(ModelConfig(emb_size=4, enc_hidden=4, dec_hidden=8), 9, 9))
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
        op = torch.ops.mkldnn._linear_pointwise
        w = torch.randn(256, 128)
        op(torch.randn(4, 128), w, None, "none", [], "")
        start = rss()
        for m in range(100, 500):
            op(torch.randn(m, 128), w, None, "none", [], "")
        print(rss() - start)
    """))
    env = {k: v for k, v in os.environ.items()
           if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, check=True)
    assert float(out.stdout) < 120, out.stdout


@needs_onednn
def test_linear_and_fast_linear_gradients_equal_torch(onednn_calls):
    """On oneDNN (without it, `linear` is `F.linear` itself): values and all three
    gradients."""
    torch.manual_seed(1)
    layer = nn.Linear(24, 16)
    x = torch.randn(3, 5, 24, requires_grad=True)
    params = [x, layer.weight, layer.bias]
    fast = fast_linear(copy.deepcopy(layer))
    got = fast(x)
    g_got = torch.autograd.grad(got.sin().sum(), [x, fast.weight, fast.bias])
    assert len(onednn_calls) == 3  # forward, dx, dW
    want = layer(x)
    g_want = torch.autograd.grad(want.sin().sum(), params)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for g, w in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    w = torch.randn(7, 24, requires_grad=True)
    torch.testing.assert_close(linear(x, w), F.linear(x, w), atol=1e-5, rtol=1e-5)


@needs_onednn
def test_without_autograd_one_onednn_call_with_the_bias(monkeypatch, onednn_calls):
    """Decoding: one product with the bias, no autograd function; other dtypes are torch's."""
    spied = []
    monkeypatch.setattr(matmul, "_Linear", type("Spy", (), {
        "apply": staticmethod(lambda *a: spied.append(a) or F.linear(*a))}))
    torch.manual_seed(4)
    layer = nn.Linear(6, 4)
    x = torch.randn(2, 3, 6)
    with torch.inference_mode():
        got = fast_linear(copy.deepcopy(layer))(x)
    torch.testing.assert_close(got, layer(x), atol=1e-5, rtol=1e-5)
    assert got.shape == (2, 3, 4) and not spied
    assert len(onednn_calls) == 1 and torch.equal(onednn_calls.biases[0], layer.bias)
    assert torch.equal(linear(x.double(), layer.weight.double()),
                       F.linear(x.double(), layer.weight.double()))
    assert len(onednn_calls) == 1  # float64 stayed with torch
    linear(x, layer.weight)  # with autograd, fp32: the autograd function
    assert len(spied) == 1


@needs_onednn
@pytest.mark.parametrize("fuse", [False, True])
def test_search_with_onednn_products_equals_torch(monkeypatch, fuse, onednn_calls):
    """Greedy and beam search give the same hypotheses and scores (to rounding) with the
    products on oneDNN as with torch's, plain and fused decoder step."""
    torch.manual_seed(3)
    model = build_model(tiny_config("bahdanau", True, dec_layers=2, enc_layers=2), 30, 30).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # peaked distributions: distinct argmaxes
    model = accelerate(model, training=not fuse)
    src, lengths = padded_batch([6, 2, 5, 4], vocab=30, seed=1)

    def run():
        with torch.inference_mode():
            hyps = greedy(model, src, lengths)
            hyps += [h for n in beam_search(model, src, lengths, beam_size=4, n_best=2)
                     for h in n]
        return hyps

    dnn = run()
    assert onednn_calls  # the products did go through oneDNN
    assert (model.decoder.fused is not None) == fuse
    set_switch(monkeypatch, "NMT_ONEDNN_MATMUL", "0")
    plain = run()
    assert [h.tokens for h in dnn] == [h.tokens for h in plain]
    for a, b in zip(dnn, plain, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-4)


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
    x = torch.randn(5, 24)
    assert not matmul._eligible(5 * 24 * 16, x, part)
    assert matmul._eligible(5 * 24 * 16, x, part.t().contiguous().t())
    torch.testing.assert_close(mm_nt(x, part.detach()), x @ part.detach().t())
    got = linear(x, part)
    grad = torch.autograd.grad(got.sum(), wide)[0]
    torch.testing.assert_close(got, x @ part.t(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad[:, :24], x.sum(0).expand(16, 24), atol=1e-5, rtol=1e-5)
    assert torch.all(grad[:, 24:] == 0)


@needs_onednn
def test_flop_counter_counts_onednn_products(onednn_calls):
    from nmt.bench.flops import count_flops

    w = torch.randn(6, 4, requires_grad=True)
    x = torch.randn(3, 4, requires_grad=True)
    dy = torch.randn(3, 6)  # dense: `sum()`'s expanded gradient would go to torch's mm
    flops = count_flops(lambda: linear(x, w).backward(dy))
    assert len(onednn_calls) == 3  # the products were oneDNN's (torch's would count the same)
    assert flops == 3 * 2 * 3 * 4 * 6  # forward, dx, dW


@needs_onednn
def test_packed_weights_equal_plain_products(monkeypatch):
    from nmt.cpu.matmul import mm_nt_packed, pack_weight

    torch.manual_seed(0)
    w, x = torch.randn(12, 7), torch.randn(5, 7)
    for weight, a in ((w, x), (w.t(), torch.randn(5, 12))):  # W and W^T (a transposed view)
        packed = pack_weight(weight, a.size(0))
        assert packed is not None
        torch.testing.assert_close(mm_nt_packed(a, packed), a @ weight.t())
        torch.testing.assert_close(mm_nt_packed(a[:2], packed), a[:2] @ weight.t())  # fewer rows
    monkeypatch.setattr(matmul, "MIN_MACS", 5 * 12 * 7 + 1)
    assert pack_weight(w, 5) is None  # too small a product: torch's
    monkeypatch.setattr(matmul, "MIN_MACS", 0)
    set_switch(monkeypatch, "NMT_PACK_WEIGHTS", "0")
    assert pack_weight(w, 5) is None  # switched off
    set_switch(monkeypatch, "NMT_PACK_WEIGHTS", None)
    set_switch(monkeypatch, "NMT_ONEDNN_MATMUL", "0")
    assert pack_weight(w, 5) is None


@needs_onednn
def test_step_projection_packs_its_weight_once_per_sequence(monkeypatch):
    """Teacher forcing's recurrent products use the weight packed once per direction
    (forward products, input gradients); values and gradients equal F.linear's."""
    from nmt.cpu import recurrence
    from nmt.cpu.recurrence import StepProjection

    packs, packed_calls = [], []
    real_pack, real_mm = recurrence.pack_weight, recurrence.mm_nt_packed
    monkeypatch.setattr(recurrence, "pack_weight",
                        lambda w, rows: packs.append(w.shape) or real_pack(w, rows))
    monkeypatch.setattr(recurrence, "mm_nt_packed",
                        lambda a, p: packed_calls.append(a.shape) or real_mm(a, p))
    torch.manual_seed(3)
    weight = torch.randn(8, 6, requires_grad=True)
    x0 = torch.randn(4, 6, requires_grad=True)

    def run(project):
        h, total = x0, 0.0
        for _ in range(5):
            y = project(h)  # (4, 8)
            total = total + y.cos().sum()
            h = torch.tanh(y[:, :6])
        return total

    proj = StepProjection(weight)
    got = torch.autograd.grad(run(proj), (weight, x0))
    want = torch.autograd.grad(run(lambda x: F.linear(x, weight)), (weight, x0))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    assert packs == [(8, 6), (6, 8)]  # W for the products, W^T for the input gradients
    assert len(packed_calls) == 10  # 5 forward products, 5 input gradients
    assert proj.shared.prepared == {}  # released after the backward pass


@needs_onednn
@pytest.mark.parametrize("attention", ["bahdanau", "general"])
def test_teacher_forcing_gradients_with_onednn_and_packed_weights(attention, onednn_calls):
    """The step loop's gradient check of test_model, with every product on oneDNN (packed
    recurrent and query weights included)."""
    from tests.test_model import test_teacher_forcing_gradients_equal_the_decode_step_loop as check

    for layers in (1, 2):
        check(attention, True, layers)
        assert len(onednn_calls) > 50 and onednn_calls.packed() > 0, layers
        onednn_calls.clear()


@needs_onednn
def test_prepared_model_decodes_with_packed_step_weights(monkeypatch, onednn_calls):
    """prepare_for_inference packs every step layer; search then multiplies with the packed
    weights (oneDNN's layout), and gives what the unpacked products give."""
    from nmt.cpu.inference import step_linears

    torch.manual_seed(4)
    model = accelerate(build_model(tiny_config("bahdanau", True), 30, 30), training=False)
    layers = step_linears(model)
    assert len(layers) == 4 and all(layer._packed_weight is not None for layer in layers)
    src, lengths = padded_batch([6, 2, 5], vocab=30, seed=2)

    def run():
        with torch.inference_mode():
            return [h for n in beam_search(model, src, lengths, beam_size=3) for h in n]

    packed = run()
    assert onednn_calls.packed() > 0
    onednn_calls.clear()
    set_switch(monkeypatch, "NMT_PACK_WEIGHTS", "0")
    plain = run()
    assert onednn_calls and onednn_calls.packed() == 0
    assert [h.tokens for h in packed] == [h.tokens for h in plain]
    for a, b in zip(packed, plain, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-5)


@needs_onednn
def test_a_changed_weight_is_not_multiplied_packed(onednn_calls):
    from nmt.cpu.matmul import pack_linear

    torch.manual_seed(5)
    layer, x = fast_linear(nn.Linear(8, 6)), torch.randn(4, 8)
    assert pack_linear(layer)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
        assert onednn_calls.packed() == 1  # the packed copy, while it is current
        layer.weight.mul_(-2.0)  # in place: the packed copy is stale
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
        layer.weight = nn.Parameter(torch.randn(6, 8))  # replaced
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
    assert len(onednn_calls) == 3 and onednn_calls.packed() == 1
    y = layer(x.requires_grad_())  # autograd: the plain products, with gradients
    y.sum().backward()
    assert x.grad is not None and layer.weight.grad is not None
    assert onednn_calls.packed() == 1
