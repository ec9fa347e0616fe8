"""`genolake serve`: point `g_variants` queries over HTTP on localhost, at 1 and 32 concurrent clients.

A real server process (`python -m genolake serve`, one uvicorn worker) on the main lake, with a policy of one
registered token (min_count 20). The load generator is an asyncio loop of keep-alive HTTP/1.1 connections with a fixed number of requests
(bounded: ``cfg.queries`` distinct variants, each asked once cold and then again while warm). Measured per
concurrency: p50 and p99 latency of the requests and requests per second over the whole series. The server
answers one request at a time (one lake connection per process), so with 32 clients a request waits for the
ones ahead of it: latency targets are read at 1 client, throughput at 32.

Series:
- ``serve.boolean_cold``: anonymous boolean queries, each variant asked for the first time (the server's answer
  cache is empty for it): what a Beacon network's first ping costs;
- ``serve.boolean_c1`` / ``serve.boolean_c32``: anonymous boolean queries over the same variants again, 1 and
  32 clients (warm: answers cached per lake version);
- ``serve.record_c1`` / ``serve.record_c32``: registered, record granularity (counts per institution and per
  phenotype value under disclosure control), warm;
- peers in the same run: `genolake query variant` as a whole process (a few runs), and pysam fetch in process
  (every institution's file, AC/AN from the genotypes), per query.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.suites.common import Measure, percentile, run_timed, summary
from benchmarks.suites.context import Context
from benchmarks.suites.peers import PysamPeer
from benchmarks.suites.queries import pick_variants, variant_id

log = logging.getLogger("benchmarks")
TOKEN = "benchmark-registered-token"
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(lake: Path, work: Path) -> tuple[subprocess.Popen, str]:  # type: ignore[type-arg]
    import hashlib

    import httpx

    work.mkdir(parents=True, exist_ok=True)
    pol = work / "policy.toml"
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    pol.write_text(f'[disclosure]\nmin_count = 20\n[[tokens]]\nname = "bench"\nsha256 = "{digest}"\n'
                   f'tier = "registered"\n[budget]\nqueries_per_hour = 100000000\n[audit]\npath = "audit.jsonl"\n')
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log_file = open(work / "server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "genolake", "serve", "--lake", str(lake), "--port", str(port),
                             "--policy", str(pol)], stdout=log_file, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(work / 'server.log').read_text()[-500:]}")
        try:
            if httpx.get(url + "/api/info", timeout=5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start in 120 s")


def _params(v: tuple[str, int, str, str]) -> dict[str, str]:
    return {"referenceName": v[0], "start": str(v[1] - 1), "referenceBases": v[2], "alternateBases": v[3]}


async def _load(url: str, variants: list[Any], *, clients: int, token: str | None,
                granularity: str | None) -> tuple[list[float], float]:
    """Every variant asked once, by ``clients`` concurrent keep-alive connections; latencies (s) and wall (s).

    A minimal asyncio HTTP/1.1 client (write the request, read the headers, then Content-Length bytes): a
    full client such as httpx spends more CPU per request than the server does on a cached answer, and on 2
    shared cores the load generator's CPU is taken from the server.
    """
    from urllib.parse import urlencode, urlsplit

    host, port = urlsplit(url).hostname, urlsplit(url).port
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for v in variants:
        queue.put_nowait(v)
    times: list[float] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                try:
                    v = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                params = _params(v)
                if granularity:
                    params["requestedGranularity"] = granularity
                req = (f"GET /api/g_variants?{urlencode(params)} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n").encode()
                t = time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                times.append(time.perf_counter() - t)
                if status != 200:
                    raise RuntimeError(f"{status}: {body[:200]!r}")
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return times, time.perf_counter() - t0


def run(ctx: Context) -> None:
    try:
        import fastapi  # noqa: F401
        import httpx  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        ctx.results.skip("serve.boolean_c1", f"the serve extra is not installed ({exc.name})")
        return
    import genolake

    res, cfg = ctx.results, ctx.config
    lake_path = ctx.lake()
    cohort = ctx.cohort()
    with genolake.open(lake_path) as lake:
        variants = pick_variants(lake, max(cfg.queries, 200), cfg.seed + 20)
    proc, url = _start(lake_path, cfg.work / "serve")
    try:
        def series(key: str, what: str, times: list[float], wall: float) -> None:
            ms = [t * 1000 for t in times]
            p50 = percentile(ms, 50)
            p99 = percentile(ms, 99)
            res.add(Measure(f"{key}_p50", "genolake", what + " (p50)", "ms", p50, p95=p99, n=len(ms),
                            note=f"p99 {p99:.2f} ms"))
            res.add(Measure(f"{key}_rps", "genolake", what + " (requests/s)", "rps", len(ms) / wall,
                            n=len(ms)))
            res.extra.setdefault("serve", {})[key] = {"p50_ms": p50, "p99_ms": p99, "rps": len(ms) / wall,
                                                      "n": len(ms)}

        cold, wall = asyncio.run(_load(url, variants, clients=1, token=None, granularity=None))
        series("serve.boolean_cold", "g_variants boolean, anonymous, first ask (cold), 1 client", cold, wall)
        for clients in (1, 32):
            t, w = asyncio.run(_load(url, variants, clients=clients, token=None, granularity=None))
            series(f"serve.boolean_c{clients}", f"g_variants boolean, anonymous, warm, {clients} clients", t, w)
        asyncio.run(_load(url, variants, clients=1, token=TOKEN, granularity="record"))  # fill the record cache
        for clients in (1, 32):
            t, w = asyncio.run(_load(url, variants, clients=clients, token=TOKEN, granularity="record"))
            series(f"serve.record_c{clients}", f"g_variants record, registered, warm, {clients} clients", t, w)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    # peers, same run: pysam in process, and `genolake query variant` as a whole process
    peer = PysamPeer(cohort.vcfs)
    pt = []
    for v in variants[:100]:
        t = time.perf_counter()
        peer.point(*v)
        pt.append(time.perf_counter() - t)
    peer.close()
    med, p95 = summary(pt)
    res.add(Measure("serve.peer_pysam", "pysam", "pysam fetch in every file + AC/AN (in process, per query)", "s",
                    med, p95=p95, n=len(pt)))
    cli = [run_timed([sys.executable, "-m", "genolake", "query", "variant", "--lake", str(lake_path), "--format",
                      "json", variant_id(v)]) for v in variants[:5]]
    med, p95 = summary(cli)
    res.add(Measure("serve.peer_cli", "genolake", "`genolake query variant --format json` (whole process)", "s",
                    med, p95=p95, n=len(cli)))
