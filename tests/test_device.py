"""`keep_freed_memory`: freed large blocks are reused, not faulted in again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import set_switch

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")

# Call keep_freed_memory twice; then, with a 64 MiB tensor alive, how many MiB glibc serves
# from mmap and from its heap (mallinfo2, glibc >= 2.33; -1 where it is missing); then
# allocate and touch a 64 MiB tensor and free it, 24 times: the minor page faults of each
# round. 64 MiB is 16,384 pages of 4 KiB; glibc's default serves it with a fresh mmap every
# time (it is over the 32 MiB ceiling of its mmap threshold). Kept memory is reused once the
# heap holds enough free space: the first rounds grow the heap, because posix_memalign asks
# for the size plus its alignment slack, which an exactly-sized free block cannot give until
# it coalesces with free neighbours (small slack chunks wait in glibc's tcache meanwhile). On
# this machine the last faulting round was the 8th or 9th, up to the 13th (30 runs); the
# test checks the last 4 of 24.
SNIPPET = """
import ctypes, resource, torch
from nmt.training.device import keep_freed_memory
print(keep_freed_memory(), keep_freed_memory())
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
if hasattr(libc, "mallinfo2"):
    libc.mallinfo2.restype = MallInfo2
    before = libc.mallinfo2()
    x = torch.empty(16 << 20)
    after = libc.mallinfo2()
    del x
    print((after.hblkhd - before.hblkhd) >> 20, (after.arena - before.arena) >> 20)
else:
    print(-1, -1)
for _ in range(24):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(16 << 20)
    x.fill_(1.0)
    del x
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run_snippet(system_malloc: bool) -> tuple[list[bool], tuple[int, int], list[int]]:
    """What keep_freed_memory returned (twice), the MiB (mmap, heap) serving a live 64 MiB
    tensor, and the page faults of each round."""
    env = dict(os.environ, NMT_SYSTEM_MALLOC="1" if system_malloc else "0")
    out = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    return [x == "True" for x in out[:2]], (int(out[2]), int(out[3])), [int(n) for n in out[4:]]


@linux_only
def test_freed_memory_is_reused_without_page_faults():
    kept, (mmapped, heap), faults = run_snippet(system_malloc=False)
    assert kept == [True, True]  # in force, and a second call says so too
    if mmapped >= 0:  # large blocks come from the heap, not from mmap
        assert mmapped == 0 and heap > 32, (mmapped, heap)
    assert max(faults[-4:]) < 1000, faults
    kept, (mmapped, heap), faults = run_snippet(system_malloc=True)  # the opt-out: glibc as is
    assert kept == [False, False]
    if mmapped >= 0:
        assert mmapped >= 64, (mmapped, heap)
    assert min(faults[-4:]) > 10_000, faults


@linux_only
def test_keep_freed_memory_tunes_glibc_once(monkeypatch):
    """mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, 2^31 - 1) (glibc's malloc.h:
    M_TRIM_THRESHOLD -1, M_MMAP_MAX -4), once per process; nothing with the opt-out."""
    import ctypes
    import types

    from nmt.training import device

    calls = []

    def mallopt(param: int, value: int) -> int:
        calls.append((param, value))
        return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: types.SimpleNamespace(mallopt=mallopt))
    monkeypatch.setattr(device, "_kept", False)
    set_switch(monkeypatch, "NMT_SYSTEM_MALLOC", "1")
    assert device.keep_freed_memory() is False and calls == []
    set_switch(monkeypatch, "NMT_SYSTEM_MALLOC", None)
    assert device.keep_freed_memory() is True
    assert device.keep_freed_memory() is True
    assert sorted(calls) == [(-4, 0), (-1, 2**31 - 1)]
