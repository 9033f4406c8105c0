"""Where training runs and in which precision: device choice, autocast, grad scaling.

CPU runs stay fp32 unless `train.amp` asks otherwise (bf16 autocast works on CPU too).
On CUDA, `amp: auto` picks bf16 where the GPU supports it and fp16 with a gradient scaler
otherwise; batches are pinned and copied without blocking.

`keep_freed_memory` stops glibc from handing large freed blocks back to the kernel, which
otherwise makes every large CPU tensor pay for fresh page faults (see its docstring).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import warnings
from collections.abc import Iterator

import torch

from nmt.cpu import switches
from nmt.errors import NmtError

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h
_kept = False


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel.

    By default glibc serves every block over its mmap threshold (at most 32 MiB) with a fresh
    mmap and unmaps it when freed, so each large tensor (a batch's (N, V) logits) is paid for
    again with a page fault per 4 KiB on first touch, a large share of a CPU training update
    (BENCHMARKS.md). Here mmap is switched off for allocations and the heap is never trimmed,
    so freed blocks are reused; the process keeps its peak heap until it exits (what the
    resident-memory peak already reports).

    Training (`Trainer`) applies it; decoding does not (it measured no faster with it,
    BENCHMARKS.md). Once per process, Linux with glibc only; `NMT_SYSTEM_MALLOC=1`
    (`nmt.cpu.switches`) leaves malloc untouched. Returns whether the setting is in force.
    """
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux") or not switches.current().keep_freed_memory:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _kept = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _kept


def resolve_device(name: str, what: str = "train.device") -> torch.device:
    """'auto' -> cuda if available, else cpu; anything else must exist here. Errors name
    `what` (the config key or argument the name came from)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NmtError(f"{what}: '{name}' is not a device (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NmtError(f"{what}: '{name}' asked for, but no CUDA device is available")
    return device


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `mode` on `device` (None: full fp32)."""
    if mode == "none" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "fp16" and device.type != "cuda":
        raise NmtError("train.amp: fp16 needs a CUDA device (use bf16 or none on the CPU)")
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` (None: nothing). On the CPU, oneDNN's LSTM kernels reject bf16
    inputs on processors without native bf16 (AVX-512 BF16 / AMX), so there oneDNN is
    switched off inside the context: the LSTMs then run in fp32 and the linear layers in
    bf16 (slow: use it to check numerics, not for speed). Where the processor has native
    bf16, oneDNN stays on and runs the bf16 products."""
    if dtype is None:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    if device.type == "cpu" and not native_cpu_bf16():
        stack.enter_context(_onednn_off())
    stack.enter_context(torch.autocast(device_type=device.type, dtype=dtype))
    return stack


def native_cpu_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@contextlib.contextmanager
def _onednn_off() -> Iterator[None]:
    """oneDNN off, without the warning torch gives on entry and exit when it saves and
    restores the (Intel-GPU-only) oneDNN TF32 flag along with the others."""
    flags = torch.backends.mkldnn.flags(enabled=False)
    with _no_tf32_warning():
        flags.__enter__()
    try:
        yield
    finally:
        with _no_tf32_warning():
            flags.__exit__(None, None, None)


@contextlib.contextmanager
def _no_tf32_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        yield


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling; bf16 and fp32 do not."""
    if dtype is torch.float16:
        return torch.amp.GradScaler(device.type)
    return None
