"""The one exception type for user errors.

Anything the user can fix (a bad path, a malformed file, an unknown config key) raises
`NmtError` with a single line naming the file/line/key and what is wrong. The CLI prints
`error: <message>` and exits with status 2; it never shows a traceback for these.
"""


class NmtError(Exception):
    """A user-facing error; its message is one line, printed without a traceback."""


class Interrupted(NmtError):
    """The user stopped the command (Ctrl-C) and it stopped cleanly: the message says what
    was kept and how to go on. Exit status 130, like a shell's for SIGINT."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty),
    for wrapping a library's multi-line error into an `NmtError`."""
    text = str(error)
    return text.splitlines()[0] if text.strip() else type(error).__name__
