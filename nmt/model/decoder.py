"""The attention decoder: one step function for training and search (equations: docs/model.md).

Bahdanau scheme (attend, then step):
    alpha_t, c_t = attention(s_{t-1}, h);  s_t = cell([E y_{t-1}; c_t], s_{t-1})
    o_t = tanh(W_o [s_t; c_t; E y_{t-1}])
Luong scheme (step, then attend), with input feeding x_t = [E y_{t-1}; o_{t-1}], else E y_{t-1}:
    s_t = cell(x_t, s_{t-1});  alpha_t, c_t = attention(s_t, h);  o_t = tanh(W_c [c_t; s_t])
Both: p(y_t | y_<t, x) = softmax(W_out o_t) (`nmt.model.seq2seq`). s_t is the top layer's
output; the cell (`nmt.model.cells`) is an LSTM or a GRU.

Where the cell does not depend on attention (Luong without input feeding), teacher forcing runs
it over the whole target in one call and all T attention steps at once; the same numbers as
the step loop, up to float rounding (tested).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from nmt.config import ModelConfig
from nmt.model.attention import build_attention
from nmt.model.cells import CellState, build_cell
from nmt.special import PAD_ID


@dataclass
class Memory:
    """The encoder memory of a batch: states (B, S, M), keys (B, S, K), mask (B, S).

    beam: how many consecutive decoder-state rows each memory row serves (`expand`): beam
    search runs B*K state rows against B memory rows, without copying the memory K times.
    """

    states: torch.Tensor
    keys: torch.Tensor
    mask: torch.Tensor
    beam: int = 1

    def select(self, index: torch.Tensor) -> Memory:
        """Memory rows `index` (N,), e.g. to drop finished sentences (beam unchanged)."""
        return dataclasses.replace(self, states=self.states.index_select(0, index),
                                   keys=self.keys.index_select(0, index),
                                   mask=self.mask.index_select(0, index))

    def expand(self, k: int) -> Memory:
        """The same memory serving k state rows per sentence (no copy)."""
        return dataclasses.replace(self, beam=k)

    def row_mask(self) -> torch.Tensor:
        """The source mask of every decoder-state row: (B*beam, S)."""
        return self.mask if self.beam == 1 else self.mask.repeat_interleave(self.beam, 0)


@dataclass
class DecoderState:
    """rnn: the cell's state, (h, c) for an LSTM or (h,) for a GRU, each (L, B, H);
    feed (B, F): o_{t-1} with Luong input feeding, else F = 0."""

    rnn: CellState
    feed: torch.Tensor

    @property
    def h(self) -> torch.Tensor:
        return self.rnn[0]

    def select(self, index: torch.Tensor) -> DecoderState:
        return DecoderState(tuple(s.index_select(1, index) for s in self.rnn),
                            self.feed.index_select(0, index))


@dataclass
class StepOutput:
    """out (B, A): the attentional vector o_t; attn (B, S): alpha_t."""

    out: torch.Tensor
    state: DecoderState
    attn: torch.Tensor


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int, memory_size: int):
        super().__init__()
        E, H, A = cfg.emb_size, cfg.dec_hidden, cfg.attn_vector_size
        self.scheme = cfg.scheme
        self.input_feeding = cfg.input_feeding and cfg.scheme == "luong"
        self.emb_size, self.hidden_size, self.num_layers = E, H, cfg.dec_layers
        # What joins the embedding as the cell's input: c_t (Bahdanau) or o_{t-1} (Luong +
        # feeding).
        extra = memory_size if self.scheme == "bahdanau" else (A if self.input_feeding else 0)
        self.feed_size = A if self.input_feeding else 0
        self.embed = nn.Embedding(vocab_size, E, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(cfg.dropout)
        self.rnn = build_cell(cfg.cell, E + extra, H, cfg.dec_layers, cfg.dropout)
        self.attention = build_attention(cfg.attention, H, memory_size, cfg.attn_hidden or H)
        out_in = H + memory_size + E if self.scheme == "bahdanau" else memory_size + H
        self.out_proj = nn.Linear(out_in, A, bias=False)  # W_o (Bahdanau), W_c (Luong)
        self.bridge = cfg.bridge
        if cfg.bridge:
            self.bridge_h = nn.Linear(memory_size, H)
            if cfg.cell == "lstm":
                self.bridge_c = nn.Linear(memory_size, H)

    def init_state(self, final_h: torch.Tensor, final_c: torch.Tensor) -> DecoderState:
        """final_h, final_c (Le, 2, B, He) from the encoder -> the decoder's initial state:
        s_0 = tanh(W_b [h->_S ; h<-_1]) per layer (the top encoder layer's for every decoder
        layer when the layer counts differ), the same for the cell with its own W_b; zeros
        without the bridge."""
        Le, _, B, He = final_h.shape
        L = self.num_layers
        if not self.bridge:
            return DecoderState(self.rnn.initial_state(final_h.new_zeros(L, B, self.hidden_size)),
                                final_h.new_zeros(B, self.feed_size))

        def bridge(x: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
            x = x.permute(0, 2, 1, 3).reshape(Le, B, 2 * He)  # [h->_S ; h<-_1] per layer
            x = x if Le == L else x[-1:].expand(L, B, 2 * He)
            return torch.tanh(proj(x)).contiguous()  # (L, B, H)

        c = bridge(final_c, self.bridge_c) if hasattr(self, "bridge_c") else None
        return DecoderState(self.rnn.initial_state(bridge(final_h, self.bridge_h), c),
                            final_h.new_zeros(B, self.feed_size))

    def attend(self, query: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B*beam, H) -> context (B*beam, M), alpha (B*beam, S); a beam's K queries
        are scored against their sentence's memory row together, as a (B, K, H) sequence."""
        if memory.beam == 1:
            return self.attention(query, memory.keys, memory.states, memory.mask)
        B = memory.keys.size(0)
        context, attn = self.attention(query.view(B, memory.beam, -1), memory.keys,
                                       memory.states, memory.mask)  # (B, K, M), (B, K, S)
        return context.reshape(query.size(0), -1), attn.reshape(query.size(0), -1)

    def output(self, s: torch.Tensor, context: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The attentional vector o_t (.., A) from s_t (.., H), c_t (.., M), E y_{t-1} (.., E);
        one step (B, ..) or a whole sequence (B, T, ..)."""
        if self.scheme == "bahdanau":
            return torch.tanh(self.out_proj(torch.cat([s, context, emb], dim=-1)))
        return torch.tanh(self.out_proj(torch.cat([context, s], dim=-1)))

    def step(self, tokens: torch.Tensor, state: DecoderState, memory: Memory) -> StepOutput:
        """One decoder time step; the only step function, used by training and search.

        Shapes: tokens (B,) = y_{t-1}; state as in `DecoderState`; memory for B rows (or B
        sentences of `memory.beam` rows each). Returns o_t (B, A), the new state and
        alpha_t (B, S).
        """
        emb = self.dropout(self.embed(tokens))  # (B, E)
        if self.scheme == "bahdanau":
            context, attn = self.attend(self.rnn.top(state.rnn), memory)  # with s_{t-1}
            rnn = self.rnn.step(torch.cat([emb, context], dim=-1), state.rnn)
        else:
            x = torch.cat([emb, state.feed], dim=-1) if self.input_feeding else emb
            rnn = self.rnn.step(x, state.rnn)
            context, attn = self.attend(self.rnn.top(rnn), memory)  # with s_t
        out = self.output(self.rnn.top(rnn), context, emb)
        return StepOutput(out, DecoderState(rnn, out if self.input_feeding else state.feed),
                          attn)

    @property
    def has_fast_path(self) -> bool:
        """Luong without input feeding: the cell does not depend on attention."""
        return self.scheme == "luong" and not self.input_feeding

    def forward(self, tgt_in: torch.Tensor, state: DecoderState, memory: Memory,
                fast: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced decoding. Shapes: tgt_in (B, T) -> outs (B, T, A), attn (B, T, S).

        With `fast` and `has_fast_path`, the cell runs over the whole sequence and all T
        attention steps are batched; otherwise `step` for t = 1..T.
        """
        if fast and self.has_fast_path:
            emb = self.dropout(self.embed(tgt_in))  # (B, T, E)
            s, _ = self.rnn.sequence(emb, state.rnn)  # (B, T, H)
            context, attn = self.attention(s, memory.keys, memory.states, memory.mask)
            return self.output(s, context, emb), attn
        outs, attns = [], []
        for tokens in tgt_in.unbind(1):
            step = self.step(tokens, state, memory)
            state = step.state
            outs.append(step.out)
            attns.append(step.attn)
        return torch.stack(outs, dim=1), torch.stack(attns, dim=1)
