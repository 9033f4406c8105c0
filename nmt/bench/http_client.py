"""A small HTTP/1.1 client on asyncio streams, for load tests on loopback.

One keep-alive connection per object, one request at a time: what a closed-loop load client
needs, at a fraction of a general client's CPU per request (which matters when the clients
share a small machine's cores with the server they measure). Responses must carry a
Content-Length (Starlette's JSON and HTML responses do); a response that says
`Connection: close`, or a failed exchange, closes the connection and the next request opens a
new one. A reused connection that the server closed while it was idle (its keep-alive timeout)
is reopened and the request sent again, once, as general clients do.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class _ClosedWhileIdle(ConnectionError):
    """End of stream before a response's first byte."""


class Connection:
    def __init__(self, url: str, timeout: float = 120.0):
        host_port = url.removeprefix("http://").rstrip("/")
        host, _, port = host_port.rpartition(":")
        self.host, self.port, self.timeout = host, int(port), timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """(status, body); raises OSError (or asyncio.TimeoutError) when the exchange fails."""
        try:
            return await asyncio.wait_for(self._exchange(method, path, body), self.timeout)
        except BaseException:
            await self.close()
            raise

    async def json(self, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
        """(status, the body as JSON or None); status 0 and the error when it failed."""
        try:
            status, data = await self.request(method, path, body)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            return 0, {"transport error": f"{type(e).__name__}: {e}"}
        try:
            return status, json.loads(data)
        except ValueError:
            return status, None

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def _exchange(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        reused = self._streams is not None
        try:
            return await self._once(method, path, body)
        except _ClosedWhileIdle:
            if not reused:
                raise
            await self.close()  # the server closed the idle keep-alive connection: retry once
            return await self._once(method, path, body)

    async def _once(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode("ascii") + body)
        try:
            await writer.drain()
        except ConnectionError:  # refused early (e.g. 413 before the body): read the answer
            pass
        status_line = await reader.readline()
        if not status_line:
            raise _ClosedWhileIdle("the server closed the connection before answering")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise ValueError("response without a Content-Length")
        data = await reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return int(parts[1]), data
