"""The kernel switches: the one place where `nmt` reads its `NMT_*` environment variables.

Each fast path of `nmt.cpu` is on by default where it is available; a switch turns it off,
e.g. to time it against the plain path (`scripts/bench_speed.py --ab`) or to rule it out
when a result looks wrong:

    variable               field               when set
    NMT_ONEDNN_MATMUL=0    onednn_matmul       every fp32 product stays with torch (MKL)
    NMT_PACK_WEIGHTS=0     pack_weights        oneDNN reorders plain weights at each product
    NMT_FUSED_LOSS=0       fused_loss          torch's cross-entropy on the logits
    NMT_SYSTEM_MALLOC=1    keep_freed_memory   glibc's malloc settings stay as they are
                           (set to False)

The environment is read once, at the first `current()`; `override` changes switches for a
block of code (the in-process A/B timing), and `reset` forgets what was read (tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from nmt.errors import NmtError


@dataclass(frozen=True)
class Switches:
    onednn_matmul: bool = True
    pack_weights: bool = True
    fused_loss: bool = True
    keep_freed_memory: bool = True

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Switches:
        values = {}
        for name, (field, off_value) in VARIABLES.items():
            if name in environ:
                values[field] = environ[name] != off_value
        return cls(**values)

    def differences(self) -> dict[str, str]:
        """The variables (name -> value) that set these switches where they differ from the
        defaults; what a record of a run should hold."""
        default = Switches()
        return {name: off for name, (field, off) in VARIABLES.items()
                if getattr(self, field) != getattr(default, field)}


# variable -> (field, the value that turns the field off)
VARIABLES = {
    "NMT_ONEDNN_MATMUL": ("onednn_matmul", "0"),
    "NMT_PACK_WEIGHTS": ("pack_weights", "0"),
    "NMT_FUSED_LOSS": ("fused_loss", "0"),
    "NMT_SYSTEM_MALLOC": ("keep_freed_memory", "1"),
}

_current: Switches | None = None


def current() -> Switches:
    """The switches in force: the environment's, read once, unless `override` is active."""
    global _current
    if _current is None:
        _current = Switches.from_environ()
    return _current


def reset() -> None:
    """Read the environment again at the next `current()` (tests that set variables)."""
    global _current
    _current = None


@contextlib.contextmanager
def override(**changes: bool) -> Iterator[Switches]:
    """Switches changed for the block (fields of `Switches` as keywords)."""
    global _current
    before = current()
    _current = dataclasses.replace(before, **changes)
    try:
        yield _current
    finally:
        _current = before


def parse_assignment(text: str) -> tuple[str, bool]:
    """`NMT_FUSED_LOSS=0` -> ("fused_loss", False); one line naming the text if it is not a
    known switch set to its off value or to its default."""
    name, sep, value = text.partition("=")
    if not sep or name not in VARIABLES:
        known = ", ".join(f"{n}={off}" for n, (_, off) in VARIABLES.items())
        raise NmtError(f"{text!r}: not a switch; the switches are {known}")
    field, off_value = VARIABLES[name]
    return field, value != off_value
