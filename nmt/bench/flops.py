"""Model FLOPs as `torch.utils.flop_counter` counts them, with the formulas it lacks.

The counter counts matmuls and convolutions, but not oneDNN's LSTM layers (the encoder; the
decoder LSTM of Luong without input feeding), oneDNN's products (`nmt.cpu.matmul`) nor
matrix-vector products (additive attention's v): without the formulas registered here (on
import) their FLOPs would be missing from the speed benchmark's `train_flops_per_token`, and
the share of peak would be understated. An LSTM layer over T x B positions (padding
included, as for every counted op) with weights W_ih (4H, I) and W_hh (4H, H) costs
2 T B 4H (I + H) forward and twice that backward (input and weight gradients).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

_aten = torch.ops.aten


def _lstm_layer_flops(input_shape, w_ih_shape, w_hh_shape) -> int:
    positions = input_shape[0] * input_shape[1]  # T x B, either order (batch_first)
    return 2 * positions * (w_ih_shape[0] * w_ih_shape[1] + w_hh_shape[0] * w_hh_shape[1])


@register_flop_formula(_aten.mkldnn_rnn_layer)
def _lstm_forward_flops(input_shape, w_ih_shape, w_hh_shape, *args, **kwargs) -> int:
    return _lstm_layer_flops(input_shape, w_ih_shape, w_hh_shape)


@register_flop_formula(_aten.mkldnn_rnn_layer_backward)
def _lstm_backward_flops(input_shape, w_ih_shape, w_hh_shape, *args, **kwargs) -> int:
    return 2 * _lstm_layer_flops(input_shape, w_ih_shape, w_hh_shape)


if hasattr(torch.ops.mkldnn, "_linear_pointwise"):  # oneDNN products (`nmt.cpu.matmul`)
    @register_flop_formula(torch.ops.mkldnn._linear_pointwise)
    def _onednn_linear_flops(x_shape, w_shape, *args, **kwargs) -> int:
        return 2 * x_shape[0] * x_shape[1] * w_shape[0]


@register_flop_formula(_aten.mv)
def _mv_flops(a_shape, v_shape, *args, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1]


def count_flops(fn: Callable[[], object]) -> int:
    """The FLOPs of the ops `fn()` runs (forward and, if it runs one, backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()
