"""Prepare a trained model for fast CPU decoding: fused step weights, optional int8.

`prepare_for_inference(model)` puts the model in eval mode and fuses the decoder's LSTM step
(`Decoder.fuse`): the first layer's embedding gates become a (V, 4H) lookup table and the
recurrent and extra inputs share one matmul. This is exact up to float rounding. In fp32 it
also packs the weights of the layers every step runs for oneDNN (`nmt.cpu.matmul.pack_linear`),
so that oneDNN does not reorder them at every step.

With `quantize=True` every `nn.Linear` (attention, output layer, fused LSTM step, bridge,
output projection) and the encoder's LSTM get int8 weights with dynamic (per-batch)
activation quantization (`torch.ao.quantization.quantize_dynamic`), except one-output
layers (additive attention's v): those are a matrix-vector product bound by reading their
input, which int8 would have to read once more to quantize it. This is approximate;
its BLEU cost is measured in BENCHMARKS.md. The embeddings and the gate table stay fp32.
A prepared model is for decoding only (teacher forcing with the fast path still works in
fp32; do not train it).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from nmt.checkpoint import load_model
from nmt.config import Config
from nmt.cpu.matmul import pack_linear
from nmt.data.vocab import Vocabs
from nmt.errors import NmtError
from nmt.model.seq2seq import Seq2Seq


def prepare_for_inference(model: Seq2Seq, quantize: bool = False) -> Seq2Seq:
    """The model, in eval mode, with a fused decoder step; int8 weights if `quantize`."""
    model.eval()
    model.decoder.fuse()
    if not quantize:
        for layer in step_linears(model):
            pack_linear(layer)
        return model
    if next(model.parameters()).device.type != "cpu":
        raise NmtError("--quantize: int8 dynamic quantization runs on the CPU only")
    try:
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic
    except ImportError:
        raise NmtError(f"--quantize: torch {torch.__version__} has no "
                       "torch.ao.quantization.quantize_dynamic") from None
    with warnings.catch_warnings():  # torch.ao's deprecation notices, once per call
        warnings.simplefilter("ignore")
        model.encoder.rnn = quantize_dynamic(nn.Sequential(model.encoder.rnn), {nn.LSTM},
                                             dtype=torch.qint8)[0]
        linears = {name: default_dynamic_qconfig for name, m in model.named_modules()
                   if isinstance(m, nn.Linear) and m.out_features > 1}
        return quantize_dynamic(model, linears, dtype=torch.qint8, inplace=True)


def step_linears(model: Seq2Seq) -> list[nn.Linear]:
    """The `nn.Linear`s every decoding step runs (fused LSTM step, attention query, output
    projection, output layer), whose weights `prepare_for_inference` packs for oneDNN."""
    decoder = model.decoder
    layers = [decoder.fused.rec, *decoder.fused.upper, decoder.out_proj, model.generator,
              getattr(decoder.attention, "query_proj", None)]
    return [m for m in layers if type(m) is nn.Linear]


def load_for_inference(checkpoint: str | Path, quantize: bool = False
                       ) -> tuple[Seq2Seq, Config, Vocabs]:
    """`load_model` (a model directory or a .pt file in one), prepared for decoding."""
    model, cfg, vocabs = load_model(checkpoint)
    return prepare_for_inference(model, quantize), cfg, vocabs
