"""CPU kernels below the model: `accelerate(model)` swaps in faster implementations of the
same modules, the way CTranslate2 or Marian choose kernels below their layers.

Each plain module of `nmt.model` whose class has a kernel here becomes an instance of that
kernel's class, a subclass that keeps every parameter, buffer and state_dict key (so the
same weights load into either, and a checkpoint does not record which ran):

    plain module           kernel                      what changes
    nn.Linear              matmul.FastLinear           oneDNN products, packed decoding weights
    nn.Dropout             dropout.Dropout             a cheaper CPU mask
    Encoder                encoder.FastEncoder         the BiLSTM by length segments
    Decoder (LSTM cell)    decoder.FastDecoder         hoisted input gates, per-sequence weight
                                                       gradients, a fused decoding step
    attention modules      attention.Fast*Attention    per-sequence products; additive scores
                                                       through sigmoid
    Seq2Seq                seq2seq.FastSeq2Seq         the loss fused with the output layer

A GRU decoder keeps the plain step (its fast path has not been written). For decoding,
`accelerate(model, training=False)` also prepares the model (`inference.prepare_for_inference`:
eval mode, fused step, packed weights, or int8 with `quantize`). The switches that turn fast
paths off are read once, in `nmt.cpu.switches`. Every kernel is tested against the plain path.
"""

from __future__ import annotations

from torch import nn

from nmt.cpu import attention, decoder, encoder, seq2seq
from nmt.cpu.dropout import Dropout
from nmt.cpu.inference import prepare_for_inference
from nmt.cpu.matmul import FastLinear, cap_caches
from nmt.model.cells import LSTM
from nmt.model.decoder import Decoder
from nmt.model.seq2seq import Seq2Seq

KERNELS: dict[type, type] = {
    nn.Linear: FastLinear,
    nn.Dropout: Dropout,
    **encoder.KERNELS,
    **attention.KERNELS,
    **seq2seq.KERNELS,
}


def accelerate(model: Seq2Seq, training: bool = True, quantize: bool = False) -> Seq2Seq:
    """The model with its modules' kernels swapped in, in place (and returned).

    training=False: also prepared for decoding (eval mode; int8 weights with `quantize`).
    A module already accelerated is left as it is.
    """
    cap_caches()
    for module in model.modules():
        kernel = KERNELS.get(type(module))
        if type(module) is Decoder and isinstance(module.rnn, LSTM):
            kernel = decoder.FastDecoder
        if kernel is not None:
            module.__class__ = kernel
    if not training:
        prepare_for_inference(model, quantize)
    return model


__all__ = ["accelerate", "prepare_for_inference"]
