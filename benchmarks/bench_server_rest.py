"""REST latency of the operator service under 50 concurrent clients.

Method: `robolearn serve` runs as a real process (uvicorn, one worker) on a fresh SQLite
store seeded with recorded episodes and preference queries. 50 asyncio clients, each with
its own bearer token, hammer one route at a time for a fixed number of requests each:

- episodes: GET /api/episodes?limit=50 (a filtered, paginated list);
- preferences: POST /api/preferences/next then POST .../answer (a lease plus an answer,
  two writes on SQLite; each pair counts as two requests, timed separately).

Reported per route: p50/p99 latency in ms, requests/s, errors. Latency includes the client's
own event loop, which shares the machine's cores with the server (note the core count).

    python -m benchmarks.bench_server_rest            # 50 clients x 40 requests per route
    python -m benchmarks.bench_server_rest --quick    # 50 clients x 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

from benchmarks.bench_estop import login
from benchmarks.results import append_result

CLIENTS = 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed(data_dir: Path, episodes: int, queries: int) -> None:
    from robolearn.store import Store
    from robolearn.store.models import PreferenceQuery

    rng = np.random.default_rng(0)
    with Store.open(data_dir) as store:
        run = store.create_run("bench", {})
        ids = []
        for k in range(episodes):
            with store.begin_episode(run, "reach", ["front"]) as w:
                for t in range(10):
                    w.add_step({"front": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)},
                               np.zeros(4, np.float32), np.zeros(4, np.float32), float(t),
                               False)
                ids.append(w.finish({"front": np.zeros((32, 32, 3), np.uint8)},
                                    np.zeros(4, np.float32), "success" if k % 2 else "failure"))
        with store.session() as db:
            for q in range(queries):
                db.add(PreferenceQuery(run_id=run, episode_a_id=ids[q % len(ids)],
                                       episode_a_start=0, episode_a_end=5,
                                       episode_b_id=ids[(q + 1) % len(ids)], episode_b_start=0,
                                       episode_b_end=5, status="pending"))
            db.commit()


async def _client(url: str, token: str, route: str, n: int, lat: list[float],
                  errors: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as c:
        for _ in range(n):
            if route == "episodes":
                t0 = time.perf_counter()
                r = await c.get("/api/episodes", params={"limit": 50})
                lat.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors.append(f"{r.status_code}")
            else:
                t0 = time.perf_counter()
                r = await c.post("/api/preferences/next")
                lat.append(time.perf_counter() - t0)
                q = r.json().get("query") if r.status_code == 200 else None
                if q is None:
                    errors.append(f"next {r.status_code}")
                    continue
                t0 = time.perf_counter()
                r = await c.post(f"/api/preferences/{q['id']}/answer", json={"answer": "left"})
                lat.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    errors.append(f"answer {r.status_code}")


async def _load(url: str, tokens: list[str], route: str, n: int) -> dict[str, float]:
    lat: list[float] = []
    errors: list[str] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(url, tok, route, n, lat, errors) for tok in tokens))
    wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "requests": len(lat), "requests_per_s": round(len(lat) / wall, 1),
            "errors": len(errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    per_client = 8 if args.quick else 40
    tmp = Path(tempfile.mkdtemp(prefix="rl-bench-server-"))
    _seed(tmp / "data", episodes=200, queries=CLIENTS * per_client + 10)
    port = _free_port()
    cfg = {"name": "bench", "data_dir": str(tmp / "data"), "server": {"port": port}}
    (tmp / "run.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "ROBOLEARN_SERVER_SECRET": "b" * 48}
    proc = subprocess.Popen([sys.executable, "-m", "robolearn.cli.main", "--log-level",
                             "warning", "serve", str(tmp / "run.yaml")],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        out = ""
        while "operator service" not in out:
            line = proc.stdout.readline()
            if not line:
                raise SystemExit("serve exited early")
            out += line
        password = re.search(r"one-time password (\S+)", out).group(1)
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(url + "/api/auth/me")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        admin = httpx.Client(base_url=url, timeout=30)
        csrf = login(admin, password)["X-CSRF-Token"]  # replaces the one-time password
        tokens = []
        for i in range(CLIENTS):
            name = f"op{i}"
            admin.post("/api/users", headers={"X-CSRF-Token": csrf},
                       json={"username": name, "password": "bench-password", "role": "operator"})
            # Tokens via the admin session would all act as admin; log in as each operator.
            c = httpx.Client(base_url=url, timeout=30)
            tok_csrf = c.post("/api/auth/login", json={"username": name,
                                                       "password": "bench-password"}).json()
            tokens.append(c.post("/api/auth/tokens", json={},
                                 headers={"X-CSRF-Token": tok_csrf["csrf_token"]}).json()["token"])
            c.close()
        metrics = {route: asyncio.run(_load(url, tokens, route, per_client))
                   for route in ("episodes", "preferences")}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    record = append_result("server_rest", metrics, clients=CLIENTS, per_client=per_client,
                           database="sqlite", workers=1)
    print(record)


if __name__ == "__main__":
    main()
