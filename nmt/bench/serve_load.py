"""Load and fault test of `nmt serve`, on loopback, bounded in requests and time.

One run:
1. the CLI's batch throughput: `Translator.translate` on all the lines in one call, in this
   process (the reference each served answer is checked against);
2. `nmt serve` started as a child process on a free loopback port;
3. for each client count N: N concurrent clients (asyncio, one keep-alive connection each,
   `nmt.bench.http_client`) send `--requests` requests of one line each, taken in order
   from the file, with a bad request after every `--bad-every` good ones (malformed JSON,
   wrong types, an empty list, bad option values, too many lines, a body over the limit,
   invalid UTF-8), each of which must get its 4xx while the good ones succeed; p50/p95
   latency of the good ones, sentences/s and its ratio to the CLI's;
4. the CLI throughput again (the mean of both is the reference: the machine is shared);
5. shutdown: a wave of multi-line requests is sent, SIGTERM once the server reports them in
   flight; every one must be answered in full and the server exit with status 0.

Checks on every answer: a good request gets 200 with exactly one translation per line sent
(else `lost` or `extra`). Every `--echo-every`-th good request (and every request of the
shutdown wave) asks for alignments, whose source words must be its own line's words: an
answer that belongs to another line is `misrouted`, whatever the numerics. A translation
unlike the one-call batch translation of its line is `differing`: zero in fp32, where a
sentence's translation does not depend on its batch; int8 activation scales and shortlists
are computed per batch, so there some lines differ legitimately. The run passes with zero
lost, extra and misrouted, every bad request refused with its status, and a clean shutdown.

Cost accounting: the CPU seconds of the server process (from /proc) and of this process (the
clients) per phase, since on a small machine the clients share the cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nmt.bench.http_client import Connection
from nmt.errors import NmtError
from nmt.io import atomic_open


@dataclass
class Tally:
    """What one phase's answers were: `refs[n]` is line n's one-call translation, and
    `sources[n]` line n itself (what an answer with an alignment must echo)."""

    refs: list[str]
    sources: list[str]
    good: int = 0
    ok: int = 0
    lost: int = 0
    extra: int = 0
    echoed: int = 0
    misrouted: int = 0
    differing: int = 0
    bad: int = 0
    bad_refused: int = 0
    wrong_status: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        out = {k: v for k, v in asdict(self).items()
               if k not in ("refs", "sources", "latencies_ms")}
        out["wrong_status"] = out["wrong_status"][:10]
        return out

    def check(self, lines: list[int], status: int, body: Any, echo: bool = False) -> None:
        """One good request's answer: `lines` are the indexes of the lines it sent; with
        `echo` it asked for alignments, whose source words must be its own lines' words."""
        self.good += 1
        got = body.get("translations") if status == 200 and isinstance(body, dict) else None
        if not isinstance(got, list) or len(got) < len(lines):
            self.lost += 1
            if len(self.wrong_status) < 5:
                self.wrong_status.append(f"good request: {status} {str(body)[:120]}")
            return
        self.extra += len(got) > len(lines)
        self.ok += 1
        for n, entry in zip(lines, got, strict=False):
            entry = entry if isinstance(entry, dict) else {}
            if echo:
                self.echoed += 1
                alignment = entry.get("alignment") or {}
                self.misrouted += alignment.get("src") != self.sources[n].split()
            self.differing += entry.get("text") != self.refs[n]


@dataclass
class Level:
    clients: int
    requests: int
    seconds: float
    sentences_per_s: float
    ratio_to_cli: float
    p50_ms: float
    p95_ms: float
    calls: int
    mean_lines_per_call: float
    decoder_busy: float  # share of the time the server's decoding thread was decoding
    server_cores: float  # the server process's CPU seconds per second
    client_cpu_ms_per_request: float  # this process's (the clients')
    tally: dict


def bad_requests(limits: dict) -> list[tuple[str, bytes, int]]:
    """(name, body, expected status) of the bad requests mixed into the load."""
    too_many = json.dumps({"text": ["a"] * (limits["max_lines"] + 1)}).encode()
    too_big = b'{"text": ["' + b"a" * limits["max_body"] + b'"]}'
    return [("malformed JSON", b'{"text": ["a man', 400),
            ("text not a list", b'{"text": "a man"}', 400),
            ("empty list", b'{"text": []}', 400),
            ("beam 0", b'{"text": ["a man"], "beam": 0}', 400),
            ("nbest a string", b'{"text": ["a man"], "nbest": "two"}', 400),
            ("a number in text", b'{"text": ["a man", 7]}', 400),
            ("not an object", b"[1, 2, 3]", 400),
            ("unknown field", b'{"text": ["a man"], "beams": 5}', 400),
            ("invalid UTF-8", b'{"text": ["\xff\xfe"]}', 400),
            ("too many lines", too_many, 422),
            ("body over the limit", too_big, 413)]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ranked = sorted(values)
    return ranked[max(math.ceil(q / 100 * len(ranked)) - 1, 0)]


