"""Inference preparation: the fused decoder step equals the plain one; int8 stays close."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.ao.nn.quantized import dynamic as qdyn

from nmt.cpu import accelerate
from nmt.decoding.beam import beam_search
from nmt.decoding.search import greedy
from nmt.decoding.shortlist import Shortlist
from nmt.model.seq2seq import build_model
from nmt.special import BOS_ID
from tests.test_model import VARIANTS, padded_batch, tiny_config

V = 30


def model_pair(attention: str, feeding: bool, layers: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    cfg = tiny_config(attention, feeding, dec_layers=layers, enc_layers=layers)
    plain = build_model(cfg, V, V).eval()
    with torch.no_grad():  # larger weights: peaked distributions, distinct argmaxes
        for p in plain.parameters():
            p.mul_(3.0)
    return plain, accelerate(copy.deepcopy(plain), training=False)


@pytest.mark.parametrize("attention,feeding,layers", [*((a, f, 1) for a, f in VARIANTS),
                                                      ("bahdanau", True, 2), ("general", True, 2)])
def test_fused_step_equals_plain_step(attention, feeding, layers):
    plain, fused = model_pair(attention, feeding, layers)
    assert fused.decoder.fused is not None and not hasattr(plain.decoder, "fused")
    src, lengths = padded_batch([5, 3, 4], vocab=V)
    with torch.inference_mode():
        outs = []
        for model in (plain, fused):
            memory, state = model.encode(src, lengths)
            tokens, steps = torch.full((3,), BOS_ID), []
            for t in range(4):
                r = model.decode_step(tokens, state, memory)
                steps.append((r.log_probs, r.attn, *r.state.rnn))
                state, tokens = r.state, torch.tensor([5 + t, 7, 9])
            outs.append(steps)
    for a, b in zip(*outs, strict=True):
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attention,feeding", [("bahdanau", True), ("general", False),
                                               ("concat", True)])
def test_fused_search_gives_the_same_hypotheses(attention, feeding):
    plain, fused = model_pair(attention, feeding, layers=2)
    src, lengths = padded_batch([6, 2, 5, 4], vocab=V, seed=1)
    for search in (lambda m: greedy(m, src, lengths),
                   lambda m: beam_search(m, src, lengths, beam_size=4, n_best=2)):
        a, b = search(plain), search(fused)
        flat_a = [h for x in a for h in (x if isinstance(x, list) else [x])]
        flat_b = [h for x in b for h in (x if isinstance(x, list) else [x])]
        assert [h.tokens for h in flat_a] == [h.tokens for h in flat_b]
        for x, y in zip(flat_a, flat_b, strict=True):
            assert y.score == pytest.approx(x.score, abs=1e-4)


def test_training_mode_drops_the_fused_snapshot():
    plain, fused = model_pair("bahdanau", True)
    fused.train()
    assert fused.decoder.fused is None


def test_int8_quantizes_every_linear_but_v_and_stays_close():
    plain, _ = model_pair("bahdanau", True)
    with torch.no_grad():  # back to moderate weights: int8 error relative to a usable model
        for p in plain.parameters():
            p.div_(3.0)
    q = accelerate(copy.deepcopy(plain), training=False, quantize=True)
    linears = [n for n, m in q.named_modules() if isinstance(m, torch.nn.Linear)]
    assert linears == ["decoder.attention.energy"]  # v: a matrix-vector product stays fp32
    assert isinstance(q.generator, qdyn.Linear) and isinstance(q.encoder.rnn, qdyn.LSTM)
    assert isinstance(q.decoder.fused.rec, qdyn.Linear)
    src, lengths = padded_batch([5, 3, 4], vocab=V)
    with torch.inference_mode():
        lp = []
        for model in (plain, q):
            memory, state = model.encode(src, lengths)
            lp.append(model.decode_step(torch.full((3,), BOS_ID), state, memory).log_probs)
    assert (lp[0] - lp[1]).abs().max() < 0.05
    assert not torch.equal(lp[0], lp[1])  # it really runs the int8 path


def test_translate_quantize_keeps_lines_and_mostly_agrees(tmp_path):
    from nmt.cli.translate import main
    from nmt.training.run import train
    from tests.helpers import toy_config, write_toy_corpus

    corpus = write_toy_corpus(tmp_path / "toy", n_train=300, n_dev=40)
    model_dir = tmp_path / "model"
    train(toy_config(corpus, max_steps=60, validate_every=30), model_dir, quiet=True)
    src = corpus / "dev.xx"
    n = len(src.read_text(encoding="utf-8").splitlines())
    outs = {}
    for flag in ([], ["--quantize"]):
        out = tmp_path / f"out{len(flag)}.txt"
        assert main(["--checkpoint", str(model_dir), "--input", str(src), "--output", str(out),
                     "--beam", "3", "--quiet", *flag]) == 0
        outs[bool(flag)] = out.read_text(encoding="utf-8").splitlines()
        assert len(outs[bool(flag)]) == n
    same = sum(a == b for a, b in zip(outs[False], outs[True], strict=True))
    assert same >= 0.8 * n, f"int8 changed {n - same} of {n} translations"


def test_int8_shortlist_output_layer_is_int8_and_close_to_the_full_one():
    plain, _ = model_pair("general", False)
    with torch.no_grad():
        for p in plain.parameters():
            p.div_(3.0)
    q = accelerate(copy.deepcopy(plain), training=False, quantize=True)
    src, lengths = padded_batch([5, 3, 4], vocab=V)
    # a shortlist of everything: only requantization differs
    shortlisted = Shortlist(torch.arange(V), torch.full((V, 1), -1)).restrict(q)
    with torch.inference_mode():
        memory, state = shortlisted.encode(src, lengths)
        assert isinstance(memory.output, qdyn.Linear)
        tokens = torch.full((3,), BOS_ID)
        restricted = shortlisted.decode_step(tokens, state, memory).log_probs
        memory_full, _ = q.encode(src, lengths)
        full = q.decode_step(tokens, state, memory_full).log_probs
    assert (restricted - full).abs().max() < 0.05


@pytest.mark.parametrize("attention,feeding", [("bahdanau", True), ("general", False),
                                               ("dot", True), ("concat", False)])
def test_expanded_memory_equals_copied_rows(attention, feeding):
    """A beam's K state rows against one memory row each equal K copies of that row."""
    model, _ = model_pair(attention, feeding)
    src, lengths = padded_batch([5, 3], vocab=V)
    K = 3
    with torch.inference_mode():
        memory, state = model.encode(src, lengths)
        rows = torch.arange(2).repeat_interleave(K)
        state = model.reorder_state(state, rows)
        tokens = torch.tensor([5, 6, 7, 8, 9, 10])
        shared = model.decode_step(tokens, state, memory.expand(K))
        copied = model.decode_step(tokens, state, memory.select(rows))
    torch.testing.assert_close(shared.log_probs, copied.log_probs)
    torch.testing.assert_close(shared.attn, copied.attn)
    assert torch.equal(memory.expand(K).row_mask(), memory.mask[rows])
