"""The LSTM decoder's CPU kernels: the step of `nmt.model.decoder.Decoder`, computed faster.

The same equations, with:
- the part of the first layer's input projection that depends only on the target embedding
  computed for all t in one product before the step loop (teacher forcing), or looked up
  from a (V, 4H) table of W_e E_y + b for every target token (decoding, `fuse`);
- the rest of the first layer's gates (the recurrent and the extra input) as one product per
  step, [s_{t-1}; extra] W^T, whose weight gradient is one product per sequence and whose
  weight is packed for oneDNN once per sequence (`nmt.cpu.recurrence.StepProjection`);
- attention's per-step products through the sequence's `StepProducts` (`nmt.cpu.attention`);
- without input feeding, the output o_t computed once over all T after the step loop.
Every path equals the plain step to float rounding (tests/test_cpu_decoder.py). The GRU cell
keeps the plain step (`nmt.cpu.accelerate` leaves its decoder as it is).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nmt.cpu.attention import StepProducts
from nmt.cpu.dropout import dropout
from nmt.cpu.matmul import linear
from nmt.cpu.recurrence import StepProjection
from nmt.model.decoder import Decoder, DecoderState, Memory, StepOutput


@dataclass
class SequenceProducts:
    """Teacher forcing's products applied at every step of one sequence, whose gradients are
    computed once per sequence (`nmt.cpu.recurrence`): `rec` projects [s_{t-1}; extra] with
    `FastDecoder.recurrent_weight`, `attention` projects the query and mixes the memory
    states (`FastAttention.step_products`)."""

    rec: StepProjection
    attention: StepProducts


class FusedStep(nn.Module):
    """Inference-time weights of the decoder LSTM step, fused (see `FastDecoder.fuse`).

    gate_table (V, 4H): the first layer's embedding gates W_e E_y + b for every target token,
    so a step looks them up instead of multiplying; `rec`: [s_{t-1}; extra] -> gates, one
    product for the recurrent and the extra (context or feed) inputs; `upper[l-1]`:
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
        # what the snapshot was made from, and each tensor's storage and version then
        self._sources = [(w, w.data_ptr(), w._version)
                         for w in (embed.weight, *rnn.parameters())]

    def current(self) -> bool:
        """Whether every weight it was made from is still the one it read (not replaced,
        e.g. by `load_state_dict`, and not changed in place)."""
        return all(w.data_ptr() == ptr and w._version == version
                   for w, ptr, version in self._sources)


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


