"""The model against a naive reference written straight from docs/model.md.

Every other model test compares one code path of `nmt.model` / `nmt.cpu` with another one
(fast path with step loop, kernel with plain module): a mistake made the same way in every
path, such as a concatenation in the wrong order, a bridge that reads the wrong direction or
layer, or the Bahdanau query taken after the step instead of before it, passes all of them.
This file recomputes teacher forcing with nothing of the model's code but its parameters
(read by name from its `state_dict`):

- the encoder one sentence at a time over its real length (no padding, no packing), each
  layer and direction an explicit loop of torch's own `nn.LSTMCell`;
- the bridge s_0 = tanh(W_b [h->_S ; h<-_1] + b) (and c_0 with its own weights);
- the scores position by position from their formulas, softmax over the real positions;
- the decoder loop of §5, its stacked cell one `nn.LSTMCell` / `nn.GRUCell` per layer
  (torch's cells, not the package's hand-written `step`), logits = W_out o_t;

all in float64, one sentence and one time step at a time. The plain model (fast path and
step loop), the accelerated model (`nmt.cpu.accelerate`, for training and prepared for
decoding) and the search step `decode_step` must all give the reference's logits (B, T, V)
and attention (B, T, S). The mutation tests patch one concatenation order into the model
and check that the comparison then fails, i.e. that the reference would catch such a bug.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nmt.config import ModelConfig
from nmt.cpu import accelerate
from nmt.model.decoder import Decoder
from nmt.model.seq2seq import Seq2Seq, build_model
from nmt.special import BOS_ID, PAD_ID
from tests.test_model import VARIANTS, padded_batch, tiny_config

SRC_VOCAB, TGT_VOCAB = 20, 25
LENGTHS = [5, 7, 2]  # unsorted, with padding in two rows
TGT_LEN = 6
ATOL = RTOL = 1e-5

Params = dict[str, torch.Tensor]
State = list[tuple[torch.Tensor, ...]]  # per layer: (h, c) or (h,), each (H,)


# ---------------------------------------------------------------------------------------
# The reference: one sentence at a time, float64, nothing from nmt.model but the weights.
# ---------------------------------------------------------------------------------------


def params(model: Seq2Seq) -> Params:
    return {name: p.detach().double().clone() for name, p in model.state_dict().items()}


def torch_cell(kind: str, P: Params, prefix: str, suffix: str) -> nn.RNNCellBase:
    """torch's `nn.LSTMCell` / `nn.GRUCell` holding the weights `{prefix}.weight_ih{suffix}`,
    ... (suffix `_l0`, `_l1_reverse`, ...)."""
    w_ih, w_hh = P[f"{prefix}.weight_ih{suffix}"], P[f"{prefix}.weight_hh{suffix}"]
    cls = nn.LSTMCell if kind == "lstm" else nn.GRUCell
    cell = cls(w_ih.size(1), w_hh.size(1), dtype=torch.float64)
    cell.load_state_dict({name: P[f"{prefix}.{name}{suffix}"]
                          for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
    return cell


def cell_step(cell: nn.RNNCellBase, x: torch.Tensor, state: tuple[torch.Tensor, ...]
              ) -> tuple[torch.Tensor, ...]:
    """One step of one cell: x (I,), state (h,) or (h, c), each (H,)."""
    if isinstance(cell, nn.LSTMCell):
        h, c = cell(x[None], (state[0][None], state[1][None]))  # (1, H) twice
        return h[0], c[0]
    return (cell(x[None], state[0][None])[0],)


def ref_encoder(P: Params, tokens: torch.Tensor, num_layers: int
                ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """tokens (n,): one sentence, no padding -> memory h_i (n, M); per encoder layer the
    final states [h->_n ; h<-_1] and [c->_n ; c<-_1], each (M,)."""
    x = P["encoder.embed.weight"][tokens]  # (n, E)
    n = len(tokens)
    finals_h, finals_c = [], []
    for k in range(num_layers):
        outs, last_h, last_c = [], [], []
        for suffix, order in ((f"_l{k}", range(n)), (f"_l{k}_reverse", range(n - 1, -1, -1))):
            cell = torch_cell("lstm", P, "encoder.rnn", suffix)
            h = c = torch.zeros(cell.hidden_size, dtype=torch.float64)  # (H_enc,)
            out = [None] * n
            for i in order:
                h, c = cell_step(cell, x[i], (h, c))
                out[i] = h
            outs.append(torch.stack(out))  # (n, H_enc)
            last_h.append(h)  # forward: at position n; backward: at position 1
            last_c.append(c)
        x = torch.cat(outs, dim=-1)  # (n, M): [h->_i ; h<-_i], the next layer's input
        finals_h.append(torch.cat(last_h))
        finals_c.append(torch.cat(last_c))
    return x, finals_h, finals_c


def ref_bridge(P: Params, cfg: ModelConfig, finals_h: list[torch.Tensor],
               finals_c: list[torch.Tensor]) -> State:
    """s_0^(k) = tanh(W_b [h->_S ; h<-_1]^(k') + b_b), c_0^(k) likewise with bridge_c; k' = k
    when the layer counts agree, else the top encoder layer. Zeros without the bridge."""
    L, H = cfg.dec_layers, cfg.dec_hidden
    n_state = 2 if cfg.cell == "lstm" else 1
    if not cfg.bridge:
        return [tuple(torch.zeros(H, dtype=torch.float64) for _ in range(n_state))
                for _ in range(L)]
    state = []
    for k in range(L):
        src = k if cfg.enc_layers == L else cfg.enc_layers - 1
        s0 = torch.tanh(P["decoder.bridge_h.weight"] @ finals_h[src] + P["decoder.bridge_h.bias"])
        if cfg.cell == "lstm":
            c0 = torch.tanh(P["decoder.bridge_c.weight"] @ finals_c[src]
                            + P["decoder.bridge_c.bias"])
            state.append((s0, c0))
        else:
            state.append((s0,))
    return state


def ref_attend(P: Params, kind: str, q: torch.Tensor, memory: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """q (H,), memory (n, M) -> alpha (n,), context (M,), each score from its formula."""
    scores = []
    for h_i in memory:  # (M,)
        if kind in ("bahdanau", "concat"):  # v^T tanh(W q + U h_i)
            W = P["decoder.attention.query_proj.weight"]  # (D, H)
            U = P["decoder.attention.key_proj.weight"]  # (D, M)
            v = P["decoder.attention.energy.weight"][0]  # (D,)
            scores.append(v @ torch.tanh(W @ q + U @ h_i))
        elif kind == "general":  # q^T W_a h_i
            scores.append(q @ (P["decoder.attention.key_proj.weight"] @ h_i))
        else:  # dot: q^T h_i
            scores.append(q @ h_i)
    e = torch.stack(scores)  # (n,)
    alpha = torch.exp(e - e.max()) / torch.exp(e - e.max()).sum()
    return alpha, alpha @ memory


def ref_decoder(P: Params, cfg: ModelConfig, memory: torch.Tensor, state: State,
                tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """memory (n, M), the initial state, tgt_in (T,) = y_0..y_{T-1} -> logits (T, V),
    alpha (T, n); the loop of docs/model.md §5."""
    cells = [torch_cell(cfg.cell, P, "decoder.rnn", f"_l{k}") for k in range(cfg.dec_layers)]
    W_o = P["decoder.out_proj.weight"]  # W_o (A, H + M + E) or W_c (A, M + H)
    W_out = P["decoder.embed.weight"] if cfg.tie_embeddings else P["generator.weight"]  # (V, A)
    o = torch.zeros(cfg.attn_vector_size, dtype=torch.float64)  # o_0 = 0
    logits, alphas = [], []
    for y in tgt_in:
        e = P["decoder.embed.weight"][y]  # (E,)
        if cfg.attention == "bahdanau":
            alpha, c = ref_attend(P, cfg.attention, state[-1][0], memory)  # with s_{t-1}
            state = stack_step(cells, torch.cat([e, c]), state)
            s = state[-1][0]
            o = torch.tanh(W_o @ torch.cat([s, c, e]))
        else:
            x = torch.cat([e, o]) if cfg.input_feeding else e
            state = stack_step(cells, x, state)
            s = state[-1][0]
            alpha, c = ref_attend(P, cfg.attention, s, memory)  # with s_t
            o = torch.tanh(W_o @ torch.cat([c, s]))
        logits.append(W_out @ o)
        alphas.append(alpha)
    return torch.stack(logits), torch.stack(alphas)


def stack_step(cells: list[nn.RNNCellBase], x: torch.Tensor, state: State) -> State:
    """One step of the stacked cell: layer k reads layer k-1's new h (no dropout in eval)."""
    new = []
    for cell, layer_state in zip(cells, state, strict=True):
        layer_state = cell_step(cell, x, layer_state)
        new.append(layer_state)
        x = layer_state[0]
    return new


def reference(model: Seq2Seq, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """src (B, S), lengths (B,), tgt_in (B, T) -> logits (B, T, V), attention (B, T, S) with
    exact zeros at padding; each sentence computed alone."""
    cfg, P = model.cfg, params(model)
    B, S = src.shape
    T = tgt_in.size(1)
    logits = torch.zeros(B, T, P["generator.weight"].size(0), dtype=torch.float64)
    attn = torch.zeros(B, T, S, dtype=torch.float64)
    for b, n in enumerate(lengths.tolist()):
        memory, finals_h, finals_c = ref_encoder(P, src[b, :n], cfg.enc_layers)  # (n, M)
        state = ref_bridge(P, cfg, finals_h, finals_c)
        logits[b], attn[b, :, :n] = ref_decoder(P, cfg, memory, state, tgt_in[b])
    return logits, attn


# ---------------------------------------------------------------------------------------
# The model's paths and the comparison.
# ---------------------------------------------------------------------------------------


def make_model(cfg: ModelConfig, seed: int = 0) -> Seq2Seq:
    """A model in eval mode with every bias random (`build_model` zeroes the recurrent ones,
    which would hide a bias read from the wrong place)."""
    torch.manual_seed(seed)
    model = build_model(cfg, SRC_VOCAB, TGT_VOCAB)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return model.eval()


def make_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """src (3, 7) padded, lengths (3,), tgt_in (3, T) starting with BOS, one row padded."""
    src, lengths = padded_batch(LENGTHS, SRC_VOCAB, seed)
    g = torch.Generator().manual_seed(seed + 1)
    tgt_in = torch.randint(4, TGT_VOCAB, (len(LENGTHS), TGT_LEN), generator=g)
    tgt_in[:, 0] = BOS_ID
    tgt_in[2, 4:] = PAD_ID
    return src, lengths, tgt_in


def teacher_forcing(model: Seq2Seq, fast: bool, inference: bool) -> Callable:
    def run(src, lengths, tgt_in):
        with torch.inference_mode(inference):
            out = model(src, lengths, tgt_in, fast=fast)
            return out.logits, out.attn, False  # (B, T, V), (B, T, S)
    return run


def step_by_step(model: Seq2Seq, inference: bool) -> Callable:
    """What search runs: `encode`, then `decode_step` fed with tgt_in's tokens."""
    def run(src, lengths, tgt_in):
        with torch.inference_mode(inference):
            memory, state = model.encode(src, lengths)
            log_probs, attn = [], []
            for tokens in tgt_in.unbind(1):  # (B,)
                step = model.decode_step(tokens, state, memory)
                state = step.state
                log_probs.append(step.log_probs)  # (B, V)
                attn.append(step.attn)  # (B, S)
            return torch.stack(log_probs, 1), torch.stack(attn, 1), True
    return run


def model_paths(model: Seq2Seq) -> dict[str, Callable]:
    """Every way the package computes teacher forcing (or its steps) for `model`."""
    trained = accelerate(copy.deepcopy(model))  # eval mode is kept by the copy
    decoding = accelerate(copy.deepcopy(model), training=False)  # fused step, packed weights
    return {
        "plain fast": teacher_forcing(model, True, False),
        "plain loop": teacher_forcing(model, False, False),
        "plain decode_step": step_by_step(model, True),
        "accelerated fast": teacher_forcing(trained, True, False),
        "accelerated loop": teacher_forcing(trained, False, False),
        "inference fast": teacher_forcing(decoding, True, True),
        "inference loop": teacher_forcing(decoding, False, True),
        "inference decode_step": step_by_step(decoding, True),
    }


def assert_path_matches(name: str, path: Callable, batch, want) -> None:
    """The path's logits (or decode_step's log-probabilities) and attention equal the
    reference's, to ATOL; attention exactly zero at padding."""
    src, lengths, tgt_in = batch
    want_logits, want_attn = want  # (B, T, V), (B, T, S)
    got, attn, log_probs = path(src, lengths, tgt_in)
    if log_probs:
        want_logits = F.log_softmax(want_logits, dim=-1)
    torch.testing.assert_close(got.detach().double(), want_logits, atol=ATOL, rtol=RTOL,
                               msg=lambda m: f"{name}: logits differ from the reference\n{m}")
    torch.testing.assert_close(attn.detach().double(), want_attn, atol=ATOL, rtol=RTOL,
                               msg=lambda m: f"{name}: attention differs from the reference\n{m}")
    pad = torch.arange(src.size(1)) >= lengths[:, None]  # (B, S)
    assert torch.all(attn.masked_select(pad[:, None, :]) == 0), f"{name}: weight on padding"


def assert_matches_reference(model: Seq2Seq) -> None:
    batch = make_batch()
    want = reference(model, *batch)
    for name, path in model_paths(model).items():
        assert_path_matches(name, path, batch, want)


def config(attention: str, feeding: bool, layers: tuple[int, int], cell: str, bridge: bool,
           **kw) -> ModelConfig:
    """tiny_config's sizes (E 12, H_enc 8 so M 16, H 16) with D = 10 and A = 14, so that no
    two sizes of additive attention or the output projection coincide by accident."""
    enc_layers, dec_layers = layers
    kw = dict(attn_hidden=10, out_size=14) | kw
    return tiny_config(attention, feeding, enc_layers=enc_layers, dec_layers=dec_layers,
                       cell=cell, bridge=bridge, **kw)


# ---------------------------------------------------------------------------------------
# The tests.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention,feeding", VARIANTS)
@pytest.mark.parametrize("layers", [(1, 1), (2, 2)], ids=["L1", "L2"])
@pytest.mark.parametrize("bridge", [True, False], ids=["bridge", "zeros"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_model_equals_reference(attention, feeding, layers, bridge, cell):
    assert_matches_reference(make_model(config(attention, feeding, layers, cell, bridge)))


@pytest.mark.parametrize("attention,feeding", VARIANTS)
@pytest.mark.parametrize("layers", [(2, 1), (1, 3)], ids=["Lenc2-L1", "Lenc1-L3"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_model_equals_reference_when_layer_counts_differ(attention, feeding, layers, cell):
    """The bridge reads the top encoder layer for every decoder layer."""
    assert_matches_reference(make_model(config(attention, feeding, layers, cell, True)))


@pytest.mark.parametrize("attention,feeding", [("bahdanau", True), ("general", False)])
def test_model_equals_reference_with_tied_embeddings(attention, feeding):
    """W_out = E_tgt (A = E = 12)."""
    cfg = config(attention, feeding, (1, 1), "lstm", True, tie_embeddings=True, out_size=None)
    assert cfg.attn_vector_size == cfg.emb_size
    assert_matches_reference(make_model(cfg))


# Mutations: each swaps one concatenation order of the model to a shape-compatible wrong one.
_init_state = Decoder.init_state


def bahdanau_output_swapped(self, s, context, emb):  # [c_t ; s_t ; e] instead of [s_t ; c_t ; e]
    return torch.tanh(self.out_proj(torch.cat([context, s, emb], dim=-1)))


def luong_output_swapped(self, s, context, emb):  # [s_t ; c_t] instead of [c_t ; s_t]
    return torch.tanh(self.out_proj(torch.cat([s, context], dim=-1)))


def bridge_directions_swapped(self, final_h, final_c):  # [h<-_1 ; h->_S] instead of [h->; h<-]
    return _init_state(self, final_h.flip(1), final_c.flip(1))  # (L_enc, 2, B, H_enc)


MUTATIONS = {
    "bahdanau-output": ("bahdanau", True, "output", bahdanau_output_swapped),
    "luong-output": ("general", True, "output", luong_output_swapped),
    "bridge-directions": ("concat", False, "init_state", bridge_directions_swapped),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_reference_catches_a_swapped_concatenation(mutation, monkeypatch):
    """The same model passes before the patch; with it, every path fails the comparison
    (the plain and accelerated decoders share `Decoder.output` and `Decoder.init_state`)."""
    attention, feeding, method, wrong = MUTATIONS[mutation]
    model = make_model(config(attention, feeding, (1, 1), "lstm", True))
    batch = make_batch()
    want = reference(model, *batch)
    for name, path in model_paths(model).items():
        assert_path_matches(name, path, batch, want)
    monkeypatch.setattr(Decoder, method, wrong)
    for name, path in model_paths(model).items():
        with pytest.raises(AssertionError, match="logits differ"):
            assert_path_matches(name, path, batch, want)
