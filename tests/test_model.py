"""Attention, encoder, decoder and the model: masks, shapes, and fast paths equal step loops."""

from __future__ import annotations

import pytest
import torch

from nmt.config import ModelConfig
from nmt.cpu import accelerate
from nmt.cpu.attention import FastAdditiveAttention
from nmt.model.attention import build_attention
from nmt.model.decoder import DecoderState
from nmt.model.seq2seq import build_model
from nmt.special import BOS_ID, PAD_ID

VARIANTS = [("bahdanau", True), ("dot", True), ("dot", False), ("general", True),
            ("general", False), ("concat", True), ("concat", False)]


def tiny_config(attention: str = "bahdanau", input_feeding: bool = True, **kw) -> ModelConfig:
    base = dict(emb_size=12, enc_hidden=8, dec_hidden=16, attention=attention,
                input_feeding=input_feeding, dropout=0.0)
    base.update(kw)
    return ModelConfig(**base)


def make_model(cfg: ModelConfig, fast: bool, src_vocab: int = 20, tgt_vocab: int = 25):
    """A new model, plain or with the CPU kernels attached (`nmt.cpu.accelerate`)."""
    model = build_model(cfg, src_vocab, tgt_vocab)
    return accelerate(model) if fast else model


def padded_batch(lengths: list[int], vocab: int = 20, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    S = max(lengths)
    src = torch.randint(4, vocab, (len(lengths), S), generator=g)
    for i, n in enumerate(lengths):
        src[i, n:] = PAD_ID
    return src, torch.tensor(lengths)


@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general", "concat"])
def test_attention_masks_padding_and_normalises(kind):
    torch.manual_seed(0)
    attn = build_attention(kind, 16, 16, 10)
    memory = torch.randn(3, 5, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    keys = attn.keys(memory)
    for query in (torch.randn(3, 16), torch.randn(3, 4, 16)):
        context, weights = attn(query, keys, memory, mask)
        w = weights if weights.dim() == 3 else weights.unsqueeze(1)
        assert w.shape == (3, w.size(1), 5)
        assert torch.all(w[~mask.unsqueeze(1).expand_as(w)] == 0)  # exactly zero on padding
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:2]))
        assert context.shape == (*query.shape[:-1], 16)
        torch.testing.assert_close(context.reshape(3, -1, 16), torch.bmm(w, memory))
    # one real token: all weight on it
    assert torch.equal(weights[2, :, 0], torch.ones(4))


@pytest.mark.parametrize("kind", ["bahdanau", "concat"])
def test_additive_scores_are_v_tanh_and_blocks_change_nothing(kind, monkeypatch):
    """The plain scores, the kernel's sigmoid form and its cache-sized blocks all give
    e = v^T tanh(W q + U h)."""
    torch.manual_seed(0)
    attn = build_attention(kind, 12, 16, 10)
    memory, query = torch.randn(7, 5, 16), torch.randn(7, 3, 12)
    want = torch.tanh((query @ attn.query_proj.weight.T).unsqueeze(2)
                      + (memory @ attn.key_proj.weight.T).unsqueeze(1)) @ attn.energy.weight[0]
    torch.testing.assert_close(attn.scores(query, attn.keys(memory)), want,
                               atol=1e-6, rtol=1e-5)
    attn.__class__ = FastAdditiveAttention  # what nmt.cpu.accelerate does
    torch.testing.assert_close(attn.keys(memory), 2 * memory @ attn.key_proj.weight.T)
    trained = attn.scores(query, attn.keys(memory))  # autograd: one (B, T, S, A) pass
    assert trained.requires_grad
    torch.testing.assert_close(trained, want, atol=1e-6, rtol=1e-5)
    monkeypatch.setattr(FastAdditiveAttention, "BLOCK", 2 * 3 * 5 * 10)  # blocks of 2 rows
    with torch.inference_mode():
        torch.testing.assert_close(attn.scores(query, attn.keys(memory)), want,
                                   atol=1e-6, rtol=1e-5)


def test_attention_keys_are_the_projected_memory():
    attn = build_attention("general", 16, 8, 16)
    memory = torch.randn(2, 3, 8)
    torch.testing.assert_close(attn.keys(memory), memory @ attn.key_proj.weight.T)


