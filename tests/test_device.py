"""`keep_freed_memory`: freed large blocks are reused, not faulted in again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Allocate and touch a 64 MiB tensor and free it, 24 times: the minor page faults of each
# round. 64 MiB is 16,384 pages of 4 KiB; glibc's default serves it with a fresh mmap every
# time (it is over the 32 MiB ceiling of its mmap threshold). Kept memory is reused once the
# heap holds enough free space: the first rounds grow the heap, because posix_memalign asks
# for the size plus its alignment slack, which an exactly-sized free block cannot give until
# it coalesces with free neighbours (small slack chunks wait in glibc's tcache meanwhile). On
# this machine the last faulting round was the 8th or 9th, up to the 13th (30 runs); the
# test checks the last 4 of 24.
SNIPPET = """
import resource, torch
from nmt.training.device import keep_freed_memory
print(keep_freed_memory())
for _ in range(24):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(16 << 20)
    x.fill_(1.0)
    del x
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_per_round(system_malloc: bool) -> tuple[bool, list[int]]:
    env = dict(os.environ, NMT_SYSTEM_MALLOC="1" if system_malloc else "0")
    out = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    return out[0] == "True", [int(n) for n in out[1:]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_freed_memory_is_reused_without_page_faults():
    kept, faults = faults_per_round(system_malloc=False)
    assert kept and max(faults[-4:]) < 1000, faults
    kept, faults = faults_per_round(system_malloc=True)  # the opt-out leaves glibc as it is
    assert not kept and min(faults[-4:]) > 10_000, faults


def test_keep_freed_memory_is_idempotent():
    from nmt.training.device import keep_freed_memory

    assert keep_freed_memory() == keep_freed_memory()
