"""`run_guarded`: how every `nmt` command turns user errors into `error: ...` + exit 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from nmt.errors import Interrupted, NmtError


def run_guarded(fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Call `fn(args)` and map expected failures to exit codes, without a traceback.

    NmtError -> `error: <msg>` on stderr, 2; Ctrl-C -> `interrupted` (or what the command
    kept, from `Interrupted`) on stderr, 130; a closed output pipe (e.g. `| head`) -> 1,
    silently.
    """
    try:
        return fn(args)
    except Interrupted as e:
        print(e, file=sys.stderr)
        return 130
    except NmtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a real file (e.g. captured in tests); nothing to silence
