"""Small file helpers: atomic writes and strict line reading."""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from nmt.errors import NmtError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w",
                encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it over `path` only if the block succeeds.

    A crash or exception inside the block leaves any previous `path` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def open_text(path: str | os.PathLike) -> IO[bytes]:
    """Open a possibly gzipped file for binary reading."""
    path = Path(path)
    if not path.is_file():
        raise NmtError(f"{path}: no such file")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_lines(path: str | os.PathLike | None, stream: IO[bytes] | None = None) -> list[str]:
    """Read all lines of a UTF-8 file (or a binary stream), without line terminators.

    Invalid UTF-8 raises NmtError naming the file and the 1-based line number. A final line
    without a newline counts as a line; a file ending in a newline has no extra empty line.
    Only '\\n' (and a preceding '\\r') ends a line, so no line is split or merged by other
    Unicode line breaks.
    """
    name = str(path) if path is not None else "<stdin>"
    if stream is None:
        with open_text(path) as f:
            data = f.read()
    else:
        data = stream.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for i, raw in enumerate(lines, start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise NmtError(f"{name}:{i}: invalid UTF-8 at byte {e.start}") from None
    return out
