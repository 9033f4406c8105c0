"""LSTM decoder with attention: one step function for training and search (see MODEL.md).

Bahdanau scheme: attend with the previous top state s_{t-1}, then step the LSTM on
[E y_{t-1}; c_t]; o_t = tanh(W_o [s_t; c_t; E y_{t-1}]).
Luong scheme: step the LSTM on E y_{t-1} (with input feeding: [E y_{t-1}; h~_{t-1}]), then
attend with s_t; h~_t = tanh(W_c [c_t; s_t]).

The LSTM's weights live in an `nn.LSTM` so that, where the LSTM does not depend on attention
(Luong without input feeding), training runs it over the whole target in one call; `step`
uses the same weights one time step at a time. The part of the first layer's input
projection that only depends on the target embedding is computed for all t at once, and the
rest of it (the recurrent and the extra input) is one matmul per step whose weight gradient
is computed once per sequence (`nmt.cpu.recurrence.StepProjection`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nmt.config import ModelConfig
from nmt.cpu.dropout import Dropout, dropout
from nmt.cpu.matmul import linear, project
from nmt.cpu.recurrence import StepProjection
from nmt.model.attention import StepProducts, build_attention
from nmt.special import PAD_ID


@dataclass
class Memory:
    """The encoder memory of a batch: states (B, S, M), keys (B, S, K), mask (B, S).

    With a shortlist (see `nmt.decoding.shortlist`): vocab (V',) the target ids this batch may emit
    and output, the output layer restricted to them, (.., A) -> (.., V') (an `nn.Linear`, or
    an int8 one for a quantized model); both belong to the batch, not to a row.

    beam: how many consecutive decoder-state rows each memory row serves (`expand`): beam
    search runs B*K state rows against B memory rows, without copying the memory K times.
    """

    states: torch.Tensor
    keys: torch.Tensor
    mask: torch.Tensor
    vocab: torch.Tensor | None = None
    output: nn.Module | None = None
    beam: int = 1

    def select(self, index: torch.Tensor) -> Memory:
        """Memory rows `index` (N,), e.g. to drop finished sentences (beam unchanged)."""
        return Memory(self.states.index_select(0, index), self.keys.index_select(0, index),
                      self.mask.index_select(0, index), self.vocab, self.output, self.beam)

    def expand(self, k: int) -> Memory:
        """The same memory serving k state rows per sentence (no copy)."""
        return dataclasses.replace(self, beam=k)

    def row_mask(self) -> torch.Tensor:
        """The source mask of every decoder-state row: (B*beam, S)."""
        return self.mask if self.beam == 1 else self.mask.repeat_interleave(self.beam, 0)


@dataclass
class DecoderState:
    """h, c (L, B, H); feed (B, F): h~_{t-1} with Luong input feeding, else F = 0."""

    h: torch.Tensor
    c: torch.Tensor
    feed: torch.Tensor

    def select(self, index: torch.Tensor) -> DecoderState:
        return DecoderState(self.h.index_select(1, index), self.c.index_select(1, index),
                            self.feed.index_select(0, index))


@dataclass
class SequenceProducts:
    """Teacher forcing's products applied at every step of one sequence, whose gradients are
    computed once per sequence (`nmt.cpu.recurrence`): `rec` projects [s_{t-1}; extra] with
    `Decoder.recurrent_weight`, `attention` projects the query and mixes the memory states
    (`Attention.step_products`)."""

    rec: StepProjection
    attention: StepProducts


@dataclass
class StepOutput:
    """out (B, A): the attentional vector o_t; attn (B, S): alpha_t."""

    out: torch.Tensor
    state: DecoderState
    attn: torch.Tensor


class FusedStep(nn.Module):
    """Inference-time weights of the decoder LSTM step, fused (see `Decoder.fuse`).

    gate_table (V, 4H): the first layer's embedding gates W_e E_y + b for every target token,
    so a step looks them up instead of multiplying; `rec`: [s_{t-1}; extra] -> gates, one
    matmul for the recurrent and the extra (context or feed) inputs; `upper[l-1]`:
    [x; s_{t-1}] -> gates of layer l >= 1. Plain `nn.Linear`s, so int8 dynamic quantization
    applies to them.
    """

    def __init__(self, rnn: nn.LSTM, embed: nn.Embedding, emb_size: int):
        super().__init__()
        w_ih, w_hh = rnn.weight_ih_l0.detach(), rnn.weight_hh_l0.detach()
        bias = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach()
        self.register_buffer("gate_table", F.linear(embed.weight.detach(), w_ih[:, :emb_size],
                                                    bias), persistent=False)  # (V, 4H)
        rec = torch.cat([w_hh, w_ih[:, emb_size:]], dim=1)  # (4H, H + X)
        self.rec = nn.Linear(rec.size(1), rec.size(0), bias=False)
        self.rec.weight.data.copy_(rec)
        self.upper = nn.ModuleList()
        for layer in range(1, rnn.num_layers):
            w = torch.cat([getattr(rnn, f"weight_ih_l{layer}"),
                           getattr(rnn, f"weight_hh_l{layer}")], dim=1).detach()  # (4H, 2H)
            lin = nn.Linear(w.size(1), w.size(0))
            lin.weight.data.copy_(w)
            lin.bias.data.copy_((getattr(rnn, f"bias_ih_l{layer}")
                                 + getattr(rnn, f"bias_hh_l{layer}")).detach())
            self.upper.append(lin)


def layer(x: torch.Tensor, i: int) -> torch.Tensor:
    """Layer i (0 or -1 for L = 1) of a per-layer tensor (L, B, H) -> (B, H).

    With one layer a view (`squeeze`), whose backward is free; a select's backward writes a
    zero (L, B, H) gradient and copies into it, three times per teacher-forced step.
    """
    return x.squeeze(0) if x.size(0) == 1 else x[i]


def stack_layers(xs: list[torch.Tensor]) -> torch.Tensor:
    """Per-layer (B, H) tensors -> (L, B, H); a view for one layer (see `layer`)."""
    return xs[0].unsqueeze(0) if len(xs) == 1 else torch.stack(xs)


def lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch's LSTM cell from pre-activation gates (B, 4H) in i, f, g, o order."""
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int, memory_size: int):
        super().__init__()
        E, H, A = cfg.emb_size, cfg.dec_hidden, cfg.attn_vector_size
        self.scheme = cfg.scheme
        self.input_feeding = cfg.input_feeding and cfg.scheme == "luong"
        self.emb_size, self.hidden_size, self.num_layers = E, H, cfg.dec_layers
        # What joins the embedding as LSTM input: c_t (Bahdanau) or h~_{t-1} (Luong + feeding).
        extra = memory_size if self.scheme == "bahdanau" else (A if self.input_feeding else 0)
        self.feed_size = A if self.input_feeding else 0
        self.embed = nn.Embedding(vocab_size, E, padding_idx=PAD_ID)
        self.dropout = Dropout(cfg.dropout)
        self.rnn = nn.LSTM(E + extra, H, cfg.dec_layers, batch_first=True,
                           dropout=cfg.dropout if cfg.dec_layers > 1 else 0.0)
        self.attention = build_attention(cfg.attention, H, memory_size, cfg.attn_hidden or H)
        out_in = H + memory_size + E if self.scheme == "bahdanau" else memory_size + H
        self.out_proj = nn.Linear(out_in, A, bias=False)
        self.bridge = cfg.bridge
        if cfg.bridge:
            self.bridge_h = nn.Linear(memory_size, H)
            self.bridge_c = nn.Linear(memory_size, H)
        self.fused: FusedStep | None = None

    def fuse(self) -> None:
        """Freeze a fused copy of the LSTM step weights for inference (eval mode only).

        The copy is a snapshot: switching back to training mode drops it.
        """
        self.fused = FusedStep(self.rnn, self.embed, self.emb_size).to(self.embed.weight.device)

    def train(self, mode: bool = True) -> Decoder:
        if mode:
            self.fused = None
        return super().train(mode)

    @property
    def _use_fused(self) -> bool:
        return self.fused is not None and not self.training

    def init_state(self, final_h: torch.Tensor, final_c: torch.Tensor) -> DecoderState:
        """final_h, final_c (Le, 2, B, He) from the encoder -> the decoder's initial state."""
        Le, _, B, He = final_h.shape
        L = self.num_layers
        if self.bridge:
            def bridge(x: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
                x = x.permute(0, 2, 1, 3).reshape(Le, B, 2 * He)  # [h->_S ; h<-_1] per layer
                x = x if Le == L else x[-1:].expand(L, B, 2 * He)
                return torch.tanh(project(proj, x))  # (L, B, H)

            h, c = bridge(final_h, self.bridge_h), bridge(final_c, self.bridge_c)
        else:
            h = c = final_h.new_zeros(L, B, self.hidden_size)
        return DecoderState(h.contiguous(), c.contiguous(), final_h.new_zeros(B, self.feed_size))

    def input_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first layer's input weights W_ih split by input: W_e (4H, E) for the target
        embedding, W_x (4H, X) for the extra input (c_t or h~_{t-1}; None without one).

        One `split`, whose backward is one concatenation; two slices' backward would write
        two zero (4H, E + X) gradients and add them.
        """
        w_ih = self.rnn.weight_ih_l0
        if w_ih.size(1) == self.emb_size:
            return w_ih, None
        w_e, w_x = w_ih.split([self.emb_size, w_ih.size(1) - self.emb_size], dim=1)
        return w_e, w_x

    def embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B,) or (B, T) -> E y (.., E), with dropout."""
        return self.dropout(self.embed(tokens))

    def embed_tokens(self, tokens: torch.Tensor, w_e: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B,) or (B, T) -> embeddings (.., E) and their first-layer gates (.., 4H).

        w_e: W_e from `input_weights`, when the caller has split them already.
        """
        emb = self.embedding(tokens)
        if self._use_fused:
            return emb, self.fused.gate_table[tokens]
        w_e = self.input_weights()[0] if w_e is None else w_e
        return emb, linear(emb, w_e, self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0)

    def recurrent_weight(self, w_x: torch.Tensor | None) -> torch.Tensor:
        """The first layer's weights for [s_{t-1}; extra] (4H, H + X): W_hh beside W_x from
        `input_weights`; W_hh alone without an extra input. Teacher forcing builds it once
        per sequence and steps with it (one matmul per step, not two)."""
        w_hh = self.rnn.weight_hh_l0
        return w_hh if w_x is None else torch.cat([w_hh, w_x], dim=1)

    def _lstm(self, x_gates: torch.Tensor, extra: torch.Tensor | None, state: DecoderState,
              rec: StepProjection | None = None):
        """One LSTM time step over all layers. x_gates (B, 4H); extra (B, X) or None.

        rec: when teacher forcing steps a whole sequence, its projection with
        `recurrent_weight` (`SequenceProducts.rec`).
        """
        if self._use_fused:
            return self._lstm_fused(x_gates, extra, state)
        hs, cs = [], []
        if rec is not None:
            h0 = layer(state.h, 0)
            rec_in = h0 if extra is None else torch.cat([h0, extra], dim=-1)
            gates = x_gates + rec(rec_in)
        else:
            gates = x_gates + linear(layer(state.h, 0), self.rnn.weight_hh_l0)
            if extra is not None:
                gates = gates + linear(extra, self.input_weights()[1])
        h, c = lstm_cell(gates, layer(state.c, 0))
        hs.append(h)
        cs.append(c)
        for k in range(1, self.num_layers):
            w_ih = getattr(self.rnn, f"weight_ih_l{k}")
            w_hh = getattr(self.rnn, f"weight_hh_l{k}")
            b = getattr(self.rnn, f"bias_ih_l{k}") + getattr(self.rnn, f"bias_hh_l{k}")
            x = dropout(h, self.rnn.dropout, self.training)
            h, c = lstm_cell(linear(x, w_ih, b) + linear(state.h[k], w_hh), state.c[k])
            hs.append(h)
            cs.append(c)
        return stack_layers(hs), stack_layers(cs)

    def _lstm_fused(self, x_gates: torch.Tensor, extra: torch.Tensor | None,
                    state: DecoderState) -> tuple[torch.Tensor, torch.Tensor]:
        """`_lstm` with the fused weights: one matmul per layer (same values, to rounding)."""
        h0 = layer(state.h, 0)
        rec_in = h0 if extra is None else torch.cat([h0, extra], dim=-1)
        h, c = lstm_cell(x_gates + project(self.fused.rec, rec_in), layer(state.c, 0))
        hs, cs = [h], [c]
        for k, proj in enumerate(self.fused.upper, start=1):
            h, c = lstm_cell(project(proj, torch.cat([h, state.h[k]], dim=-1)), state.c[k])
            hs.append(h)
            cs.append(c)
        return stack_layers(hs), stack_layers(cs)

    def recur(self, x_gates: torch.Tensor, state: DecoderState, memory: Memory,
              products: SequenceProducts | None = None):
        """Attention and the LSTM of one step: (h, c) (L, B, H), context (B, M), alpha (B, S).

        Bahdanau attends with s_{t-1} before the LSTM; Luong with s_t after it.
        products: when teacher forcing steps a whole sequence, its `SequenceProducts`.
        """
        rec = None if products is None else products.rec
        attn_products = None if products is None else products.attention
        if self.scheme == "bahdanau":
            context, attn = self.attend(layer(state.h, -1), memory, attn_products)
            h, c = self._lstm(x_gates, context, state, rec)
        else:
            feed = state.feed if self.input_feeding else None
            h, c = self._lstm(x_gates, feed, state, rec)
            context, attn = self.attend(layer(h, -1), memory, attn_products)
        return h, c, context, attn

    def attend(self, query: torch.Tensor, memory: Memory, products: StepProducts | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B*beam, H) -> context (B*beam, M), alpha (B*beam, S); a beam's K queries
        are scored against their sentence's memory row together, as a (B, K, H) sequence.
        products: `SequenceProducts.attention` (teacher forcing, beam 1)."""
        if memory.beam == 1:
            return self.attention(query, memory.keys, memory.states, memory.mask, products)
        B = memory.keys.size(0)
        context, attn = self.attention(query.view(B, memory.beam, -1), memory.keys,
                                       memory.states, memory.mask)  # (B, K, M), (B, K, S)
        return context.reshape(query.size(0), -1), attn.reshape(query.size(0), -1)

    def output(self, s: torch.Tensor, context: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The attentional vector o_t (.., A) from s_t (.., H), c_t (.., M), E y_{t-1} (.., E);
        one step (B, ..) or a whole sequence (B, T, ..)."""
        if self.scheme == "bahdanau":
            return torch.tanh(project(self.out_proj, torch.cat([s, context, emb], dim=-1)))
        return torch.tanh(project(self.out_proj, torch.cat([context, s], dim=-1)))

    def step(self, emb: torch.Tensor, x_gates: torch.Tensor, state: DecoderState,
             memory: Memory, products: SequenceProducts | None = None) -> StepOutput:
        """One decoder time step; the only step function, used by training and search.

        Shapes: emb (B, E) and x_gates (B, 4H) from `embed_tokens` of y_{t-1}; state as in
        DecoderState; products: see `recur` (teacher forcing only).
        Returns o_t (B, A), the new state and alpha_t (B, S).
        """
        h, c, context, attn = self.recur(x_gates, state, memory, products)
        out = self.output(layer(h, -1), context, emb)
        feed = out if self.input_feeding else state.feed
        return StepOutput(out, DecoderState(h, c, feed), attn)

    @property
    def has_fast_path(self) -> bool:
        """Luong without input feeding: the LSTM does not depend on attention."""
        return self.scheme == "luong" and not self.input_feeding

    def forward(self, tgt_in: torch.Tensor, state: DecoderState, memory: Memory,
                fast: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced decoding. Shapes: tgt_in (B, T) -> outs (B, T, A), attn (B, T, S).

        With `fast` and no input feeding in the Luong scheme, the LSTM runs over the whole
        sequence and all T attention steps are batched. Without input feeding in general
        (always so for Bahdanau), o_t does not feed back, so `output` runs once over all T
        after the step loop. Both equal the step loop (to float rounding).
        """
        if fast and self.has_fast_path:
            emb = self.embedding(tgt_in)  # (B, T, E); the LSTM computes its own input gates
            s, _ = self.rnn(emb, (state.h, state.c))  # (B, T, H)
            context, attn = self.attention(s, memory.keys, memory.states, memory.mask)
            return self.output(s, context, emb), attn
        w_e, w_x = (None, None) if self._use_fused else self.input_weights()
        emb, x_gates = self.embed_tokens(tgt_in, w_e)  # (B, T, E), (B, T, 4H)
        # once per sequence; the fused inference step has its own concatenated weight
        products = None if self._use_fused else SequenceProducts(
            StepProjection(self.recurrent_weight(w_x)), self.attention.step_products(memory.states))
        hoist = fast and not self.input_feeding
        outs, tops, contexts, attns = [], [], [], []
        # unbind, not emb[:, t]: the backward of a slice writes a full-size zero tensor per step
        for emb_t, gates_t in zip(emb.unbind(1), x_gates.unbind(1), strict=True):
            if hoist:
                h, c, context, attn = self.recur(gates_t, state, memory, products)
                state = DecoderState(h, c, state.feed)
                tops.append(layer(h, -1))
                contexts.append(context)
            else:
                step = self.step(emb_t, gates_t, state, memory, products)
                state, attn = step.state, step.attn
                outs.append(step.out)
            attns.append(attn)
        if hoist:  # (B, T, H), (B, T, M), (B, T, E) -> (B, T, A)
            return self.output(torch.stack(tops, 1), torch.stack(contexts, 1), emb), \
                torch.stack(attns, dim=1)
        return torch.stack(outs, dim=1), torch.stack(attns, dim=1)
