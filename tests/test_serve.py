"""`nmt serve`: the request protocol, the dynamic batcher (against a scripted decoder), the HTTP
API on a real server with the small model of tests/data, and the load and fault test."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path

import pytest

from nmt.errors import NmtError
from nmt.serve.batcher import Batcher
from nmt.serve.protocol import Job, Limits, Options, RequestError, parse_request

pytest.importorskip("starlette", reason="the serve extra: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx", reason="the test extra: pip install -e '.[test]'")

MODEL = Path(__file__).parent / "data" / "old_model_dir"
LINES = MODEL.joinpath("input.txt").read_text(encoding="utf-8").splitlines()
LIMITS = Limits(max_lines=8, max_chars=200, max_body=4000, max_beam=6)


# ---------------------------------------------------------------------------------- protocol

@pytest.mark.parametrize("body, status, message", [
    (b'{"text": ["a man', 400, "malformed JSON"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b"[1, 2]", 400, "expected a JSON object, got a list"),
    (b'{"txt": ["a"]}', 400, "unknown field(s) txt"),
    (b'{"beam": 2}', 400, "missing field text"),
    (b'{"text": "a man"}', 400, "text: expected a list of strings, got a string"),
    (b'{"text": []}', 400, "text: empty list"),
    (b'{"text": ["a", null]}', 400, "text[1]: expected a string, got null"),
    (b'{"text": ["a"], "beam": 0}', 400, "beam: 0 is not between 1 and 6"),
    (b'{"text": ["a"], "beam": 2.5}', 400, "beam: expected an integer"),
    (b'{"text": ["a"], "beam": true}', 400, "beam: expected an integer, got a boolean"),
    (b'{"text": ["a"], "beam": 2, "nbest": 3}', 400, "nbest: 3 is not between 1 and 2"),
    (b'{"text": ["a"], "alignments": "yes"}', 400, "alignments: expected true or false"),
    (b'{"text": ["a"], "prefix": ["b", "c"]}', 400, "prefix: 2 entries for 1 lines"),
    (b'{"text": ["\\ud800"]}', 400, "text[0]: not valid Unicode"),
    (json.dumps({"text": ["a"] * 9}).encode(), 422, "text: 9 lines, over the limit of 8"),
    (json.dumps({"text": ["a" * 201]}).encode(), 422, "text[0]: 201 characters"),
    (b'{"text": ["' + b"a" * 4000 + b'"]}', 413, "request body over 4000 bytes"),
])
def test_bad_requests_are_refused_with_their_status(body, status, message):
    with pytest.raises(RequestError, match=re.escape(message)) as e:
        parse_request(body, LIMITS, default_beam=5)
    assert e.value.status == status


@pytest.mark.parametrize("body, message", [
    (b"[" * 3000 + b"]" * 3000, "malformed JSON: nested too deeply"),
    (b'{"text": ["a"], "beam": ' + b"9" * 5000 + b"}", "malformed JSON: Exceeds the limit"),
])
def test_what_breaks_the_json_parser_is_a_400_not_a_crash(body, message):
    with pytest.raises(RequestError, match=message) as e:
        parse_request(body, Limits(max_body=100_000), default_beam=5)
    assert e.value.status == 400


def test_a_request_takes_the_model_defaults_and_its_own_options():
    job = parse_request(b'{"text": ["a", ""]}', LIMITS, default_beam=4)
    assert job == Job(["a", ""], Options(beam=4))
    job = parse_request(b'{"text": ["a"], "beam": 3, "nbest": 2, "alignments": true, '
                        b'"prefix": ["ein"]}', LIMITS, default_beam=4)
    assert job == Job(["a"], Options(3, 2, True, prefixed=True), ["ein"])
    with pytest.raises(RequestError, match="prefix is not supported by this version"):
        parse_request(b'{"text": ["a"], "prefix": ["b"]}', LIMITS, 4, prefix_supported=False)


# ----------------------------------------------------------------------------------- batcher

class ScriptedDecoder:
    """Records each call; line "fail" raises a user error, "crash" a bug; "slow" blocks until
    released (so that later jobs queue up behind it)."""

    def __init__(self):
        self.calls: list[tuple[list[str], Options]] = []
        self.release = threading.Event()

    def __call__(self, texts, options, prefix):
        self.calls.append((list(texts), options))
        if "slow" in texts:
            self.release.wait(10)
        if "fail" in texts:
            raise NmtError("cannot translate 'fail'")
        if "crash" in texts:
            raise ZeroDivisionError("a bug")
        return [f"{t.upper()}/{options.beam}" + (f"/{p}" if prefix else "")
                for t, p in zip(texts, prefix or [None] * len(texts), strict=True)]


def run_jobs(decoder: ScriptedDecoder, jobs: list[Job], max_batch: int = 64,
             max_wait: float = 0.2) -> list:
    """Submit `jobs` while the decoder is held on a "slow" job, so that they all wait in the
    queue together; the results (or the exceptions) in submission order."""
    async def main():
        batcher = Batcher(decoder, max_batch=max_batch, max_wait=max_wait)
        batcher.start()
        blocker = asyncio.ensure_future(batcher.submit(Job(["slow"], Options(1))))
        while not decoder.calls:
            await asyncio.sleep(0.001)
        futures = [asyncio.ensure_future(batcher.submit(j)) for j in jobs]
        await asyncio.sleep(0.05)  # every job queued behind the blocker
        decoder.release.set()
        out = await asyncio.gather(*futures, return_exceptions=True)
        await blocker
        batcher.close()
        return out, batcher.stats

    out, stats = asyncio.run(main())
    decoder.calls.pop(0)  # the blocker's call
    return out


def test_requests_with_the_same_options_share_one_call_and_get_their_own_results():
    decoder = ScriptedDecoder()
    jobs = [Job(["a", "b"], Options(2)), Job(["c"], Options(2)), Job(["d", "e", "f"], Options(2))]
    out = run_jobs(decoder, jobs)
    assert out == [["A/2", "B/2"], ["C/2"], ["D/2", "E/2", "F/2"]]
    assert decoder.calls == [(["a", "b", "c", "d", "e", "f"], Options(2))]


def test_different_options_are_decoded_in_separate_groups():
    decoder = ScriptedDecoder()
    jobs = [Job(["a"], Options(2)), Job(["b"], Options(3)), Job(["c"], Options(2)),
            Job(["d"], Options(2, alignments=True)),
            Job(["e"], Options(2, prefixed=True), ["E"])]
    out = run_jobs(decoder, jobs)
    assert out == [["A/2"], ["B/3"], ["C/2"], ["D/2"], ["E/2/E"]]
    assert [texts for texts, _ in decoder.calls] == [["a", "c"], ["b"], ["d"], ["e"]]


def test_calls_hold_at_most_max_batch_lines_and_never_split_a_request():
    decoder = ScriptedDecoder()
    jobs = [Job(["a", "b"], Options(1)), Job(["c", "d"], Options(1)), Job(["e"], Options(1)),
            Job(["f", "g", "h", "i"], Options(1))]
    out = run_jobs(decoder, jobs, max_batch=3)
    assert out == [["A/1", "B/1"], ["C/1", "D/1"], ["E/1"], ["F/1", "G/1", "H/1", "I/1"]]
    assert [texts for texts, _ in decoder.calls] == [["a", "b"], ["c", "d", "e"],
                                                      ["f", "g", "h", "i"]]


def test_a_failing_request_does_not_fail_the_requests_decoded_with_it():
    decoder = ScriptedDecoder()
    jobs = [Job(["a"], Options(1)), Job(["fail"], Options(1)), Job(["b"], Options(1)),
            Job(["crash"], Options(1))]
    out = run_jobs(decoder, jobs)
    assert out[0] == ["A/1"] and out[2] == ["B/1"]
    assert isinstance(out[1], RequestError) and out[1].status == 400
    assert "cannot translate 'fail'" in str(out[1])
    assert isinstance(out[3], RequestError) and out[3].status == 500
    assert "ZeroDivisionError" in str(out[3])


def test_a_batch_waits_for_its_usual_company_but_a_lone_client_never_waits():
    decoder = ScriptedDecoder()

    async def main():
        batcher = Batcher(decoder, max_batch=64, max_wait=5.0)
        batcher.start()
        start = time.perf_counter()
        await batcher.submit(Job(["alone"], Options(1)))  # no batch of company yet: no wait
        lone = time.perf_counter() - start
        held = asyncio.ensure_future(batcher.submit(Job(["slow"], Options(1))))
        while len(decoder.calls) < 2:
            await asyncio.sleep(0.001)
        together = [asyncio.ensure_future(batcher.submit(Job([t], Options(1)))) for t in "abc"]
        await asyncio.sleep(0.05)
        decoder.release.set()  # a, b and c are decoded together: the usual company is 3
        await asyncio.gather(held, *together)
        start = time.perf_counter()
        staggered = []
        for t in "def":  # arriving 50 ms apart, within max_wait: one call, without waiting 5 s
            staggered.append(asyncio.ensure_future(batcher.submit(Job([t], Options(1)))))
            await asyncio.sleep(0.05)
        await asyncio.gather(*staggered)
        batcher.close()
        return lone, time.perf_counter() - start

    lone, staggered = asyncio.run(main())
    assert lone < 1.0 and staggered < 1.0
    assert [texts for texts, _ in decoder.calls] == [["alone"], ["slow"], ["a", "b", "c"],
                                                     ["d", "e", "f"]]


def test_close_finishes_the_queued_requests_then_refuses_new_ones():
    decoder = ScriptedDecoder()
    decoder.release.set()

    async def main():
        batcher = Batcher(decoder, max_batch=2, max_wait=0.0)
        batcher.start()
        futures = [asyncio.ensure_future(batcher.submit(Job([t], Options(1)))) for t in "abcde"]
        await asyncio.sleep(0)  # all five queued
        closing = asyncio.get_running_loop().run_in_executor(None, batcher.close)
        done = await asyncio.gather(*futures)
        await closing
        with pytest.raises(RequestError, match="shutting down") as e:
            await batcher.submit(Job(["f"], Options(1)))
        return done, e.value.status

    done, status = asyncio.run(main())
    assert done == [["A/1"], ["B/1"], ["C/1"], ["D/1"], ["E/1"]] and status == 503


# ---------------------------------------------------------------------------- the HTTP server

@pytest.fixture(scope="module")
def translator():
    from nmt.api import Translator

    return Translator.load(MODEL, device="cpu")


@pytest.fixture(scope="module")
def server(translator):
    """A real server on a free loopback port; batches wait up to 50 ms for company."""
    from nmt.serve.app import create_app, make_service
    from nmt.serve.server import background

    service = make_service(translator, LIMITS, max_batch=16, max_wait_ms=50)
    with background(create_app(service)) as url:
        yield url


def test_a_max_beam_below_the_models_default_beam_is_refused_at_start(translator):
    """Requests without "beam" take the model's decode.beam_size: a --max-beam below it
    would refuse them all, so the service does not start."""
    from nmt.serve.app import make_service
    from nmt.serve.protocol import Limits

    beam = translator.config.decode.beam_size
    assert beam > 1
    with pytest.raises(NmtError, match=rf"^--max-beam {beam - 1} is below the model's "
                                       rf"decode.beam_size {beam}"):
        make_service(translator, Limits(max_beam=beam - 1), max_batch=4, max_wait_ms=0)
    make_service(translator, Limits(max_beam=beam), max_batch=4, max_wait_ms=0)


def post(url: str, body, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + "/translate", content=content, timeout=30, **kwargs)


def test_health_and_info(server):
    assert httpx.get(server + "/health").json()["status"] == "ok"
    info = httpx.get(server + "/info").json()
    assert info["languages"] == {"source": "en", "target": "de"}
    assert info["decoding"]["beam_size"] == 5 and info["model"]["attention"] == "bahdanau"
    assert info["limits"] == {"max_lines": 8, "max_chars": 200, "max_body": 4000,
                              "max_beam": 6}
    assert info["batching"] == {"max_batch": 16, "max_wait_ms": 50}


def test_translations_come_back_in_input_order_as_the_api_gives_them(server, translator):
    lines = LINES[:5] + [""]
    got = post(server, {"text": lines, "beam": 3}).json()["translations"]
    want = translator.translate(lines, beam=3)
    assert [t["text"] for t in got] == [r.text for r in want]
    assert [t["score"] for t in got] == pytest.approx([r.score for r in want], abs=1e-5)
    assert got[-1] == {"text": "", "score": 0.0}


def test_nbest_gives_a_list_per_line_and_alignments_the_word_matrix(server, translator):
    got = post(server, {"text": LINES[:2], "nbest": 3, "alignments": True}).json()
    want = translator.translate(LINES[:2], nbest=3, alignments=True)
    assert [len(entry) for entry in got["translations"]] == [3, 3]
    for entry, result in zip(got["translations"], want, strict=True):
        assert [c["text"] for c in entry] == [c.text for c in result.candidates]
        a, b = entry[0]["alignment"], result.alignment
        assert (a["src"], a["tgt"]) == (b.src_words, b.tgt_words)
        assert a["links"] == [list(link) for link in b.links]
        assert [len(row) for row in a["matrix"]] == [len(row) for row in b.matrix]
        assert [w for row in a["matrix"] for w in row] == pytest.approx(
            [w for row in b.matrix for w in row], abs=1e-4)


@pytest.mark.parametrize("body, status", [
    (b'{"text": ["a man', 400), (b'{"text": "a man"}', 400), (b'{"text": []}', 400),
    (b'{"text": ["a"], "beam": 99}', 400), (json.dumps({"text": ["a"] * 9}).encode(), 422),
    (b'{"text": ["' + b"a" * 300_000 + b'"]}', 413),
])
def test_bad_requests_get_a_json_error_and_their_status(server, body, status):
    response = post(server, body)
    assert response.status_code == status
    assert set(response.json()) == {"error"}


def test_a_body_over_the_limit_is_refused_without_a_content_length(server):
    def chunks():
        yield b'{"text": ["'
        for _ in range(50):
            yield b"a" * 1000
        yield b'"]}'

    response = httpx.post(server + "/translate", content=chunks(), timeout=30)
    assert response.status_code == 413 and "over 4000 bytes" in response.json()["error"]


def test_unknown_paths_and_methods_are_json_errors(server):
    assert httpx.get(server + "/nope").status_code == 404
    response = httpx.get(server + "/translate")
    assert response.status_code == 405 and response.json() == {"error": "Method Not Allowed"}


def test_a_bad_request_in_a_concurrent_batch_leaves_the_others_intact(server, translator):
    want = [r.text for r in translator.translate(LINES[:8], beam=2)]
    before = httpx.get(server + "/health").json()

    async def main():
        async with httpx.AsyncClient(base_url=server, timeout=30) as http:
            good = [http.post("/translate", json={"text": [line], "beam": 2})
                    for line in LINES[:8]]
            bad = [http.post("/translate", content=b'{"text": [7]}'),
                   http.post("/translate", json={"text": ["a"], "beam": 2, "nbest": 5}),
                   http.post("/translate", content=b"\x00" * 5000)]
            return await asyncio.gather(*good[:4], *bad, *good[4:])

    answers = asyncio.run(main())
    good, bad = answers[:4] + answers[7:], answers[4:7]
    assert [r.status_code for r in bad] == [400, 400, 413]
    assert [r.json()["translations"][0]["text"] for r in good] == want
    after = httpx.get(server + "/health").json()
    assert after["requests"] - before["requests"] == 8  # the bad ones never reached the model


def test_the_page_is_self_contained(server):
    from nmt.alignment.report import CSS

    response = httpx.get(server + "/")
    page = response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert CSS in page  # the alignment report's look
    assert "://" not in page and "//" not in page.replace("data:,", "")
    assert "<script src" not in page and "<link rel=\"stylesheet\"" not in page


# ------------------------------------------------------------------------------ the command

def test_checkpoint_is_another_name_for_model_dir_and_repeats_make_an_ensemble():
    import argparse

    from nmt.cli.serve import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--model-dir", "a", "--checkpoint", "b"])
    assert args.model_dir == ["a", "b"] and (args.host, args.port) == ("127.0.0.1", 8000)


def test_serve_without_the_extra_is_one_line_naming_the_install(monkeypatch, capsys):
    import importlib.util

    from nmt.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["serve", "--model-dir", str(MODEL)]) == 2
    err = capsys.readouterr().err
    assert err == "error: serve needs uvicorn: .venv/bin/pip install -e '.[serve]'\n"


def test_a_busy_port_is_one_line(capsys):
    from nmt.cli import main
    from nmt.serve.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert main(["serve", "--model-dir", str(MODEL), "--port",
                     str(sock.getsockname()[1])]) == 2
    finally:
        sock.close()
    err = capsys.readouterr().err
    assert err.startswith("error: --host 127.0.0.1 --port ") and err.count("\n") == 1


# --------------------------------------------------------------------- the load and fault test

def test_load_and_fault_run_loses_nothing_and_stops_cleanly(tmp_path, capsys):
    """scripts/bench_serve.py, tiny: 20 one-line requests from 4 clients with bad requests
    mixed in, against `nmt serve` in its own process, then SIGTERM with requests in flight."""
    from nmt.bench.serve_load import main

    out = tmp_path / "bench.json"
    assert main(["--model-dir", str(MODEL), "--input", str(MODEL / "input.txt"),
                 "--requests", "20", "--clients", "4", "--bad-every", "2", "--echo-every", "3",
                 "--beam", "2",
                 "--num-threads", "1", "--wave", "3", "--wave-lines", "32",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    level = result["levels"][0]
    tally = level["tally"]
    assert (tally["good"], tally["ok"], tally["lost"], tally["extra"]) == (20, 20, 0, 0)
    assert tally["echoed"] == 6 and tally["misrouted"] == 0  # each got its own line back
    assert tally["differing"] == 0  # fp32: each line as in the one-call batch
    assert tally["bad"] == tally["bad_refused"] == 10
    assert 0 < level["p50_ms"] <= level["p95_ms"] and level["ratio_to_cli"] > 0
    shutdown = result["shutdown"]
    assert shutdown["in_flight_at_sigterm"] >= 1
    assert (shutdown["answered"], shutdown["lost"], shutdown["exit_status"]) == (3, 0, 0)
    assert shutdown["misrouted"] == shutdown["differing"] == 0
    assert "PASS" in capsys.readouterr().out


# ------------------------------------------------------------------------- target prefixes

def test_prefixes_reach_the_translator_and_are_decoded_apart_from_plain_requests(
        server, translator):
    lines, prefix = LINES[:3], ["ein Hund", "", None]
    want = [r.text for r in translator.translate(lines, prefix=prefix)]
    plain = [r.text for r in translator.translate(lines)]
    assert want[0].startswith("ein Hund") and want[0] != plain[0]

    async def main():
        async with httpx.AsyncClient(base_url=server, timeout=30) as http:
            return await asyncio.gather(http.post("/translate", json={"text": lines}),
                                        http.post("/translate", json={"text": lines,
                                                                      "prefix": prefix}))

    got_plain, got_prefixed = asyncio.run(main())
    assert [t["text"] for t in got_prefixed.json()["translations"]] == want
    assert [t["text"] for t in got_plain.json()["translations"]] == plain
    response = post(server, {"text": lines, "prefix": "ein Hund"})
    assert response.status_code == 400 and "prefix: expected a list" in response.json()["error"]