# ------------------------------------------------------------------------ the CLI's side

def cli_throughput(translator: Any, lines: list[str], beam: int) -> tuple[float, list[str]]:
    """Sentences/s of one `translate` call on all the lines, and the translations."""
    translator.translate(lines[:8], beam=beam)  # warm-up: first-call allocations
    start = time.perf_counter()
    texts = [r.text for r in translator.translate(lines, beam=beam)]
    return len(lines) / (time.perf_counter() - start), texts


# ---------------------------------------------------------------------------- the server

class ServerProcess:
    """`nmt serve` as a child process on a free loopback port."""

    def __init__(self, args: list[str], timeout: float = 120.0):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="nmt-serve-", suffix=".log")
        cmd = [sys.executable, "-m", "nmt.cli", "serve", "--host", "127.0.0.1", "--port", "0",
               *args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.url = self._wait_url(timeout)

    def _wait_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"on (http://127\.0\.0\.1:\d+)", self.output())
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                raise NmtError(f"nmt serve exited with {self.proc.returncode}: "
                               f"{self.output().strip()[-500:]}")
            time.sleep(0.05)
        self.kill()
        raise NmtError(f"nmt serve did not start in {timeout:g} s")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process so far (Linux /proc; else NaN)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def output(self) -> str:
        return Path(self.log.name).read_text(encoding="utf-8", errors="replace")

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ------------------------------------------------------------------------------- clients

async def _post(connection: Connection, body: bytes) -> tuple[int, Any, float]:
    """(status, JSON body or None, milliseconds)."""
    start = time.perf_counter()
    status, answer = await connection.json("POST", "/translate", body)
    return status, answer, (time.perf_counter() - start) * 1000


async def _get(url: str, path: str) -> dict:
    connection = Connection(url, timeout=30.0)
    status, answer = await connection.json("GET", path)
    await connection.close()
    if status != 200 or not isinstance(answer, dict):
        raise NmtError(f"GET {path}: {status} {answer}")
    return answer


