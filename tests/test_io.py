"""`nmt.io.atomic_open`: no process-wide umask changes, durable renames, clean failures."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nmt.io import atomic_open


def _current_umask() -> int:
    """The umask, read the only portable way (setting it), outside any monkeypatch."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _has_proc_umask() -> bool:
    try:
        return "Umask:" in Path("/proc/self/status").read_text(errors="replace")
    except OSError:
        return False


def _forbid_umask(monkeypatch) -> list:
    calls = []

    def no_umask(*args):
        calls.append(args)
        raise AssertionError("atomic_open must not change the process umask")

    monkeypatch.setattr(os, "umask", no_umask)
    return calls


def test_atomic_open_never_calls_umask_and_uses_umask_mode(tmp_path, monkeypatch):
    umask = _current_umask()
    calls = _forbid_umask(monkeypatch)
    path = tmp_path / "out.txt"
    with atomic_open(path) as f:
        f.write("hello\n")
    assert calls == []
    assert path.read_text(encoding="utf-8") == "hello\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


@pytest.mark.skipif(not _has_proc_umask(), reason="needs the Umask line of /proc/self/status")
@pytest.mark.parametrize("umask", [0o027, 0o077, 0o002], ids=oct)
def test_atomic_open_follows_umask_set_after_import(tmp_path, monkeypatch, umask):
    old = os.umask(umask)
    try:
        with monkeypatch.context() as m:
            calls = _forbid_umask(m)
            path = tmp_path / "out.bin"
            with atomic_open(path, "wb") as f:
                f.write(b"\x00\x01")
            assert calls == []
    finally:
        os.umask(old)
    assert path.read_bytes() == b"\x00\x01"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_atomic_open_without_proc_uses_import_time_umask(tmp_path, monkeypatch):
    import nmt.io

    expected = 0o666 & ~nmt.io._IMPORT_UMASK
    monkeypatch.setattr(nmt.io, "_proc_umask", lambda: None)  # as where /proc is unavailable
    calls = _forbid_umask(monkeypatch)
    path = tmp_path / "out.txt"
    with atomic_open(path) as f:
        f.write("x")
    assert calls == []
    assert stat.S_IMODE(path.stat().st_mode) == expected


def test_atomic_open_fsyncs_directory_after_replace(tmp_path, monkeypatch):
    sub = tmp_path / "model"
    sub.mkdir()
    path = sub / "ckpt.pt"
    path.write_bytes(b"old")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync", (st.st_dev, st.st_ino), stat.S_ISDIR(st.st_mode)))
        return real_fsync(fd)

    def replace(src, dst, *args, **kwargs):
        events.append(("replace", os.fspath(dst)))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_open(path, "wb") as f:
        f.write(b"new")
    monkeypatch.undo()

    assert path.read_bytes() == b"new"
    replaces = [i for i, e in enumerate(events) if e[0] == "replace"]
    assert len(replaces) == 1 and events[replaces[0]][1] == os.fspath(path)
    file_id = (path.stat().st_dev, path.stat().st_ino)
    dir_id = (sub.stat().st_dev, sub.stat().st_ino)
    before, after = events[:replaces[0]], events[replaces[0] + 1:]
    # The file's data is fsynced before the rename, the directory after it.
    assert ("fsync", file_id, False) in before
    assert ("fsync", dir_id, True) in after


def test_atomic_open_ignores_directory_fsync_refusal(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with atomic_open(path) as f:
        f.write("x")
    assert path.read_text(encoding="utf-8") == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


@pytest.mark.parametrize("mode,old,new", [("w", "old\n", "new\n"), ("wb", b"old", b"new")])
def test_atomic_open_failure_keeps_old_file_and_removes_temp(tmp_path, mode, old, new):
    path = tmp_path / "data.txt"
    if isinstance(old, bytes):
        path.write_bytes(old)
    else:
        path.write_text(old, encoding="utf-8")

    with pytest.raises(RuntimeError, match="boom"), atomic_open(path, mode) as f:
        f.write(new)
        raise RuntimeError("boom")

    got = path.read_bytes() if isinstance(old, bytes) else path.read_text(encoding="utf-8")
    assert got == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]
