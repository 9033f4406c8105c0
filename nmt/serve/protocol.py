"""The JSON protocol of `POST /translate`: parsing, limits, refusals, the response.

Request: `{"text": [line, ...], "beam": K, "nbest": N, "alignments": bool, "prefix": [...]}`;
only `text` is required (beam: the model's `decode.beam_size`, nbest 1, alignments false).
`prefix`, one string per line ("" or null: none), makes each translation start with that
target text (`Translator.translate(prefix=...)`).

Response: `{"translations": [...]}`, entry N for line N; an entry is `{"text", "score"}`
(plus `"alignment"` with `alignments: true`), or with `nbest` > 1 a list of such entries,
best first. An alignment is `{"src": words, "tgt": words, "matrix": rows, "links": pairs}`:
`matrix[j][i]` is target word j's attention on source word i, `links` the hard alignment as
[i, j] pairs (see `nmt.api.Alignment`).

Refusals are `{"error": "one line"}` with a status: 400 for a body that is not a JSON object
of the fields above with values of the right type and range (malformed JSON, wrong types, an
empty `text`, beam 0, an unknown field); 413 for a body over `max_body` bytes; 422 for a
well-formed request over a limit (more than `max_lines` lines, a line over `max_chars`
characters).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nmt.errors import NmtError

FIELDS = ("text", "beam", "nbest", "alignments", "prefix")


class RequestError(NmtError):
    """A request refused: `status` is the HTTP status, the message one line for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_lines: int = 64  # lines in `text`
    max_chars: int = 1000  # characters in one line (or prefix)
    max_body: int = 1_000_000  # bytes of the request body
    max_beam: int = 16


@dataclass(frozen=True)
class Options:
    """How a request's lines are decoded. Requests with equal options can share one
    `translate` call; `prefixed` requests carry one target prefix per line."""

    beam: int
    nbest: int = 1
    alignments: bool = False
    prefixed: bool = False


@dataclass(frozen=True)
class Job:
    """One parsed request: its lines, how to decode them, and (if prefixed) their prefixes."""

    texts: list[str]
    options: Options
    prefix: list[str] | None = None


def parse_request(body: bytes, limits: Limits, default_beam: int,
                  prefix_supported: bool = True) -> Job:
    """A request body -> `Job`, or `RequestError` with its status (see the module docstring)."""
    if len(body) > limits.max_body:
        raise RequestError(413, f"request body over {limits.max_body} bytes")
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise RequestError(400, "request body is not UTF-8") from None
    except ValueError as e:  # JSONDecodeError, or an integer of over 4,300 digits
        raise RequestError(400, f"malformed JSON: {e}") from None
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise RequestError(400, f"expected a JSON object, got {_kind(data)}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise RequestError(400, f"unknown field(s) {', '.join(unknown)}; the fields are "
                           f"{', '.join(FIELDS)}")
    if "text" not in data:
        raise RequestError(400, "missing field text (a list of lines)")
    texts = _lines(data["text"], "text", limits)
    beam = _integer(data, "beam", default_beam, 1, limits.max_beam)
    nbest = _integer(data, "nbest", 1, 1, beam)
    alignments = data.get("alignments", False)
    if not isinstance(alignments, bool):
        raise RequestError(400, f"alignments: expected true or false, got {_kind(alignments)}")
    prefix = None
    if data.get("prefix") is not None:
        if not prefix_supported:
            raise RequestError(400, "prefix is not supported by this version")
        given = data["prefix"]
        prefix = _lines([p if p is not None else "" for p in given]
                        if isinstance(given, list) else given, "prefix", limits)
        if len(prefix) != len(texts):
            raise RequestError(400, f"prefix: {len(prefix)} entries for {len(texts)} lines "
                               "of text (one prefix per line, \"\" for none)")
    return Job(texts, Options(beam, nbest, alignments, prefix is not None), prefix)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _lines(value: Any, name: str, limits: Limits) -> list[str]:
    if not isinstance(value, list):
        raise RequestError(400, f"{name}: expected a list of strings, got {_kind(value)}")
    if not value:
        raise RequestError(400, f"{name}: empty list (send at least one line)")
    if len(value) > limits.max_lines:
        raise RequestError(422, f"{name}: {len(value)} lines, over the limit of "
                           f"{limits.max_lines} per request")
    for n, line in enumerate(value):
        if not isinstance(line, str):
            raise RequestError(400, f"{name}[{n}]: expected a string, got {_kind(line)}")
        if len(line) > limits.max_chars:
            raise RequestError(422, f"{name}[{n}]: {len(line)} characters, over the limit "
                               f"of {limits.max_chars}")
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(400, f"{name}[{n}]: not valid Unicode (a lone surrogate)") \
                from None
    return value


def _integer(data: dict, name: str, default: int, low: int, high: int) -> int:
    value = data.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, f"{name}: expected an integer, got {_kind(value)}")
    if not low <= value <= high:
        raise RequestError(400, f"{name}: {value} is not between {low} and {high}")
    return value


# ----------------------------------------------------------------------------- the response

def candidate_json(candidate: Any, alignments: bool) -> dict[str, Any]:
    """One `nmt.api.Candidate` as JSON."""
    out: dict[str, Any] = {"text": candidate.text, "score": round(float(candidate.score), 6)}
    if alignments:
        a = candidate.alignment
        out["alignment"] = None if a is None else {
            "src": a.src_words, "tgt": a.tgt_words,
            "matrix": [[round(w, 4) for w in row] for row in a.matrix],
            "links": [[i, j] for i, j in a.links]}
    return out


def response_json(results: list[Any], options: Options) -> dict[str, Any]:
    """`nmt.api.Result`s of one request -> the response body."""
    if options.nbest == 1:
        return {"translations": [candidate_json(r.candidates[0], options.alignments)
                                 for r in results]}
    return {"translations": [[candidate_json(c, options.alignments) for c in r.candidates]
                             for r in results]}
