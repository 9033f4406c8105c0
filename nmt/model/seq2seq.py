"""The sequence-to-sequence model: encoder, attention decoder, output layer.

Shape letters, used in every docstring and comment of the package: B batch, S source
length, T target length, K beam size, V vocabulary, E embedding, H hidden, L layers,
M memory size (2 * encoder hidden), A attentional vector size. A flattened beam is (B*K, ...).
Attention weights are always (B, T, S).

What search uses (and all it uses): `encode`, `decode_step`, `reorder_state`, and the
`Memory` record's `select`/`expand`. The model is plain torch; `nmt.cpu.accelerate` swaps its
modules for faster implementations of the same equations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nmt.config import ModelConfig
from nmt.model.decoder import Decoder, DecoderState, Memory, StepOutput
from nmt.model.encoder import Encoder
from nmt.model.loss import cross_entropy
from nmt.special import PAD_ID


@dataclass
class ModelOutput:
    """Teacher forcing's result: hidden (B, T, A), the attentional vectors o_t as the output
    layer `generator` takes them (after dropout); attn (B, T, S). `logits` (B, T, V) and
    `loss` apply the output layer."""

    hidden: torch.Tensor
    attn: torch.Tensor
    generator: nn.Module

    @functools.cached_property
    def logits(self) -> torch.Tensor:
        return self.generator(self.hidden)

    def loss(self, target: torch.Tensor, smoothing: float) -> torch.Tensor:
        """The summed label-smoothed cross-entropy over non-pad targets; target (B, T)."""
        return cross_entropy(self.logits, target, smoothing, PAD_ID)


@dataclass
class StepResult:
    """log_probs (B, V') of the next token over the target ids `vocab` (V',), or over all V
    ids in order when `vocab` is None (the model's own steps; a shortlist sets it); attn
    (B, S)."""

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
        self.dropout = nn.Dropout(cfg.dropout)
        self.generator = nn.Linear(cfg.attn_vector_size, tgt_vocab_size, bias=False)  # W_out
        if cfg.tie_embeddings:
            self.generator.weight = self.decoder.embed.weight

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor
               ) -> tuple[Memory, DecoderState]:
        """src (B, S), src_lengths (B,) -> the memory (keys computed once) and initial state."""
        enc = self.encoder(src, src_lengths)
        memory = Memory(enc.states, self.decoder.attention.keys(enc.states), enc.mask)
        return memory, self.decoder.init_state(enc.final_h, enc.final_c)

    def decoder_output(self, tokens: torch.Tensor, state: DecoderState, memory: Memory
                       ) -> StepOutput:
        """One decoder step with the output layer's dropout applied to o_t (B, A): what the
        output layer takes (a shortlist applies its own rows of it)."""
        step = self.decoder.step(tokens, state, memory)
        return StepOutput(self.dropout(step.out), step.state, step.attn)

    def decode_step(self, tokens: torch.Tensor, state: DecoderState, memory: Memory
                    ) -> StepResult:
        """tokens (B,): y_{t-1} -> log p(y_t | ...) (B, V), new state, attention (B, S)."""
        step = self.decoder_output(tokens, state, memory)
        logits = self.generator(step.out)
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
    """A new model: Xavier-uniform matrices, N(0, E^-1/2) embeddings with a zero padding row,
    zero recurrent biases except the LSTMs' forget gates (1)."""
    model = Seq2Seq(cfg, src_vocab_size, tgt_vocab_size)
    for name, p in model.named_parameters():
        if "rnn" in name and "bias" in name:
            nn.init.zeros_(p)
            lstm = not (name.startswith("decoder.") and cfg.cell != "lstm")
            if "bias_ih" in name and lstm:  # forget-gate bias 1 (the second quarter)
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
