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


def _proc_umask() -> int | None:
    """The process umask from the `Umask:` line of /proc/self/status (Linux >= 4.7), read
    without changing it; None where that is unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _import_time_umask() -> int:
    """Fallback where /proc is unavailable: read the umask once, at import, when no other thread
    of ours creates files. `os.umask` can only be read by setting it, so never call it later."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_IMPORT_UMASK = _proc_umask()
if _IMPORT_UMASK is None:
    _IMPORT_UMASK = _import_time_umask()


def _current_umask() -> int:
    umask = _proc_umask()
    return _IMPORT_UMASK if umask is None else umask


def _fsync_dir(directory: Path) -> None:
    """Make a rename inside `directory` durable; ignore filesystems (and platforms) that refuse
    to open or fsync a directory."""
    try:
        dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w",
                encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it over `path` only if the block succeeds.

    A crash or exception inside the block leaves any previous `path` untouched. The file is
    fsynced before the rename and its directory after it, so a finished write survives a crash.
    The process umask is read, never changed (changing it races with other threads).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp makes 0600; give the usual permissions
    os.chmod(tmp, 0o666 & ~_current_umask())
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
    _fsync_dir(path.parent)


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
