"""Dynamic batching: one decoding thread, fed by a queue, serving every request.

The event loop puts each parsed request (`Job`) on a thread-safe queue and awaits its
future. The worker thread takes the first waiting job and everything already queued behind
it, then waits for more, at most `max_wait` seconds, while it holds fewer requests than the
largest batch of the last few (`RECENT` batches): clients that were answered together come
back together, so a batch waits for its usual company and no longer (a lone client never
waits; 32 clients in step are decoded 32 at a time). A batch holds at most `max_batch` lines;
the job that would not fit starts the next one.

The batch's jobs are grouped by their `Options` in arrival order; each group is decoded with
one `decode` call (a job is never split: a larger one than `max_batch` is a batch of its
own), whose results are split back to the jobs in order and handed to the event loop with
`call_soon_threadsafe`.

A failing call never fails its neighbours: a merged call that raises is decoded again one job
at a time, so only the job that caused the error gets it. `close()` lets every job already
queued finish, then stops the thread.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nmt.errors import NmtError
from nmt.serve.protocol import Job, Options, RequestError

# decode(texts, options, prefix) -> one result per text
Decode = Callable[[list[str], Options, list[str] | None], Sequence[Any]]
_STOP = object()
RECENT = 4  # batches whose largest request count a new batch waits for


@dataclass
class _Pending:
    job: Job
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class Stats:
    """Counts since start: requests and lines answered, `translate` calls made, and seconds
    the decoding thread spent in them."""

    requests: int = 0
    lines: int = 0
    calls: int = 0
    largest_call: int = 0
    busy_seconds: float = 0.0


class Batcher:
    """`submit(job)` from the event loop; `decode` runs on the batcher's own thread (see the
    module docstring). `max_wait` is in seconds."""

    def __init__(self, decode: Decode, max_batch: int = 64, max_wait: float = 0.05):
        if max_batch < 1 or max_wait < 0:
            raise NmtError(f"max_batch {max_batch}, max_wait {max_wait}: need >= 1 and >= 0")
        self.decode, self.max_batch, self.max_wait = decode, max_batch, max_wait
        self.stats = Stats()
        self._queue: queue.Queue = queue.Queue()
        self._recent: deque[int] = deque([1], maxlen=RECENT)  # requests per batch
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nmt-decode", daemon=True)
        self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Refuse new jobs, finish the queued ones, stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    async def submit(self, job: Job) -> list[Any]:
        """The job's results, in the order of its lines (raises what decoding it raised)."""
        if self._closed or self._thread is None:
            raise RequestError(503, "the server is shutting down")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Pending(job, future, loop))
        return await future

    # ------------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        carry = None  # a job that did not fit in the last batch starts the next one
        while True:
            first = carry if carry is not None else self._queue.get()
            if first is _STOP:
                break
            pending, carry, stop = self._collect(first)
            for call in self._calls(pending):
                self._decode(call)
            if stop:
                break
        while True:  # nothing should be left after _STOP; never leave a client waiting
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._answer(item, error=RequestError(503, "the server is shutting down"))

    def _collect(self, first: _Pending) -> tuple[list[_Pending], Any, bool]:
        """`first`, what is queued behind it, and what arrives within `max_wait` while the
        batch has fewer requests than the recent largest, as long as they fit in `max_batch`
        lines; returns them, the job that did not fit (or None), and whether the stop sign
        was seen."""
        pending, lines = [first], len(first.job.texts)
        deadline, company = time.monotonic() + self.max_wait, max(self._recent)
        carry, stop = None, False
        while lines < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = (self._queue.get(timeout=remaining)
                        if remaining > 0 and len(pending) < company
                        else self._queue.get_nowait())
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            if lines + len(item.job.texts) > self.max_batch:
                carry = item
                break
            pending.append(item)
            lines += len(item.job.texts)
        self._recent.append(len(pending))
        return pending, carry, stop

    def _calls(self, pending: list[_Pending]) -> list[list[_Pending]]:
        """Jobs grouped by options (first arrival first): one call per group. `_collect`
        keeps the batch within `max_batch` lines (or one job alone), so every group fits."""
        groups: dict[Options, list[_Pending]] = {}
        for p in pending:
            groups.setdefault(p.job.options, []).append(p)
        return list(groups.values())

    def _decode(self, call: list[_Pending]) -> None:
        options = call[0].job.options
        texts = [t for p in call for t in p.job.texts]
        prefix = [t for p in call for t in p.job.prefix] if options.prefixed else None
        start = time.perf_counter()
        try:
            results = list(self.decode(texts, options, prefix))
            assert len(results) == len(texts), (len(results), len(texts))
        except Exception as error:  # handed to the request(s) that caused it
            if len(call) > 1:  # find the culprit: one job at a time
                for p in call:
                    self._decode([p])
            else:
                self._answer(call[0], error=_as_request_error(error))
            return
        self._count(len(call), len(texts), time.perf_counter() - start)
        start = 0
        for p in call:
            n = len(p.job.texts)
            self._answer(p, results[start:start + n])
            start += n

    def _count(self, requests: int, lines: int, seconds: float) -> None:
        s = self.stats
        s.requests, s.lines, s.calls = s.requests + requests, s.lines + lines, s.calls + 1
        s.busy_seconds += seconds
        s.largest_call = max(s.largest_call, lines)

    @staticmethod
    def _answer(p: _Pending, results: list[Any] | None = None,
                error: BaseException | None = None) -> None:
        def settle() -> None:
            if p.future.done():  # the client went away and the handler was cancelled
                return
            if error is not None:
                p.future.set_exception(error)
            else:
                p.future.set_result(results)

        try:
            p.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the event loop is closed: nobody is waiting any more
            pass


def _as_request_error(error: BaseException) -> RequestError:
    """A decoding failure as the answer to its request: the user's error (an `NmtError`,
    e.g. a decoding option the model refuses) is a 400, anything else a 500."""
    if isinstance(error, RequestError):
        return error
    if isinstance(error, NmtError):
        return RequestError(400, str(error))
    return RequestError(500, f"decoding failed: {type(error).__name__}: {error}"
                        .splitlines()[0])
