"""fp32 matrix products through oneDNN on the CPU, where torch's own `mm` is slower.

torch computes a CPU fp32 `mm` with MKL's sgemm; on some CPUs (e.g. AMD EPYC with AVX-512)
MKL takes a slower code path than oneDNN, which torch also ships (its LSTM layer, and the op
`torch.ops.mkldnn._linear_pointwise`). `scripts/bench_speed.py` measures both peaks on the
machine at hand; BENCHMARKS.md records them. `linear` is x W^T (+ b): with autograd, all
three products (forward, input gradient, weight gradient) through `mm_nt`; without it, one
oneDNN call. `FastLinear` (what `nmt.cpu.accelerate` makes of a model's `nn.Linear`s) and
`nmt.cpu.recurrence` use them in training and fp32 decoding; int8 layers keep their own
kernels. The results agree with torch's to fp32 rounding (a different summation order),
which the tests check.

On by default where available; `NMT_ONEDNN_MATMUL=0` (`nmt.cpu.switches`) keeps every
product with torch.
- Operand layouts: oneDNN's op reads its first (input) operand row-major, and torch copies
  any other layout to that first; its second (weight) operand may be either layout. A weight
  gradient dy^T x has both operands transposed, so `mm_nt` copies the smaller one and, when
  that is the right-hand one, computes the transposed product instead ((a b^T)^T = b a^T).
- Memory: oneDNN builds and caches a primitive (jitted code and buffers) for each product
  shape, and ideep (torch's oneDNN wrapper) keeps its own cache of them; both hold 1,024 by
  default, and with batches of varying row counts nearly every batch brings new shapes, so a
  training process grows by gigabytes. `cap_caches` caps both at `CACHE_CAPACITY` entries
  (`ONEDNN_PRIMITIVE_CACHE_CAPACITY`, `LRU_CACHE_CAPACITY`, unless already set), which holds
  one update's shapes. The libraries read the variables when they first build a primitive,
  so a process that used oneDNN before `nmt.cpu.accelerate` keeps their defaults.
- Products under `MIN_MACS` multiply-adds stay with torch: for them, building a primitive
  for each new shape costs more than oneDNN saves.
- Packed weights: oneDNN computes with its own blocked weight layout and, given a plain
  matrix, reorders it on every call, a large share of a decoder step's thin product.
  `pack_weight` reorders once (`torch.ops.mkldnn._reorder_linear_weight`, as torch's
  compiler does for frozen models) and `mm_nt_packed` multiplies with the result; teacher
  forcing packs the recurrent weight once per sequence (`nmt.cpu.recurrence.StepProjection`),
  fp32 decoding the step's layers once (`pack_linear`, from
  `nmt.cpu.inference.prepare_for_inference`). `NMT_PACK_WEIGHTS=0` turns it off.
`_linear_pointwise` is an internal op (torch's compiler uses it for frozen CPU models): if a
torch build lacks it or it fails on a probe, everything here falls back to `torch.mm`.
"""
from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F

from nmt.cpu import switches

CACHE_CAPACITY = 64  # primitives kept per cache (see above)
MIN_MACS = 1 << 20  # smaller products stay with torch


def cap_caches() -> None:
    """Cap oneDNN's and ideep's primitive caches at `CACHE_CAPACITY` entries, unless the
    variables are set already; `nmt.cpu.accelerate` calls it (before oneDNN builds a
    primitive, which is when the libraries read them)."""
    for variable in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
        os.environ.setdefault(variable, str(CACHE_CAPACITY))


def onednn_matmul() -> bool:
    """Whether fp32 CPU products (training and decoding) go through oneDNN: the switch on
    (`nmt.cpu.switches`), and available."""
    return switches.current().onednn_matmul and onednn_available()


