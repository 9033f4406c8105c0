"""Prepare an accelerated model for fast CPU decoding: fused step weights, optional int8.

`prepare_for_inference(model)` puts the model in eval mode and fuses the decoder's LSTM step
(`FastDecoder.fuse`): the first layer's embedding gates become a (V, 4H) lookup table and the
recurrent and extra inputs share one product. This is exact up to float rounding. In fp32 it
also packs the weights of the layers every step runs for oneDNN (`nmt.cpu.matmul.pack_linear`),
so that oneDNN does not reorder them at every step.

With `quantize=True` every linear layer (attention, output layer, fused LSTM step, bridge,
output projection) and the encoder's LSTM get int8 weights with dynamic (per-batch)
activation quantization (`torch.ao.quantization.quantize_dynamic`), except one-output
layers (additive attention's v): those are a matrix-vector product bound by reading their
input, which int8 would have to read once more to quantize it. This is approximate;
its BLEU cost is measured in BENCHMARKS.md. The embeddings and the gate table stay fp32.
A prepared model is for decoding only.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from nmt.cpu.decoder import FastDecoder
from nmt.cpu.matmul import FastLinear, pack_linear
from nmt.errors import NmtError
from nmt.model.seq2seq import Seq2Seq


def prepare_for_inference(model: Seq2Seq, quantize: bool = False) -> Seq2Seq:
    """The model, in eval mode, with a fused decoder step; int8 weights if `quantize`.

    Expects the model's linear layers to be `FastLinear`s (`nmt.cpu.accelerate`); the
    fused step's new layers become ones too.
    """
    model.eval()
    decoder = model.decoder
    fused = None
    if isinstance(decoder, FastDecoder):
        decoder.fuse()
        fused = decoder.fused
    if not quantize:
        for layer in step_linears(model):
            layer.__class__ = FastLinear
            pack_linear(layer)
        return model
    if next(model.parameters()).device.type != "cpu":
        raise NmtError("--quantize: int8 dynamic quantization runs on the CPU only")
    try:
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic
    except ImportError:
        raise NmtError(f"--quantize: torch {torch.__version__} has no "
                       "torch.ao.quantization.quantize_dynamic") from None
    for m in model.modules():  # torch's int8 swap matches nn.Linear by exact type
        if type(m) is FastLinear:
            m.__class__ = nn.Linear
    with warnings.catch_warnings():  # torch.ao's deprecation notices, once per call
        warnings.simplefilter("ignore")
        model.encoder.rnn = quantize_dynamic(nn.Sequential(model.encoder.rnn), {nn.LSTM},
                                             dtype=torch.qint8)[0]
        linears = {name: default_dynamic_qconfig for name, m in model.named_modules()
                   if isinstance(m, nn.Linear) and m.out_features > 1}
        model = quantize_dynamic(model, linears, dtype=torch.qint8, inplace=True)
        if fused is not None:  # not a submodule (see FastDecoder): quantized on its own
            quantize_dynamic(fused, {nn.Linear}, dtype=torch.qint8, inplace=True)
    for m in model.modules():  # what int8 left in fp32 (one-output layers)
        if type(m) is nn.Linear:
            m.__class__ = FastLinear
    return model


def step_linears(model: Seq2Seq) -> list[nn.Linear]:
    """The linear layers every decoding step runs (fused LSTM step, attention query, output
    projection, output layer), whose weights `prepare_for_inference` packs for oneDNN."""
    decoder = model.decoder
    fused = getattr(decoder, "fused", None)
    layers = ([fused.rec, *fused.upper] if fused is not None else []) + [
        decoder.out_proj, model.generator, getattr(decoder.attention, "query_proj", None)]
    return [m for m in layers if isinstance(m, nn.Linear)]
