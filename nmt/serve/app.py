"""The Starlette application: `/` (the page), `GET /health`, `GET /info`, `POST /translate`.

Every answer is JSON but the page; every refusal is `{"error": "..."}` with its status
(`nmt.serve.protocol`; unknown paths 404, wrong methods 405, a decoding failure 500). A bad
request is refused before it reaches the batcher, so it never touches another request.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

import nmt
from nmt.api import Translator
from nmt.errors import NmtError
from nmt.serve.batcher import Batcher
from nmt.serve.page import CONTENT_SECURITY_POLICY, render_page
from nmt.serve.protocol import Job, Limits, Options, RequestError, parse_request, response_json


@dataclass
class Service:
    """What the routes share: the batcher, the limits, the model's defaults and `/info`."""

    batcher: Batcher
    limits: Limits
    default_beam: int
    prefix_supported: bool
    info: dict[str, Any]
    page: str
    in_flight: int = 0  # /translate requests being answered


def supports_prefix(translator: Translator) -> bool:
    """Whether this version's `Translator.translate` takes `prefix=`."""
    return "prefix" in inspect.signature(translator.translate).parameters


def decoder_for(translator: Translator):
    """The batcher's `decode`: one `Translator.translate` call per merged group."""
    def decode(texts: list[str], options: Options, prefix: list[str] | None):
        extra = {"prefix": prefix} if prefix is not None else {}
        return translator.translate(texts, beam=options.beam, nbest=options.nbest,
                                    alignments=options.alignments, **extra)
    return decode


def make_service(translator: Translator, limits: Limits, max_batch: int, max_wait_ms: float,
                 details: dict[str, Any] | None = None) -> Service:
    """The service for `translator` (not started: the app's lifespan starts the batcher)."""
    cfg = translator.config
    if cfg.decode.beam_size > limits.max_beam:  # the default of every request without "beam"
        raise NmtError(f"--max-beam {limits.max_beam} is below the model's decode.beam_size "
                       f"{cfg.decode.beam_size}, the beam of requests that give none; raise it")
    prefix = supports_prefix(translator)
    batcher = Batcher(decoder_for(translator), max_batch, max_wait_ms / 1000)
    info = {
        "version": nmt.__version__,
        "models": translator.loaded.names,
        "languages": {"source": cfg.data.src_lang, "target": cfg.data.tgt_lang},
        "device": translator.device,
        "model": dataclasses.asdict(cfg.model),
        "decoding": dataclasses.asdict(cfg.decode),
        "limits": dataclasses.asdict(limits),
        "batching": {"max_batch": max_batch, "max_wait_ms": max_wait_ms},
        "prefix": prefix,
        **(details or {}),
    }
    page = render_page(cfg.data.src_lang, cfg.data.tgt_lang, cfg.decode.beam_size,
                       limits.max_beam)
    return Service(batcher, limits, cfg.decode.beam_size, prefix, info, page)


def create_app(service: Service) -> Starlette:
    async def index(request: Request) -> Response:
        return HTMLResponse(service.page,
                            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    async def health(request: Request) -> Response:
        b = service.batcher
        return JSONResponse({"status": "ok", "in_flight": service.in_flight,
                             "queued": b.queued, "requests": b.stats.requests,
                             "lines": b.stats.lines, "calls": b.stats.calls,
                             "largest_call": b.stats.largest_call,
                             "busy_seconds": round(b.stats.busy_seconds, 3)})

    async def info(request: Request) -> Response:
        return JSONResponse(service.info)

    async def translate(request: Request) -> Response:
        service.in_flight += 1
        try:
            job = await _read_job(request, service)
            results = await service.batcher.submit(job)
            return JSONResponse(response_json(results, job.options))
        except RequestError as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        finally:
            service.in_flight -= 1

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.batcher.start()
        try:
            yield
        finally:
            service.batcher.close()  # after uvicorn answered every request in flight

    routes = [Route("/", index, methods=["GET"]), Route("/health", health, methods=["GET"]),
              Route("/info", info, methods=["GET"]),
              Route("/translate", translate, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: _http_error, Exception: _server_error})


async def _read_job(request: Request, service: Service) -> Job:
    """The body, read up to the limit (a larger one is refused unread), parsed."""
    limit = service.limits.max_body
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body over {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise RequestError(413, f"request body over {limit} bytes")
    except ClientDisconnect:
        raise RequestError(400, "the client closed the connection mid-request") from None
    return parse_request(bytes(body), service.limits, service.default_beam,
                         service.prefix_supported)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _server_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)
