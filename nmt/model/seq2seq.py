"""The sequence-to-sequence model: encoder, attention decoder, output projection.

Shape letters, used in every docstring and comment of the package: B batch, S source
length, T target length, K beam size, V vocabulary, E embedding, H hidden, L layers,
M memory size (2 * encoder hidden), A attentional vector size. A flattened beam is (B*K, ...).
Attention weights are always (B, T, S).
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nmt.config import ModelConfig
from nmt.cpu.dropout import Dropout
from nmt.cpu.loss import cross_entropy, output_loss
from nmt.cpu.matmul import project
from nmt.model.decoder import Decoder, DecoderState, Memory
from nmt.model.encoder import Encoder
from nmt.special import PAD_ID


@dataclass
class ModelOutput:
    """Teacher forcing's result: hidden (B, T, A), the attentional vectors o_t as the output
    layer `generator` takes them (after dropout); attn (B, T, S). `logits` (B, T, V) and
    `loss` apply the output layer (the loss fused with it, see `nmt.cpu.loss`)."""

    hidden: torch.Tensor
    attn: torch.Tensor
    generator: nn.Module

    @functools.cached_property
    def logits(self) -> torch.Tensor:
        return project(self.generator, self.hidden)

    def loss(self, target: torch.Tensor, smoothing: float) -> torch.Tensor:
        """The summed label-smoothed cross-entropy over non-pad targets; target (B, T).

        Fused with the output layer (`nmt.cpu.loss.output_loss`) unless autocast is on, the
        layer is not a plain `nn.Linear` without a bias, or `NMT_FUSED_LOSS=0`; then torch's
        op on `logits`.
        """
        layer = self.generator
        if (type(layer) is nn.Linear and layer.bias is None
                and not torch.is_autocast_enabled(self.hidden.device.type)
                and os.environ.get("NMT_FUSED_LOSS", "1") != "0"):
            return output_loss(self.hidden, layer.weight, target, smoothing, PAD_ID)
        return cross_entropy(self.logits, target, smoothing, PAD_ID)


@dataclass
class StepResult:
    """log_probs (B, V') of the next token over the target ids `vocab` (V',), or over all V
    ids in order when `vocab` is None (no shortlist); attn (B, S)."""

    log_probs: torch.Tensor
    state: DecoderState
    attn: torch.Tensor
    vocab: torch.Tensor | None = None

    def token_ids(self, columns: torch.Tensor) -> torch.Tensor:
        """The target ids of `log_probs` columns (any shape)."""
        return columns if self.vocab is None else self.vocab[columns]


class Seq2Seq(nn.Module):
    def __init__(self, cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(src_vocab_size, cfg.emb_size, cfg.enc_hidden, cfg.enc_layers,
                               cfg.dropout)
        self.decoder = Decoder(cfg, tgt_vocab_size, self.encoder.output_size)
        self.dropout = Dropout(cfg.dropout)
        self.generator = nn.Linear(cfg.attn_vector_size, tgt_vocab_size, bias=False)
        self._int8_rows: torch.Tensor | None = None  # an int8 generator's weight, as fp32
        if cfg.tie_embeddings:
            self.generator.weight = self.decoder.embed.weight

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor,
               vocab: torch.Tensor | None = None) -> tuple[Memory, DecoderState]:
        """src (B, S), src_lengths (B,) -> the memory (keys computed once) and initial state.

        vocab (V',): unique target ids the batch may emit (a shortlist); their output-layer
        rows are gathered here, once, and `decode_step` scores only them.
        """
        enc = self.encoder(src, src_lengths)
        output = None if vocab is None else self._restricted_generator(vocab)
        memory = Memory(enc.states, self.decoder.attention.keys(enc.states), enc.mask, vocab,
                        output)
        return memory, self.decoder.init_state(enc.final_h, enc.final_c)

    def _restricted_generator(self, vocab: torch.Tensor) -> nn.Module:
        """The output layer for target ids `vocab` (V',) only: (.., A) -> (.., V').

        An int8 dynamic-quantized output layer gives an int8 one (its rows requantized with
        one symmetric scale); otherwise an `nn.Linear` holding the rows.
        """
        weight = self.generator.weight
        if not callable(weight):
            layer = nn.Linear(weight.size(1), len(vocab), bias=False, device=weight.device)
            layer.weight = nn.Parameter(weight.detach().index_select(0, vocab),
                                        requires_grad=False)
            return layer
        from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

        if self._int8_rows is None:  # unpacked once, not per batch
            self._int8_rows = weight().dequantize()  # (V, A)
        rows = self._int8_rows.index_select(0, vocab)  # (V', A)
        scale = max(float(rows.abs().max()), 1e-8) / 127.0
        layer = Int8Linear(rows.size(1), rows.size(0), bias_=False, dtype=torch.qint8)
        with warnings.catch_warnings():  # torch's deprecation notice for quantized tensors
            warnings.simplefilter("ignore")
            layer.set_weight_bias(torch.quantize_per_tensor(rows, scale, 0, torch.qint8), None)
        return layer

    def decode_step(self, tokens: torch.Tensor, state: DecoderState, memory: Memory) -> StepResult:
        """tokens (B,): y_{t-1} -> log p(y_t | ...) (B, V), new state, attention (B, S).

        With `memory.vocab` (V',) the softmax runs over those ids only and log_probs is
        (B, V'), its columns those ids (`StepResult.vocab`).
        """
        emb, x_gates = self.decoder.embed_tokens(tokens)
        step = self.decoder.step(emb, x_gates, state, memory)
        out = self.dropout(step.out)
        if memory.vocab is not None:  # a shortlist: (B, V')
            logits = project(memory.output, out)
            return StepResult(F.log_softmax(logits.float(), dim=-1), step.state, step.attn,
                              memory.vocab)
        logits = project(self.generator, out)
        return StepResult(F.log_softmax(logits.float(), dim=-1), step.state, step.attn)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor,
                fast: bool = True) -> ModelOutput:
        """Teacher forcing. Shapes: src (B, S), src_lengths (B,), tgt_in (B, T)."""
        memory, state = self.encode(src, src_lengths)
        outs, attn = self.decoder(tgt_in, state, memory, fast=fast)  # (B, T, A), (B, T, S)
        return ModelOutput(self.dropout(outs), attn, self.generator)

    @staticmethod
    def reorder_state(state: DecoderState, index: torch.Tensor) -> DecoderState:
        """The state of rows `index` (N,): beam reordering, expansion, dropping rows."""
        return state.select(index)


def build_model(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    model = Seq2Seq(cfg, src_vocab_size, tgt_vocab_size)
    for name, p in model.named_parameters():
        if "rnn" in name and "bias" in name:
            nn.init.zeros_(p)
            if "bias_ih" in name:  # forget-gate bias 1 (the second quarter)
                n = p.size(0) // 4
                p.data[n: 2 * n] = 1.0
        elif "embed" in name:
            nn.init.normal_(p, 0.0, cfg.emb_size ** -0.5)
            with torch.no_grad():
                p[0].zero_()  # padding row
        elif p.dim() > 1:
            nn.init.xavier_uniform_(p)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
