"""`nmt.cpu.accelerate`: the kernels replace the plain modules without changing the model.

The same weights, state_dict keys and (to float rounding) the same logits, attention,
gradients and decoding steps as the plain model; each kernel is checked to have run.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from nmt.cpu import accelerate, matmul
from nmt.cpu.attention import FastAttention
from nmt.cpu.decoder import FastDecoder
from nmt.cpu.dropout import Dropout
from nmt.cpu.encoder import FastEncoder
from nmt.cpu.matmul import FastLinear
from nmt.cpu.seq2seq import FastSeq2Seq
from nmt.model.cells import GRU, LSTM
from nmt.model.seq2seq import build_model
from nmt.special import BOS_ID
from tests.test_model import VARIANTS, padded_batch, tiny_config

CASES = [(a, f, layers, cell) for a, f in VARIANTS for layers in (1, 2) for cell in ("lstm", "gru")
         if layers == 1 or a in ("bahdanau", "general")]


def spy(monkeypatch, module, name: str) -> list:
    """Records the arguments of every call of `module.name` (a function the kernels look up
    in their module's globals) for the rest of the test."""
    calls = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


@pytest.fixture
def kernels_ran(monkeypatch) -> dict[str, list]:
    """Calls of the kernels' entry points, with oneDNN products for every size (tiny
    models' products are below `MIN_MACS`, which would leave them all with torch)."""
    from nmt.cpu import decoder, encoder, loss

    monkeypatch.setattr(matmul, "MIN_MACS", 0)
    matmul.onednn_available()  # probe before the spy: its own product is not counted
    return {"segments": spy(monkeypatch, encoder, "lstm_by_length"),
            "fused loss": spy(monkeypatch, loss, "output_loss"),
            "sequence products": spy(monkeypatch, decoder, "SequenceProducts"),
            "onednn": spy(monkeypatch, matmul, "onednn_mm_nt")}


def pair(attention, feeding, layers, cell, seed=0):
    torch.manual_seed(seed)
    cfg = tiny_config(attention, feeding, dec_layers=layers, enc_layers=layers, cell=cell)
    plain = build_model(cfg, 20, 25)
    return plain, accelerate(copy.deepcopy(plain))


def test_every_module_gets_its_kernel_and_keeps_its_weights():
    plain, fast = pair("bahdanau", True, 2, "lstm")
    assert type(fast) is FastSeq2Seq and type(fast.encoder) is FastEncoder
    assert type(fast.decoder) is FastDecoder and isinstance(fast.decoder.attention, FastAttention)
    assert not [m for m in fast.modules() if type(m) in (nn.Linear, nn.Dropout)]
    assert [type(m) for m in fast.modules() if isinstance(m, nn.Linear)] == [FastLinear] * 7
    assert len([m for m in fast.modules() if type(m) is Dropout]) == 3
    assert list(plain.state_dict()) == list(fast.state_dict())
    for (name, a), b in zip(plain.state_dict().items(), fast.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    accelerate(fast)  # a second call changes nothing
    assert type(fast.decoder) is FastDecoder


def test_a_gru_decoder_keeps_the_plain_step():
    _, fast = pair("general", True, 1, "gru")
    assert type(fast.decoder.rnn) is GRU and type(fast.decoder).__name__ == "Decoder"
    assert isinstance(fast.decoder.attention, FastAttention)  # the rest is accelerated
    _, lstm = pair("general", True, 1, "lstm")
    assert type(lstm.decoder.rnn) is LSTM


@pytest.mark.parametrize("attention,feeding,layers,cell", CASES)
def test_teacher_forcing_and_gradients_equal_the_plain_model(attention, feeding, layers, cell,
                                                             kernels_ran):
    plain, fast = pair(attention, feeding, layers, cell)
    src, lengths = padded_batch([6, 3, 5])
    tgt = torch.randint(4, 25, (3, 8))
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
    results = []
    for model in (plain, fast):
        model.train()  # dropout 0 in tiny_config: both see the same network
        out = model(src, lengths, tgt_in)
        loss = out.loss(tgt_out, 0.1)
        loss.backward()
        results.append((out.logits.detach(), out.attn.detach(), loss.detach(),
                        {n: p.grad for n, p in model.named_parameters()}))
    (lp, ap, lossp, gp), (lf, af, lossf, gf) = results
    # the kernels ran (in the accelerated model's pass; the plain model has none)
    assert len(kernels_ran["segments"]) == 1 and len(kernels_ran["fused loss"]) == 1
    step_loop = cell == "lstm" and not fast.decoder.has_fast_path  # FastDecoder's own loop
    assert len(kernels_ran["sequence products"]) == int(step_loop)
    assert len(kernels_ran["onednn"]) > 0 or not matmul.onednn_available()
    torch.testing.assert_close(lf, lp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(af, ap, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(lossf, lossp, atol=1e-4, rtol=1e-5)
    assert gp.keys() == gf.keys()
    for name in gp:
        torch.testing.assert_close(gf[name], gp[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("attention,feeding,layers,cell", CASES)
@pytest.mark.parametrize("quantize", [False, True])
def test_decoding_steps_equal_the_plain_model(attention, feeding, layers, cell, quantize,
                                              kernels_ran, monkeypatch):
    """accelerate(training=False): eval mode, fused step (LSTM), packed weights or int8."""
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    from nmt.cpu.inference import step_linears

    plain, _ = pair(attention, feeding, layers, cell, seed=1)
    plain.eval()
    fast = accelerate(copy.deepcopy(plain), training=False, quantize=quantize)
    assert not fast.training
    if cell == "lstm":
        assert fast.decoder.fused is not None
    fused_steps = spy(monkeypatch, FastDecoder, "_lstm_fused")
    if quantize:
        assert isinstance(fast.generator, Int8Linear)
        assert isinstance(fast.decoder.out_proj, Int8Linear)
    elif matmul.onednn_available():
        assert all(layer._packed_weight is not None for layer in step_linears(fast))
    src, lengths = padded_batch([5, 2, 4])
    with torch.inference_mode():
        runs = []
        for model in (plain, fast):
            memory, state = model.encode(src, lengths)
            tokens, steps = torch.full((3,), BOS_ID), []
            for t in range(4):
                r = model.decode_step(tokens, state, memory)
                steps.append((r.log_probs, r.attn))
                state, tokens = r.state, torch.tensor([5 + t, 7, 9])
            runs.append(steps)
    assert len(fused_steps) == (4 if cell == "lstm" else 0)  # the fused step ran
    packed = sum(b.layout == torch._mkldnn for _, b, *_ in kernels_ran["onednn"])
    assert packed > 0 or quantize or not matmul.onednn_available()  # multiplied packed
    tol = dict(atol=0.05, rtol=0) if quantize else dict(atol=1e-5, rtol=1e-5)
    for (lp, ap), (lf, af) in zip(*runs, strict=True):
        torch.testing.assert_close(lf, lp, **tol)
        torch.testing.assert_close(af, ap, **tol)


def steps(model, src, lengths, n=3):
    """log-probs of n decode steps from BOS (fixed next tokens), without autograd."""
    with torch.inference_mode():
        memory, state = model.encode(src, lengths)
        tokens, out = torch.full((src.size(0),), BOS_ID), []
        for t in range(n):
            r = model.decode_step(tokens, state, memory)
            out.append(r.log_probs)
            state, tokens = r.state, torch.full((src.size(0),), 5 + t)
    return torch.stack(out)


def test_the_fused_snapshot_is_no_weight_and_follows_the_weights():
    """The decoding snapshot (gate table, fused step) is not in the state_dict, and a weight
    changed in place or loaded after fusing is what decoding uses."""
    plain, _ = pair("bahdanau", True, 2, "lstm", seed=2)
    plain.eval()
    fast = accelerate(copy.deepcopy(plain), training=False)
    assert fast.decoder.fused is not None
    assert list(fast.state_dict()) == list(plain.state_dict())  # no decoder.fused.* keys
    src, lengths = padded_batch([5, 2, 4])
    torch.testing.assert_close(steps(fast, src, lengths), steps(plain, src, lengths),
                               atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # in place, in eval mode: the snapshot is stale
        for model in (plain, fast):
            model.decoder.rnn.weight_hh_l0.mul_(-1.5)
            model.decoder.embed.weight[5] += 1.0
    torch.testing.assert_close(steps(fast, src, lengths), steps(plain, src, lengths),
                               atol=1e-5, rtol=1e-5)
    other, _ = pair("bahdanau", True, 2, "lstm", seed=3)
    fast.load_state_dict(other.state_dict())  # strict: no missing or unexpected keys
    torch.testing.assert_close(steps(fast, src, lengths), steps(other.eval(), src, lengths),
                               atol=1e-5, rtol=1e-5)
