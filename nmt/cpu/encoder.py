"""The encoder's CPU kernel: its bidirectional LSTM by length segments (`nmt.cpu.segments`),
oneDNN-sized calls instead of torch's per-step path for packed batches; the same values up to
float rounding. CUDA (cuDNN packs natively) and an int8 LSTM keep the packed path."""

from __future__ import annotations

import torch
from torch import nn

from nmt.cpu.segments import lstm_by_length
from nmt.model.encoder import Encoder


class FastEncoder(Encoder):
    def run_lstm(self, x: torch.Tensor, src_lengths: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if isinstance(self.rnn, nn.LSTM) and x.device.type == "cpu":
            return lstm_by_length(self.rnn, x, src_lengths.tolist())
        return super().run_lstm(x, src_lengths)


KERNELS = {Encoder: FastEncoder}
