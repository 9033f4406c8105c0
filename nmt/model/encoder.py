"""Bidirectional LSTM encoder over packed sequences.

e_i = E_src x_i; h_i = [h->_i ; h<-_i] from an L-layer bidirectional LSTM (dropout between
layers) that sees only each sentence's real positions (packing); padded positions are masked
in every attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.special import PAD_ID


@dataclass
class EncoderOutput:
    """states (B, S, 2H); mask (B, S) True at real tokens; final_h/final_c (L, 2, B, H)."""

    states: torch.Tensor
    mask: torch.Tensor
    final_h: torch.Tensor
    final_c: torch.Tensor


class Encoder(nn.Module):
    def __init__(self, vocab_size: int, emb_size: int, hidden_size: int, num_layers: int,
                 dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.LSTM(emb_size, hidden_size, num_layers, batch_first=True,
                           bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)
        self.hidden_size = hidden_size
        self.num_layers = num_layers

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor) -> EncoderOutput:
        """Shapes: src (B, S) padded with PAD, src_lengths (B,) on the CPU."""
        B, S = src.shape
        x = self.dropout(self.embed(src))  # (B, S, E)
        states, h, c = self.run_lstm(x, src_lengths)  # (B, S, 2H), (2L, B, H) twice
        lengths = src_lengths.to(src.device).unsqueeze(1)
        mask = torch.arange(S, device=src.device).unsqueeze(0) < lengths  # (B, S)
        L, H = self.num_layers, self.hidden_size
        return EncoderOutput(self.dropout(states), mask, h.view(L, 2, B, H), c.view(L, 2, B, H))

    def run_lstm(self, x: torch.Tensor, src_lengths: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The LSTM over x (B, S, E), each row over its first src_lengths[b] positions ->
        states (B, S, 2H) zero at padding, final h and c (2L, B, H)."""
        packed = pack_padded_sequence(x, src_lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, (h, c) = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return states, h, c
