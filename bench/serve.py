"""Serving benchmark: ``POST /recommend`` under a bounded load from a second process on 127.0.0.1.

Starts ``fashionrec serve`` on a free loopback port (or uses ``--url`` of a running server), replays
real sessions of the warehouse (the ``prompt_inputs`` histories of test targets, as a client would send
them), then for each concurrency level sends a fixed number of requests from that many client threads
and prints requests/s and the p50/p95/p99 latency seen by the client, plus the mean time of each stage
the service reports in ``timings_ms`` (query memory, prompt, queue for the LLM, generation, retrieval)
so the figure can be read as "where the time goes". Target: p99 <= 300 ms at concurrency 1.

    uv run python bench/serve.py [--home DIR] [--concurrency 1 8 32] [--requests 64] [--url URL]

The server runs the default LLM on the default device (CPU here); the device, torch thread count and
CPU count are printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import httpx
import numpy as np

from fashionrec.settings import paths

STAGES = ("query_memory", "prompt", "queue", "generation", "retrieval", "total")


def sessions(database: Path, limit: int) -> list[dict]:
    """Request bodies from the test targets' histories (read-only, the way a client sends events)."""
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(
            "select user_id, history, target_ts from prompt_inputs where split = 'test' "
            "and len(history) > 0 order by target_id limit ?",
            [limit],
        ).fetchall()
    bodies = []
    for user_id, history, target_ts in rows:
        events = [
            {"action": e["action"], "ts": e["ts"].isoformat(), "query": e["query"], "item_id": e["item_id"]}
            for e in history
        ]
        for event in events:
            if event["action"] == "search":
                event.pop("item_id")
        bodies.append({"user_id": user_id, "events": events, "k": 10, "at": target_ts.isoformat()})
    if not bodies:
        raise SystemExit(f"{database} has no test targets with a history; run `fashionrec run` first")
    return bodies


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(command, env=os.environ.copy())


def wait_ready(url: str, server: subprocess.Popen | None, timeout_s: float = 600.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode} while loading")
        try:
            health = httpx.get(f"{url}/health", timeout=5.0).json()
            if health["status"] == "ok":
                return health
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not become ready in {timeout_s:.0f} s")


def run_level(url: str, bodies: list[dict], concurrency: int, n_requests: int) -> dict:
    """``n_requests`` requests from ``concurrency`` threads, each with its own keep-alive connection."""
    latencies: list[float] = []
    stages: list[dict] = []
    errors: list[str] = []
    lock = threading.Lock()
    local = threading.local()

    def one(i: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=url, timeout=120.0)
        started = time.perf_counter()
        response = client.post("/recommend", json=bodies[i % len(bodies)])
        elapsed = (time.perf_counter() - started) * 1000.0
        with lock:
            if response.status_code != 200:
                errors.append(f"{response.status_code}: {response.text[:200]}")
                return
            latencies.append(elapsed)
            answer = response.json()
            stages.append({**answer["timings_ms"], "llm_batch": answer["llm_batch_size"]})

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(n_requests)))
    seconds = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} of {n_requests} requests failed, e.g. {errors[0]}")
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {
        "concurrency": concurrency,
        "requests": n_requests,
        "seconds": round(seconds, 2),
        "requests_per_second": round(n_requests / seconds, 2),
        "p50_ms": round(float(p50), 1),
        "p95_ms": round(float(p95), 1),
        "p99_ms": round(float(p99), 1),
        "mean_stage_ms": {s: round(float(np.mean([t[s] for t in stages])), 1) for s in STAGES},
        "mean_llm_batch": round(float(np.mean([t["llm_batch"] for t in stages])), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--home", type=Path, default=None, help="FASHIONREC_HOME (default: the environment's)"
    )
    parser.add_argument("--url", default=None, help="a running server (default: start one on loopback)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=64, help="requests per concurrency level")
    parser.add_argument("--sessions", type=int, default=64, help="distinct sessions replayed")
    args = parser.parse_args()
    if args.home:
        os.environ["FASHIONREC_HOME"] = str(args.home)
    home = paths()
    bodies = sessions(home.duckdb_path, args.sessions)

    server = None
    url = args.url
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(port)
    try:
        started = time.perf_counter()
        health = wait_ready(url, server)
        print(
            f"server ready in {time.perf_counter() - started:.1f} s at {url}: LLM on {health['device']}, "
            f"{health['torch_threads']} torch thread(s), {os.cpu_count()} CPUs"
        )
        artifacts = health["artifacts"]
        print(
            f"adapter {artifacts['adapter_sha256']}, LanceDB {artifacts['lancedb_versions']}, "
            f"{artifacts['items']} items, {len(bodies)} sessions"
        )
        run_level(url, bodies, 1, min(4, args.requests))  # warm-up: first-call allocations, caches
        results = []
        print(
            "\n| concurrency | requests | req/s | p50 ms | p95 ms | p99 ms | query memory | prompt | queue "
            "| generation | retrieval | server total | LLM batch |\n" + "|---" * 13 + "|"
        )
        for concurrency in args.concurrency:
            level = run_level(url, bodies, concurrency, max(args.requests, concurrency))
            results.append(level)
            stage = level["mean_stage_ms"]
            print(
                f"| {concurrency} | {level['requests']} | {level['requests_per_second']:.2f} | "
                f"{level['p50_ms']:.0f} | {level['p95_ms']:.0f} | {level['p99_ms']:.0f} | "
                + " | ".join(f"{stage[s]:.1f}" for s in STAGES)
                + f" | {level['mean_llm_batch']:.1f} |"
            )
        print(
            "(stage columns: mean ms per request as the service timed them; LLM batch: mean prompts per "
            "generate call)"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    out = home.reports.bench("serve")
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"device": health["device"], "torch_threads": health["torch_threads"], "cpus": os.cpu_count()}
    out.write_text(json.dumps({"url": url, **machine, "levels": results}, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
