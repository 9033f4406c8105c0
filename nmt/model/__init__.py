"""The model as the equations: BiLSTM encoder, attention, LSTM/GRU decoder, output layer,
written with ordinary torch modules (docs/model.md). Nothing here imports data, decoding,
training or the CPU kernels; `nmt.cpu.accelerate` attaches the kernels from below."""

from nmt.model.decoder import DecoderState, Memory, StepOutput
from nmt.model.seq2seq import ModelOutput, Seq2Seq, StepResult, build_model, count_parameters

__all__ = ["DecoderState", "Memory", "ModelOutput", "Seq2Seq", "StepOutput", "StepResult",
           "build_model", "count_parameters"]