class FastDecoder(Decoder):
    """`Decoder` with an LSTM cell, its step and teacher forcing computed as described above.

    `fuse()` (decoding, eval mode) makes a `FusedStep`, a snapshot of the weights derived from
    them: it is not a submodule (it is not in the state_dict and `load_state_dict` does not
    touch it); a batch that finds any weight it was made from changed drops it (`init_state`)
    and runs unfused, on the current weights; returning to training mode drops it too.
    """

    @property
    def fused(self) -> FusedStep | None:
        return self.__dict__.get("_fused")

    def fuse(self) -> None:
        fused = FusedStep(self.rnn, self.embed, self.emb_size).to(self.embed.weight.device)
        self.__dict__["_fused"] = fused

    def train(self, mode: bool = True) -> FastDecoder:
        if mode:
            self.__dict__.pop("_fused", None)
        return super().train(mode)

    @property
    def _use_fused(self) -> bool:
        return self.fused is not None and not self.training

    def init_state(self, final_h: torch.Tensor, final_c: torch.Tensor) -> DecoderState:
        """`Decoder.init_state`; also where a stale fused snapshot is dropped, once per batch
        (every search and forced decoding starts here, and weights do not change inside one):
        the step then runs unfused, on the current weights."""
        fused = self.fused
        if fused is not None and not fused.current():
            self.__dict__.pop("_fused")
        return super().init_state(final_h, final_c)

    def input_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first layer's input weights W_ih split by input: W_e (4H, E) for the target
        embedding, W_x (4H, X) for the extra input (c_t or o_{t-1}; None without one).

        One `split`, whose backward is one concatenation; two slices' backward would write
        two zero (4H, E + X) gradients and add them.
        """
        w_ih = self.rnn.weight_ih_l0
        if w_ih.size(1) == self.emb_size:
            return w_ih, None
        w_e, w_x = w_ih.split([self.emb_size, w_ih.size(1) - self.emb_size], dim=1)
        return w_e, w_x

    def embed_tokens(self, tokens: torch.Tensor, w_e: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B,) or (B, T) -> embeddings (.., E) with dropout, and their first-layer
        gates (.., 4H). w_e: W_e from `input_weights`, when the caller has split them."""
        emb = self.dropout(self.embed(tokens))
        if self._use_fused:
            return emb, self.fused.gate_table[tokens]
        w_e = self.input_weights()[0] if w_e is None else w_e
        return emb, linear(emb, w_e, self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0)

    def recurrent_weight(self, w_x: torch.Tensor | None) -> torch.Tensor:
        """The first layer's weights for [s_{t-1}; extra] (4H, H + X): W_hh beside W_x from
        `input_weights`; W_hh alone without an extra input. Teacher forcing builds it once
        per sequence and steps with it (one product per step, not two)."""
        w_hh = self.rnn.weight_hh_l0
        return w_hh if w_x is None else torch.cat([w_hh, w_x], dim=1)

    def _lstm(self, x_gates: torch.Tensor, extra: torch.Tensor | None, state: DecoderState,
              rec: StepProjection | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One LSTM time step over all layers. x_gates (B, 4H); extra (B, X) or None.

        rec: when teacher forcing steps a whole sequence, its projection with
        `recurrent_weight` (`SequenceProducts.rec`).
        """
        h_prev, c_prev = state.rnn
        if self._use_fused:
            return self._lstm_fused(x_gates, extra, h_prev, c_prev)
        hs, cs = [], []
        if rec is not None:
            h0 = layer(h_prev, 0)
            rec_in = h0 if extra is None else torch.cat([h0, extra], dim=-1)
            gates = x_gates + rec(rec_in)
        else:
            gates = x_gates + linear(layer(h_prev, 0), self.rnn.weight_hh_l0)
            if extra is not None:
                gates = gates + linear(extra, self.input_weights()[1])
        h, c = lstm_cell(gates, layer(c_prev, 0))
        hs.append(h)
        cs.append(c)
        for k in range(1, self.num_layers):
            w_ih = getattr(self.rnn, f"weight_ih_l{k}")
            w_hh = getattr(self.rnn, f"weight_hh_l{k}")
            b = getattr(self.rnn, f"bias_ih_l{k}") + getattr(self.rnn, f"bias_hh_l{k}")
            x = dropout(h, self.rnn.dropout, self.training)
            h, c = lstm_cell(linear(x, w_ih, b) + linear(h_prev[k], w_hh), c_prev[k])
            hs.append(h)
            cs.append(c)
        return stack_layers(hs), stack_layers(cs)

    def _lstm_fused(self, x_gates: torch.Tensor, extra: torch.Tensor | None,
                    h_prev: torch.Tensor, c_prev: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`_lstm` with the fused weights: one product per layer (same values, to rounding)."""
        h0 = layer(h_prev, 0)
        rec_in = h0 if extra is None else torch.cat([h0, extra], dim=-1)
        h, c = lstm_cell(x_gates + self.fused.rec(rec_in), layer(c_prev, 0))
        hs, cs = [h], [c]
        for k, proj in enumerate(self.fused.upper, start=1):
            h, c = lstm_cell(proj(torch.cat([h, h_prev[k]], dim=-1)), c_prev[k])
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
        """`Decoder.attend`; products: `SequenceProducts.attention` (teacher forcing, beam 1)."""
        if products is None:
            return super().attend(query, memory)
        return self.attention(query, memory.keys, memory.states, memory.mask, products)

    def step(self, tokens: torch.Tensor, state: DecoderState, memory: Memory) -> StepOutput:
        emb, x_gates = self.embed_tokens(tokens)
        return self._step(emb, x_gates, state, memory)

    def _step(self, emb: torch.Tensor, x_gates: torch.Tensor, state: DecoderState,
              memory: Memory, products: SequenceProducts | None = None) -> StepOutput:
        """`step` from the embedding emb (B, E) and its first-layer gates x_gates (B, 4H)."""
        h, c, context, attn = self.recur(x_gates, state, memory, products)
        out = self.output(layer(h, -1), context, emb)
        feed = out if self.input_feeding else state.feed
        return StepOutput(out, DecoderState((h, c), feed), attn)

    def forward(self, tgt_in: torch.Tensor, state: DecoderState, memory: Memory,
                fast: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """`Decoder.forward`. Without input feeding (always so for Bahdanau) o_t does not
        feed back, so `output` runs once over all T after the step loop (with `fast`)."""
        if fast and self.has_fast_path:
            return super().forward(tgt_in, state, memory, fast)
        w_e, w_x = (None, None) if self._use_fused else self.input_weights()
        emb, x_gates = self.embed_tokens(tgt_in, w_e)  # (B, T, E), (B, T, 4H)
        # once per sequence; the fused inference step has its own concatenated weight
        products = None if self._use_fused else SequenceProducts(
            StepProjection(self.recurrent_weight(w_x)),
            self.attention.step_products(memory.states))
        hoist = fast and not self.input_feeding
        outs, tops, contexts, attns = [], [], [], []
        # unbind, not emb[:, t]: the backward of a slice writes a full-size zero tensor per step
        for emb_t, gates_t in zip(emb.unbind(1), x_gates.unbind(1), strict=True):
            if hoist:
                h, c, context, attn = self.recur(gates_t, state, memory, products)
                state = DecoderState((h, c), state.feed)
                tops.append(layer(h, -1))
                contexts.append(context)
            else:
                step = self._step(emb_t, gates_t, state, memory, products)
                state, attn = step.state, step.attn
                outs.append(step.out)
            attns.append(attn)
        if hoist:  # (B, T, H), (B, T, M), (B, T, E) -> (B, T, A)
            return self.output(torch.stack(tops, 1), torch.stack(contexts, 1), emb), \
                torch.stack(attns, dim=1)
        return torch.stack(outs, dim=1), torch.stack(attns, dim=1)
