"""Live bridge load: N WebSocket viewers of `/ws/live` at 10 frames/s per camera.

Runs `robolearn serve` as a real uvicorn process and publishes, in this process, what an
actor publishes at 10 Hz: telemetry plus one 84x84 JPEG live_frame per camera. N viewers
(threads) read everything. Reports the added latency (actor send -> viewer receive, same
monotonic clock) p50/p99 and the service's CPU use (utime+stime over wall time, in cores).

    python -m benchmarks.bench_live                   # 20 viewers, 20 s
    python -m benchmarks.bench_live --viewers 5 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import yaml
import zmq
from websockets.sync.client import connect

from benchmarks.bench_estop import free_port, login, percentiles, start_serve
from benchmarks.results import append_result
from robolearn.actor.live import encode_jpeg, pack_jpeg
from robolearn.config import parse_config
from robolearn.protocol import Publisher
from robolearn.server.auth import SESSION_COOKIE

CAMERAS = ("front", "wrist")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def viewer(url: str, cookie: str, stop: threading.Event, latencies: list[float],
           counts: list[int]) -> None:
    with connect(url.replace("http", "ws") + "/ws/live", max_size=None,
                 additional_headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}) as ws:
        n = 0
        while not stop.is_set():
            try:
                msg = ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            now = time.monotonic_ns()
            header = json.loads(msg.split(b"\n", 1)[0] if isinstance(msg, bytes) else msg)
            latencies.append((now - header["sent_ns"]) / 1e6)
            n += 1
        counts.append(n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--viewers", type=int, default=20)
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="rl-bench-") as tmp:
        d = Path(tmp)
        cfg = parse_config({
            "name": "bench_live", "data_dir": str(d / "data"),
            "cameras": [{"kind": "sim", "name": c, "width": 84, "height": 84} for c in CAMERAS],
            "actor": {"telemetry_address": f"ipc://{d}/telemetry",
                      "control_address": f"ipc://{d}/control"},
            "server": {"port": free_port()},
        })
        config = d / "run.yaml"
        config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        serve, url, password = start_serve(config)
        ctx = zmq.Context()
        pub = Publisher(ctx, cfg.actor.telemetry_address, "actor",
                        security=cfg.socket_security(cfg.actor.telemetry_address, "actor"))
        stop = threading.Event()
        latencies: list[float] = []
        counts: list[int] = []
        try:
            with httpx.Client(base_url=url, timeout=30) as http:
                login(http, password)  # replaces the one-time password first
                cookie = http.cookies[SESSION_COOKIE]
            threads = [threading.Thread(target=viewer, args=(url, cookie, stop, latencies,
                                                              counts), daemon=True)
                       for _ in range(args.viewers)]
            for t in threads:
                t.start()
            rng = np.random.default_rng(0)
            images = [rng.integers(0, 256, (84, 84, 3), dtype=np.uint8) for _ in range(10)]
            jpegs = [encode_jpeg(im, 75) for im in images]
            step = 0
            warm_until = time.monotonic() + 2.0
            cpu0 = wall0 = None
            end = warm_until + args.seconds
            next_tick = time.monotonic()
            while time.monotonic() < end:
                if cpu0 is None and time.monotonic() >= warm_until:
                    latencies.clear()
                    cpu0, wall0 = cpu_s(serve.pid), time.monotonic()
                step += 1
                pub.publish("telemetry", {"kind": "actor", "values": {"step": step}})
                for cam in CAMERAS:
                    jpeg = jpegs[step % len(jpegs)]
                    pub.publish("live_frame", {
                        "camera": cam, "width": 84, "height": 84, "episode": 0,
                        "step": step, "stamp_ns": time.monotonic_ns(),
                        "jpeg_size": len(jpeg)}, {"jpeg": pack_jpeg(jpeg)})
                next_tick += 0.1
                time.sleep(max(0.0, next_tick - time.monotonic()))
            cpu = (cpu_s(serve.pid) - cpu0) / (time.monotonic() - wall0)
            stop.set()
            for t in threads:
                t.join(10)
        finally:
            stop.set()
            pub.close()
            ctx.term()
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
    expected = args.viewers * 3 * 10 * args.seconds  # telemetry + 2 cameras at 10 Hz
    metrics = {"latency": percentiles(latencies), "server_cpu_cores": cpu,
               "viewers": args.viewers, "messages_per_viewer_s": len(latencies) /
               args.viewers / args.seconds, "delivered_ratio": len(latencies) / expected}
    print(append_result("live_bridge", metrics, fps_per_camera=10, cameras=len(CAMERAS),
                        image_size=84, seconds=args.seconds))


if __name__ == "__main__":
    main()
