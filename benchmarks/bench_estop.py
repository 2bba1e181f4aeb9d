"""E-stop latency: HTTP request -> latch confirmed by the arm driver, p50/p99.

Starts the sim driver and the actor (random policy) as processes and `robolearn serve` as a
real uvicorn process, logs in as the first admin and presses e-stop N times through the API
(each followed by a release). Two numbers per press:
- `http`: request sent -> the service's 200, which it sends only after the actor confirmed
  and the actor only after the driver latched (an upper bound of request -> latch);
- `state`: request sent -> first arm_state from the driver showing the latch (its stamp, same
  monotonic clock; quantised by the 100 Hz state rate).

Authentication is on, as in every run: ProcessGroup makes the run's CURVE key pairs in
<data_dir>/keys, every socket is CURVE-encrypted and each binding side admits only the
identities `robolearn.config.sockets` allows (ZAP allow-list): service -> actor control
and actor -> driver command go over authenticated sockets, and this process reads the
driver's state as `operator`. The run refuses to start if the config turned it off.

    python -m benchmarks.bench_estop              # 200 presses
    python -m benchmarks.bench_estop --presses 50

Target (issue 5): http p99 <= 100 ms (floor), goal 20 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
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
import zmq

from benchmarks.results import append_result
from robolearn.config import parse_config
from robolearn.config.sockets import keys_dir, run_identities
from robolearn.processes import ProcessGroup
from robolearn.protocol import Subscriber

FLOOR_P99_MS = 100.0
GOAL_P99_MS = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(config: Path) -> tuple[subprocess.Popen[str], str, str]:
    env = {**os.environ, "ROBOLEARN_SERVER_SECRET": "b" * 48}
    proc = subprocess.Popen([sys.executable, "-m", "robolearn.cli.main", "--log-level",
                             "warning", "serve", str(config)], stdout=subprocess.PIPE,
                            text=True, env=env)
    out = ""
    deadline = time.monotonic() + 60
    while "operator service for run" not in out:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line or time.monotonic() > deadline:
            raise RuntimeError(f"serve did not start: {out}")
        out += line
    password = re.search(r"one-time password (\S+)", out).group(1)
    url = re.search(r"at (http://\S+)", out).group(1)
    while True:
        try:
            httpx.get(url + "/api/auth/me", timeout=1)
            return proc, url, password
        except httpx.TransportError:
            time.sleep(0.1)


def login(http: httpx.Client, one_time_password: str) -> dict[str, str]:
    """Log in as the first admin, replace the one-time password (the service allows nothing
    else before that) and log in again; returns the CSRF header for the session."""
    r = http.post("/api/auth/login", json={"username": "admin", "password": one_time_password})
    assert r.status_code == 200, r.text
    password = secrets.token_urlsafe(18)
    r = http.post("/api/auth/password", headers={"X-CSRF-Token": r.json()["csrf_token"]},
                  json={"current_password": one_time_password, "new_password": password})
    assert r.status_code == 200, r.text
    r = http.post("/api/auth/login", json={"username": "admin", "password": password})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf_token"]}


def percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presses", type=int, default=200)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="rl-bench-") as tmp:
        d = Path(tmp)
        raw = {
            "name": "bench_estop", "data_dir": str(d / "data"),
            "robot": {"task": "reach", "state_address": f"ipc://{d}/state",
                      "command_address": f"ipc://{d}/cmd", "frames_address": f"ipc://{d}/frames"},
            "cameras": [{"kind": "sim", "name": "front", "width": 64, "height": 64, "fps": 20}],
            "actor": {"policy": {"kind": "random"}, "record": False, "end_on_success": False,
                      "episode_steps": 100_000, "telemetry_address": f"ipc://{d}/telemetry",
                      "control_address": f"ipc://{d}/control"},
            "server": {"port": free_port()},
        }
        cfg = parse_config(raw)
        if cfg.security.insecure:
            raise SystemExit("bench_estop measures the authenticated run: security.insecure "
                             "must be off")
        config = d / "run.yaml"
        config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        group = ProcessGroup(cfg, log_level="warning")
        key_files = sorted(f.name for f in keys_dir(cfg).glob("*.key"))
        missing = sorted({f"{i}.key" for i in run_identities(cfg)} - set(key_files))
        if missing:
            raise SystemExit(f"ProcessGroup made no CURVE keys for {missing} in "
                             f"{keys_dir(cfg)}")
        ctx = zmq.Context()
        serve = None
        state: Subscriber | None = None
        try:
            group.start_drivers()
            group.start_actor()
            serve, url, password = start_serve(config)
            state_security = cfg.socket_security(cfg.robot.state_address, "operator")
            assert state_security.curve and state_security.client_secret_key is not None
            state = Subscriber(ctx, cfg.robot.state_address, types=("arm_state",),
                               security=state_security)
            with httpx.Client(base_url=url, timeout=10) as http:
                headers = login(http, password)
                deadline = time.monotonic() + 60
                while not (s := http.get("/api/control/status").json()).get("reachable") or \
                        s["status"]["step"] < 3:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the actor did not come up: {s}")
                    time.sleep(0.1)
                http_ms: list[float] = []
                state_ms: list[float] = []
                for _ in range(args.presses):
                    time.sleep(0.05)
                    state.poll()
                    t0 = time.monotonic_ns()
                    r = http.post("/api/control/estop", headers=headers)
                    t1 = time.monotonic_ns()
                    assert r.status_code == 200 and r.json()["via"] == "actor", r.text
                    http_ms.append((t1 - t0) / 1e6)
                    while True:
                        msg = state.wait_new("arm_state", timeout_s=2.0)
                        assert msg is not None
                        if msg.body["estop"] and msg.body["stamp_ns"] > t0:
                            state_ms.append((msg.body["stamp_ns"] - t0) / 1e6)
                            break
                    r = http.post("/api/control/estop/release", headers=headers)
                    assert r.status_code == 200, r.text
        finally:
            if state is not None:
                state.close()  # an open socket would keep ctx.term() waiting forever
            if serve is not None:
                serve.send_signal(signal.SIGTERM)
                serve.wait(30)
            group.stop()
            ctx.term()
    metrics = {"http": percentiles(http_ms), "state": percentiles(state_ms),
               "presses": args.presses}
    p99 = metrics["http"]["p99_ms"]
    floor_ok = p99 <= FLOOR_P99_MS
    goal_ok = p99 <= GOAL_P99_MS
    print(append_result("estop_latency", metrics, floor_p99_ms=FLOOR_P99_MS,
                        floor_met=floor_ok, goal_p99_ms=GOAL_P99_MS, goal_met=goal_ok,
                        transport="ipc actor/driver, loopback HTTP", auth="curve+zap",
                        keys=[f.removesuffix(".key") for f in key_files],
                        load_avg=[round(x, 2) for x in os.getloadavg()]))
    for name in ("http", "state"):
        m = metrics[name]
        print(f"e-stop {name:5s} p50 {m['p50_ms']:6.1f} ms  p99 {m['p99_ms']:6.1f} ms  "
              f"max {m['max_ms']:6.1f} ms")
    print(f"target: http p99 <= {FLOOR_P99_MS:.0f} ms (goal {GOAL_P99_MS:.0f} ms): "
          f"p99 {p99:.1f} ms, floor {'met' if floor_ok else 'MISSED'}, goal "
          f"{'met' if goal_ok else 'missed'}; authentication curve+zap")


if __name__ == "__main__":
    main()