@functools.cache
def onednn_available() -> bool:
    """Whether oneDNN fp32 products are available here (and give torch.mm's numbers)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        # fixed operands: the probe must not draw from the global RNG (dropout's stream)
        a = torch.arange(15, dtype=torch.float32).view(5, 3) / 7
        b = torch.arange(12, dtype=torch.float32).view(4, 3).cos()
        return bool(torch.allclose(onednn_mm_nt(a, b), a @ b.t(), atol=1e-5))
    except (AttributeError, RuntimeError):
        return False


def _dense(t: torch.Tensor) -> bool:
    """A row-major matrix or the transpose of one. oneDNN runs other layouts (e.g. a column
    slice of a wider matrix, rows strided) through its much slower reference kernel."""
    return t.dim() == 2 and (t.is_contiguous() or t.t().is_contiguous())


def _fp32_cpu_matrix(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype == torch.float32 and t.dim() == 2


def _enabled() -> bool:
    """oneDNN products on, torch's oneDNN switch on (`torch.backends.mkldnn.flags`), and no
    CPU autocast (whose dtype casts torch's own ops handle)."""
    return (torch.backends.mkldnn.enabled and not torch.is_autocast_enabled("cpu")
            and onednn_matmul())


def _eligible(macs: int, *matrices: torch.Tensor, dense: bool = True) -> bool:
    """The one test of whether a product goes to oneDNN: at least `MIN_MACS` multiply-adds,
    its `matrices` fp32 CPU matrices, in a dense layout unless `dense` is False (the caller
    copies them into one), and oneDNN products enabled."""
    return (macs >= MIN_MACS
            and all(_fp32_cpu_matrix(m) and (not dense or _dense(m)) for m in matrices)
            and _enabled())


def onednn_mm_nt(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """a (M, K) row-major, b (N, K) dense -> a b^T (+ bias) (M, N), one oneDNN call."""
    return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")


def mm_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (M, K) @ b (N, K)^T -> (M, N), without autograd; either operand may be transposed
    (so may the result: it is a transposed view when oneDNN computed b a^T)."""
    if not _eligible(a.size(0) * a.size(1) * b.size(0), a, b):
        return torch.mm(a, b.t())
    # oneDNN's input operand is read row-major (any other layout is copied first): put a
    # row-major operand there, or copy the smaller one
    if a.is_contiguous() or (not b.is_contiguous() and a.numel() <= b.numel()):
        return onednn_mm_nt(a.contiguous(), b)
    return onednn_mm_nt(b.contiguous(), a).t()  # (b a^T)^T


def pack_weight(weight: torch.Tensor, rows: int) -> torch.Tensor | None:
    """weight (N, K), either layout -> oneDNN's blocked layout of it, for `mm_nt_packed` with
    about `rows` rows; None where `mm_nt` would not use oneDNN for such a product, or packing
    is unavailable or off (`NMT_PACK_WEIGHTS=0`): the caller keeps `mm_nt`. The packed copy
    does not follow later changes to `weight` and carries no autograd."""
    if not (_eligible(rows * weight.numel(), weight) and _packing_on()
            and _packing_available()):
        return None
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)


def mm_nt_packed(a: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """a (M, K) @ W^T -> (M, N) for W packed by `pack_weight`; one oneDNN call, no autograd."""
    return onednn_mm_nt(a.contiguous(), packed)


def _packing_on() -> bool:
    """Packing not switched off (`NMT_PACK_WEIGHTS=0`, see `nmt.cpu.switches`)."""
    return switches.current().pack_weights


@functools.cache
def _packing_available() -> bool:
    """Whether this torch build packs weights for oneDNN (and the products stay exact)."""
    try:
        a = torch.arange(15, dtype=torch.float32).view(5, 3) / 7
        b = torch.arange(12, dtype=torch.float32).view(4, 3).cos()
        packed = torch.ops.mkldnn._reorder_linear_weight(b, 5)
        return bool(torch.equal(onednn_mm_nt(a, packed), onednn_mm_nt(a, b)))
    except (AttributeError, RuntimeError):
        return False


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return mm_nt(x, weight)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, weight = ctx.saved_tensors
        dx = mm_nt(dy, weight.t()) if ctx.needs_input_grad[0] else None  # dy W
        dw = mm_nt(dy.t(), x.t()) if ctx.needs_input_grad[1] else None  # dy^T x
        return dx, dw


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           packed: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)`: x (.., in) @ W^T (+ b), W (out, in) -> (.., out), on oneDNN
    where `mm_nt` would use it: with autograd (training) its three products through `mm_nt`,
    without it (decoding) one oneDNN call with the bias, with `packed` (`pack_weight` of this
    very weight) where given. Otherwise `F.linear` itself."""
    if not (x.dtype == weight.dtype and x.device == weight.device
            and _eligible(x.numel() * weight.size(0), weight, dense=False)):
        return F.linear(x, weight, bias)
    weight = weight if _dense(weight) else weight.contiguous()  # a copy, with its gradient
    rows = x.reshape(-1, x.size(-1))  # (N, in)
    if not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                         or (bias is not None and bias.requires_grad))):
        operand = weight if packed is None else packed
        return onednn_mm_nt(rows.contiguous(), operand, bias).view(*x.shape[:-1], weight.size(0))
    out = _Linear.apply(rows, weight).reshape(*x.shape[:-1], weight.size(0))
    return out if bias is None else out + bias


def pack_linear(layer: torch.nn.Linear, rows: int = 64) -> bool:
    """Keep a copy of `layer`'s weight packed for oneDNN (`pack_weight`), which `FastLinear`
    uses without autograd for as long as the weight is unchanged: decoding's step products,
    whose weights are fixed. Returns whether it packed (see `pack_weight`)."""
    packed = pack_weight(layer.weight, rows)
    weight = layer.weight
    layer._packed_weight = None if packed is None else (packed, weight.data_ptr(), weight._version)
    return packed is not None


def _current_pack(layer: torch.nn.Linear) -> torch.Tensor | None:
    """`layer`'s packed weight from `pack_linear`, while it still is the layer's weight and
    packing is on; else None."""
    entry = getattr(layer, "_packed_weight", None)
    if entry is None or not _packing_on():
        return None
    packed, ptr, version = entry
    weight = layer.weight
    return packed if ptr == weight.data_ptr() and version == weight._version else None


class FastLinear(torch.nn.Linear):
    """`nn.Linear` whose product is `linear`'s (oneDNN where eligible), with its packed weight
    from `pack_linear` while that is current. `nmt.cpu.accelerate` turns a model's
    `nn.Linear`s into these; same parameters, same state_dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias, _current_pack(self))