async def run_level(url: str, lines: list[str], refs: list[str], clients: int, requests: int,
                    beam: int, bad: list[tuple[str, bytes, int]], bad_every: int,
                    max_seconds: float, echo_every: int = 0) -> tuple[Tally, float]:
    """N closed-loop clients over `requests` one-line requests (line i % len(lines))."""
    tally = Tally(refs, lines)
    work: asyncio.Queue = asyncio.Queue()
    for i in range(requests):
        echo = bool(echo_every) and (i + 1) % echo_every == 0
        work.put_nowait(("echo" if echo else "good", i % len(lines)))
        if bad and bad_every and (i + 1) % bad_every == 0:
            work.put_nowait(("bad", (i // bad_every) % len(bad)))
    deadline = time.monotonic() + max_seconds

    async def client() -> None:
        connection = Connection(url)
        while not work.empty() and time.monotonic() < deadline:
            kind, n = work.get_nowait()
            if kind == "bad":
                name, body, expected = bad[n]
                status, answer, _ = await _post(connection, body)
                await connection.close()  # a refused body may leave the connection unusable
                tally.bad += 1
                if status == expected and isinstance(answer, dict) and "error" in answer:
                    tally.bad_refused += 1
                else:
                    tally.wrong_status.append(f"{name}: {status}, expected {expected}")
                continue
            body = json.dumps({"text": [lines[n]], "beam": beam,
                               "alignments": kind == "echo"}).encode()
            status, answer, ms = await _post(connection, body)
            tally.check([n], status, answer, echo=kind == "echo")
            if status == 200:
                tally.latencies_ms.append(ms)
        await connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return tally, time.perf_counter() - start


async def shutdown_wave(server: ServerProcess, lines: list[str], refs: list[str], beam: int,
                        wave: int, per_request: int) -> dict:
    """`wave` requests of `per_request` lines in flight, SIGTERM, every answer checked."""
    tally = Tally(refs, lines)
    chosen = [[(w * per_request + k) % len(lines) for k in range(per_request)]
              for w in range(wave)]

    async def one(idx: list[int]) -> None:
        connection = Connection(server.url)
        body = json.dumps({"text": [lines[n] for n in idx], "beam": beam,
                           "alignments": True}).encode()
        status, answer, _ = await _post(connection, body)
        tally.check(idx, status, answer, echo=True)
        await connection.close()

    tasks = [asyncio.create_task(one(idx)) for idx in chosen]
    in_flight, deadline = 0, time.monotonic() + 10
    probe = Connection(server.url, timeout=10.0)
    while time.monotonic() < deadline and not all(t.done() for t in tasks):
        status, health = await probe.json("GET", "/health")
        if status != 200:  # the server is going or gone: the stop test reports what it finds
            break
        in_flight = health["in_flight"]
        if in_flight >= wave:
            break
        await asyncio.sleep(0.002)
    await probe.close()
    server.terminate()
    signalled = time.perf_counter()
    await asyncio.gather(*tasks)
    code = await asyncio.to_thread(server.wait, 60)
    return {"requests": wave, "lines_each": per_request, "in_flight_at_sigterm": in_flight,
            "answered": tally.ok, "lost": tally.lost, "misrouted": tally.misrouted,
            "differing": tally.differing, "exit_status": code,
            "seconds_to_exit": round(time.perf_counter() - signalled, 3)}


# ------------------------------------------------------------------------------- the run

async def _served(server: ServerProcess, lines: list[str], refs: list[str], beam: int,
                  args: argparse.Namespace) -> tuple[dict, list[tuple], dict]:
    info = await _get(server.url, "/info")
    bad = bad_requests(info["limits"]) if args.bad_every else []
    await run_level(server.url, lines, refs, 2, 4, beam, [], 0, 120)  # warm-up
    levels = []
    for clients in args.clients:
        before = await _get(server.url, "/health")
        cpu = (server.cpu_seconds(), time.process_time())
        tally, seconds = await run_level(server.url, lines, refs, clients,
                                         args.requests or len(lines), beam, bad,
                                         args.bad_every, args.max_seconds, args.echo_every)
        cpu = (server.cpu_seconds() - cpu[0], time.process_time() - cpu[1])
        after = await _get(server.url, "/health")
        levels.append((clients, tally, seconds, after["calls"] - before["calls"],
                       after["lines"] - before["lines"],
                       after["busy_seconds"] - before["busy_seconds"], cpu))
    per_request = min(info["limits"]["max_lines"], args.wave_lines)
    shutdown = await shutdown_wave(server, lines, refs, beam, args.wave, per_request)
    return info, levels, shutdown


def measure(args: argparse.Namespace) -> dict:
    """The whole run (see the module docstring) as one JSON-ready dict."""
    import torch

    from nmt.api import Translator
    from nmt.io import read_lines

    lines = [line for line in read_lines(args.input) if line.strip()][:args.lines]
    if not lines:
        raise NmtError(f"--input {args.input}: no non-empty lines")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    translator = Translator.load(args.model_dir, quantize=args.quantize,
                                 shortlist=args.shortlist, device="cpu")
    beam = args.beam or translator.config.decode.beam_size
    cli_before, refs = cli_throughput(translator, lines, beam)
    served = [a for d in args.model_dir for a in ("--model-dir", d)]
    served += ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms),
               "--device", "cpu"]
    served += (["--quantize"] if args.quantize else []) + (
        ["--shortlist"] if args.shortlist else [])
    served += ["--num-threads", str(args.num_threads)] if args.num_threads else []
    server = ServerProcess(served)
    try:
        info, levels, shutdown = asyncio.run(_served(server, lines, refs, beam, args))
    finally:
        server.kill()
    cli_after, _ = cli_throughput(translator, lines, beam)
    cli = (cli_before + cli_after) / 2
    rows = []
    for clients, tally, seconds, calls, served_lines, busy, (server_cpu, client_cpu) in levels:
        rate = tally.ok / seconds if seconds else 0.0
        sent = tally.good + tally.bad
        rows.append(asdict(Level(
            clients, tally.good, round(seconds, 3), round(rate, 2), round(rate / cli, 3),
            round(percentile(tally.latencies_ms, 50), 2),
            round(percentile(tally.latencies_ms, 95), 2), calls,
            round(served_lines / calls, 2) if calls else 0.0,
            round(busy / seconds, 3) if seconds else 0.0,
            round(server_cpu / seconds, 3) if seconds else 0.0,
            round(client_cpu * 1000 / sent, 3) if sent else 0.0, tally.summary())))
    return {"input": str(args.input), "lines": len(lines), "beam": beam,
            "quantize": args.quantize, "shortlist": args.shortlist,
            "models": args.model_dir, "torch_threads": args.num_threads or torch.get_num_threads(),
            "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
            "cli_sentences_per_s": round(cli, 2),
            "cli_before_after": [round(cli_before, 2), round(cli_after, 2)],
            "levels": rows, "shutdown": shutdown, "server_limits": info["limits"],
            "load_average": list(os.getloadavg()), "passed": passed(rows, shutdown)}


def passed(levels: list[dict], shutdown: dict) -> bool:
    """Nothing lost, duplicated or misrouted; every bad request refused; a clean stop."""
    for level in levels:
        t = level["tally"]
        if t["lost"] or t["extra"] or t["misrouted"] or t["bad_refused"] != t["bad"]:
            return False
    return (shutdown["exit_status"] == 0 and shutdown["lost"] == 0
            and shutdown["misrouted"] == 0 and shutdown["answered"] == shutdown["requests"])


def report(result: dict) -> str:
    out = [f"CLI batch (one Translator.translate call on {result['lines']} lines, beam "
           f"{result['beam']}): {result['cli_sentences_per_s']:.1f} sentences/s "
           f"(before {result['cli_before_after'][0]:.1f}, after "
           f"{result['cli_before_after'][1]:.1f})",
           f"{'clients':>7} {'requests':>8} {'sents/s':>8} {'of CLI':>6} {'p50 ms':>7} "
           f"{'p95 ms':>7} {'lines/call':>10} {'busy':>5} {'cores':>5} {'lost':>4} "
           f"{'misrouted':>9} {'differing':>9} {'bad refused':>11}"]
    for r in result["levels"]:
        t = r["tally"]
        out.append(f"{r['clients']:>7} {r['requests']:>8} {r['sentences_per_s']:>8.1f} "
                   f"{r['ratio_to_cli']:>6.2f} {r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} "
                   f"{r['mean_lines_per_call']:>10.1f} {r['decoder_busy']:>5.2f} "
                   f"{r['server_cores']:>5.2f} {t['lost']:>4} "
                   f"{t['misrouted']:>5}/{t['echoed']:<3} {t['differing']:>9} "
                   f"{t['bad_refused']:>5}/{t['bad']:<5}")
        out.extend(f"    {w}" for w in t["wrong_status"])
    out.append("server cores = its CPU seconds per second; the clients (this process) "
               "used " + ", ".join(f"{r['client_cpu_ms_per_request']:.2f} ms"
                                   for r in result["levels"]) + " of CPU per request")
    s = result["shutdown"]
    out.append(f"SIGTERM with {s['in_flight_at_sigterm']} of {s['requests']} requests "
               f"({s['lines_each']} lines each) in flight: {s['answered']} answered, "
               f"{s['lost']} lost; exit status {s['exit_status']} after "
               f"{s['seconds_to_exit']:.2f} s")
    out.append("PASS" if result["passed"] else "FAIL")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_serve", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", action="append", required=True, metavar="DIR")
    parser.add_argument("--input", required=True, help="source lines (plain or .gz)")
    parser.add_argument("--lines", type=int, metavar="N", help="the first N non-empty lines")
    parser.add_argument("--requests", type=int, metavar="N",
                        help="good requests per client count (default: one per line)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--beam", type=int, help="default: the model's")
    parser.add_argument("--quantize", action="store_true")
    parser.add_argument("--shortlist", action="store_true")
    parser.add_argument("--num-threads", type=int, metavar="N",
                        help="torch threads, here and in the server")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=50.0)
    parser.add_argument("--bad-every", type=int, default=10, metavar="K",
                        help="a bad request after every K good ones (0: none)")
    parser.add_argument("--echo-every", type=int, default=10, metavar="K",
                        help="every K-th good request asks for alignments, whose source "
                        "words prove it got its own line back (0: none)")
    parser.add_argument("--wave", type=int, default=4, help="requests in flight at SIGTERM")
    parser.add_argument("--wave-lines", type=int, default=16, help="lines in each of them")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="stop sending after this long, per client count")
    parser.add_argument("--json", metavar="FILE", help="write the result here")
    args = parser.parse_args(argv)
    try:
        if args.json and Path(args.json).is_dir():  # before the run, not after it
            raise NmtError(f"--json {args.json} is a directory, not a file")
        result = measure(args)
    except NmtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report(result))
    if args.json:
        with atomic_open(args.json) as f:
            f.write(json.dumps(result, indent=1) + "\n")
    return 0 if result["passed"] else 1
