"""Checks of the file paths a command is given, each error naming the flag the user typed."""

from __future__ import annotations

from pathlib import Path

from nmt.errors import NmtError


def input_file(path: str, flag: str) -> str:
    """`path`, if it names a file; else one line naming `flag`: a directory, or nothing."""
    if Path(path).is_dir():
        raise NmtError(f"{flag} {path} is a directory, not a file")
    if not Path(path).exists():
        raise NmtError(f"{flag} {path}: no such file")
    return path


def output_file(path: str, flag: str) -> str:
    """`path`, unless it names a directory (a file cannot be written over one)."""
    if Path(path).is_dir():
        raise NmtError(f"{flag} {path} is a directory, not a file")
    return path