@pytest.mark.parametrize("attention,feeding", VARIANTS)
@pytest.mark.parametrize("fast", [False, True])
def test_encoder_padding_invariance(attention, feeding, fast):
    """A sentence encodes (and decodes) the same alone as when padded inside a batch."""
    torch.manual_seed(1)
    model = make_model(tiny_config(attention, feeding, enc_layers=2), fast).eval()
    src, lengths = padded_batch([7, 4, 2])
    tgt = torch.randint(4, 25, (3, 5))
    batch_out = model(src, lengths, tgt)
    for i, n in enumerate(lengths.tolist()):
        alone = model(src[i: i + 1, :n], lengths[i: i + 1], tgt[i: i + 1])
        torch.testing.assert_close(batch_out.logits[i], alone.logits[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batch_out.attn[i, :, :n], alone.attn[0], atol=1e-6, rtol=1e-5)
        assert torch.all(batch_out.attn[i, :, n:] == 0)


def two_path_cases() -> list[tuple[str, bool, int, str, bool]]:
    """(attention, feeding, layers, cell, accelerated) where `forward(fast=True)` and
    `forward(fast=False)` run different code: the decoder's sequence path (Luong without input
    feeding: the cell over the whole target, all queries at once), and, in the accelerated
    LSTM decoder, o_t computed once after the step loop (no input feeding, so Bahdanau too).
    Luong with input feeding has one path: both flags run the step loop."""
    cases = []
    for attention, feeding in VARIANTS:
        for layers in (1, 2):
            for cell in ("lstm", "gru"):
                for accelerated in (False, True):
                    sequence_path = attention != "bahdanau" and not feeding
                    hoisted_output = attention == "bahdanau" and accelerated and cell == "lstm"
                    if sequence_path or hoisted_output:
                        cases.append((attention, feeding, layers, cell, accelerated))
    return cases


def spy_on_output(model) -> list[int]:
    """Records the rank of s_t at each call of the decoder's `output` (o_t from s_t, c_t,
    E y_{t-1}): 3 for one call over a whole (B, T, H) sequence, 2 for one step's (B, H)."""
    calls = []
    real = model.decoder.output
    model.decoder.output = lambda s, context, emb: calls.append(s.dim()) or real(s, context, emb)
    return calls


@pytest.mark.parametrize("attention,feeding,layers,cell,accelerated", two_path_cases())
def test_forward_shapes_and_fast_path_equals_step_loop(attention, feeding, layers, cell,
                                                       accelerated):
    torch.manual_seed(2)
    cfg = tiny_config(attention, feeding, dec_layers=layers, enc_layers=layers, cell=cell)
    model = make_model(cfg, accelerated).eval()
    calls = spy_on_output(model)
    src, lengths = padded_batch([6, 3])
    tgt = torch.randint(4, 25, (2, 7))
    fast = model(src, lengths, tgt, fast=True)
    assert calls == [3]  # two paths: the fast one computes o_t once, for all 7 steps...
    loop = model(src, lengths, tgt, fast=False)
    assert calls == [3] + [2] * 7  # ...the loop once per step
    assert fast.logits.shape == (2, 7, 25) and fast.attn.shape == (2, 7, 6)
    torch.testing.assert_close(fast.logits, loop.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.attn, loop.attn, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("attention,feeding", VARIANTS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("fast", [False, True])
def test_decode_step_equals_teacher_forcing(attention, feeding, cell, fast):
    """Stepping decode_step token by token gives the teacher-forced log-probs and attention."""
    torch.manual_seed(3)
    model = make_model(tiny_config(attention, feeding, cell=cell), fast).eval()
    src, lengths = padded_batch([5, 2])
    tgt = torch.cat([torch.full((2, 1), BOS_ID), torch.randint(4, 25, (2, 4))], dim=1)
    forced = model(src, lengths, tgt)
    memory, state = model.encode(src, lengths)
    for t in range(tgt.size(1)):
        step = model.decode_step(tgt[:, t], state, memory)
        state = step.state
        torch.testing.assert_close(step.log_probs, forced.logits[:, t].log_softmax(-1),
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(step.attn, forced.attn[:, t], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("attention,feeding", VARIANTS)
@pytest.mark.parametrize("layers", [1, 2])
def test_teacher_forcing_gradients_equal_the_decode_step_loop(attention, feeding, layers,
                                                              fast=True, cell="lstm"):
    """Training's forward (with the kernels: one recurrent product per step, its weight
    gradient deferred to one product per sequence, the fast paths) gives the gradients of the
    decode_step loop."""
    torch.manual_seed(4)
    cfg = tiny_config(attention, feeding, dec_layers=layers, enc_layers=layers, cell=cell)
    model = make_model(cfg, fast).train()  # dropout 0: both passes see the same network
    src, lengths = padded_batch([6, 3])
    tgt = torch.randint(4, 25, (2, 8))
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]

    def grads(loss: torch.Tensor) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()
                if p.grad is not None}

    forced = grads(model(src, lengths, tgt_in).logits.log_softmax(-1)
                   .gather(2, tgt_out.unsqueeze(2)).sum())
    memory, state = model.encode(src, lengths)
    total = 0
    for t in range(tgt_in.size(1)):
        step = model.decode_step(tgt_in[:, t], state, memory)
        total = total + step.log_probs.gather(1, tgt_out[:, t:t + 1]).sum()
        state = step.state
    looped = grads(total)
    assert forced.keys() == looped.keys()
    assert "decoder.rnn.weight_hh_l0" in forced
    for name in forced:
        torch.testing.assert_close(forced[name], looped[name], atol=1e-5, rtol=1e-4,
                                   msg=name)


def test_step_projection_defers_the_weight_gradient_exactly():
    """A recurrence through StepProjection: same values and gradients as F.linear at every
    step, with the weight also used outside the recurrence, a step whose output is unused,
    and a plain product (nothing deferred) without autograd."""
    from nmt.cpu.recurrence import StepProjection

    torch.manual_seed(5)
    weight = torch.randn(6, 6, requires_grad=True)
    x0 = torch.randn(3, 6, requires_grad=True)

    def run(project) -> torch.Tensor:
        h, total = x0, (weight ** 2).sum()  # the weight is used outside the steps too
        for t in range(5):
            y = project(h)
            if t != 2:  # step 2's output feeds only the next step
                total = total + y.sin().sum()
            h = torch.tanh(y)
        project(h)  # a last step whose output is never used
        return total

    proj = StepProjection(weight)
    assert proj.deferred
    got = torch.autograd.grad(run(proj), (weight, x0))
    want = torch.autograd.grad(run(lambda x: torch.nn.functional.linear(x, weight)),
                               (weight, x0))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    assert proj.shared.pairs == [] and proj.shared.prepared == {}  # released after backward
    with torch.no_grad():
        assert not StepProjection(weight).deferred


def test_reorder_state_selects_rows():
    model = build_model(tiny_config("general", True, dec_layers=2), 20, 25).eval()
    src, lengths = padded_batch([3, 5, 4])
    memory, state = model.encode(src, lengths)
    index = torch.tensor([2, 0, 0])
    moved = model.reorder_state(state, index)
    assert isinstance(moved, DecoderState)
    h, c = moved.rnn
    assert torch.equal(h[:, 1], state.rnn[0][:, 0]) and torch.equal(c[:, 0], state.rnn[1][:, 2])
    assert torch.equal(moved.feed[0], state.feed[2])
    assert torch.equal(memory.select(index).mask[0], memory.mask[2])


@pytest.mark.parametrize("layers", [(2, 2), (2, 3), (1, 2)], ids=["Lenc2-L2", "Lenc2-L3",
                                                                     "Lenc1-L2"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("accelerated", [False, True])
def test_bridge_maps_the_final_forward_and_backward_states(layers, cell, accelerated):
    """docs/model.md §3 by hand: s_0^(k) = tanh(W_b [h->_{S_b} ; h<-_1]^(k') + b_b) and
    c_0^(k) = tanh(W_bc [c->_{S_b} ; c<-_1]^(k') + b_bc), k' = k when the layer counts agree,
    else the top encoder layer. The final states come from test_reference's encoder (one
    sentence at a time, torch's LSTMCell, no padding or packing), whose top layer must also
    be the memory's forward half at the last real token and backward half at the first."""
    from tests.test_reference import make_model as model_with_random_biases
    from tests.test_reference import params, ref_encoder

    enc_layers, dec_layers = layers
    cfg = tiny_config("general", True, enc_layers=enc_layers, dec_layers=dec_layers, cell=cell)
    model = model_with_random_biases(cfg)  # eval mode, every bias nonzero
    model = accelerate(model) if accelerated else model
    src, lengths = padded_batch([5, 7, 2])
    with torch.no_grad():
        memory, state = model.encode(src, lengths)
    P, He = params(model), cfg.enc_hidden
    assert len(state.rnn) == (2 if cell == "lstm" else 1)
    assert state.h.shape == (dec_layers, 3, cfg.dec_hidden)
    for b, n in enumerate(lengths.tolist()):
        # per encoder layer: [h->_n ; h<-_1] and [c->_n ; c<-_1], each (M,)
        _, finals_h, finals_c = ref_encoder(P, src[b, :n], enc_layers)
        top = memory.states[b].double()  # (S, M)
        torch.testing.assert_close(finals_h[-1], torch.cat([top[n - 1, :He], top[0, He:]]),
                                   atol=1e-6, rtol=1e-5)
        for k in range(dec_layers):
            k_enc = k if enc_layers == dec_layers else enc_layers - 1
            want_h = torch.tanh(P["decoder.bridge_h.weight"] @ finals_h[k_enc]
                                + P["decoder.bridge_h.bias"])
            torch.testing.assert_close(state.rnn[0][k, b].double(), want_h, atol=1e-6,
                                       rtol=1e-5, msg=f"s_0 of layer {k}, sentence {b}")
            if cell == "lstm":
                want_c = torch.tanh(P["decoder.bridge_c.weight"] @ finals_c[k_enc]
                                    + P["decoder.bridge_c.bias"])
                torch.testing.assert_close(state.rnn[1][k, b].double(), want_c, atol=1e-6,
                                           rtol=1e-5, msg=f"c_0 of layer {k}, sentence {b}")
    assert torch.count_nonzero(state.feed) == 0  # o_0 = 0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_without_the_bridge_the_decoder_starts_from_zeros(cell):
    src, lengths = padded_batch([3, 2])
    zero = build_model(tiny_config(bridge=False, cell=cell, dec_layers=2), 20, 25)
    assert not hasattr(zero.decoder, "bridge_h") and not hasattr(zero.decoder, "bridge_c")
    _, state = zero.encode(src, lengths)
    assert len(state.rnn) == (2 if cell == "lstm" else 1)
    assert all(s.shape == (2, 2, 16) and torch.count_nonzero(s) == 0 for s in state.rnn)


def test_tied_embeddings_share_one_tensor():
    model = build_model(tiny_config(tie_embeddings=True), 20, 25)
    assert model.generator.weight.data_ptr() == model.decoder.embed.weight.data_ptr()
    untied = build_model(tiny_config(), 20, 25)
    n_tied = sum(p.numel() for p in model.parameters())
    assert n_tied < sum(p.numel() for p in untied.parameters())


def test_attention_weights_are_not_stored_on_modules():
    model = build_model(tiny_config(), 20, 25).eval()
    src, lengths = padded_batch([3])
    before = {k for m in model.modules() for k in vars(m)}
    model(src, lengths, torch.randint(4, 25, (1, 3)))
    assert {k for m in model.modules() for k in vars(m)} == before


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 3])
def test_cell_step_equals_torchs_layer_over_one_step(cell, layers):
    """`step` (the equations, one time step over the stacked layers) gives what torch's own
    nn.LSTM / nn.GRU give for a sequence of length 1; `sequence` is torch's layer itself."""
    from nmt.model.cells import build_cell

    torch.manual_seed(7)
    rnn = build_cell(cell, 6, 5, layers, dropout=0.0)
    x = torch.randn(4, 6)
    h0 = torch.randn(layers, 4, 5)
    state = rnn.initial_state(h0, torch.randn(layers, 4, 5) if cell == "lstm" else None)
    assert len(state) == (2 if cell == "lstm" else 1)
    stepped = rnn.step(x, state)
    out, want = rnn.sequence(x.unsqueeze(1), state)
    for a, b in zip(stepped, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(rnn.top(stepped), out[:, 0], atol=1e-6, rtol=1e-5)
    moved = rnn.select(stepped, torch.tensor([3, 0]))
    assert torch.equal(moved[0][:, 0], stepped[0][:, 3])
