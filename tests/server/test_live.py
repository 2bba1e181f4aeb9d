"""The /ws/live bridge under real uvicorn: a viewer gets telemetry and JPEG frames, an
anonymous one is refused, and a viewer that stops reading costs bounded memory."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
import zmq
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from robolearn.actor.live import encode_jpeg, pack_jpeg
from robolearn.config import RunConfig, parse_config
from robolearn.protocol import Publisher
from robolearn.server.app import create_app
from robolearn.server.auth import SESSION_COOKIE
from robolearn.server.live import QUEUE_LEN, LiveHub
from tests.conftest import free_port, run_config_dict
from tests.server.conftest import PASSWORD, SECRET, add_user


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@dataclass
class Service:
    url: str
    cookie: str
    cfg: RunConfig
    app: object

    @property
    def hub(self) -> LiveHub:
        return self.app.state.services.extras["live_hub"]

    def ws(self, **kwargs):
        return connect(self.url.replace("http", "ws") + "/ws/live",
                       additional_headers={"Cookie": f"{SESSION_COOKIE}={self.cookie}"},
                       max_size=None, **kwargs)


@pytest.fixture
def service(sock_dir: Path, tmp_path: Path) -> Iterator[Service]:
    raw = run_config_dict(sock_dir, tmp_path / "data")
    raw["server"] = {"development": True}
    cfg = parse_config(raw)
    app = create_app(cfg, token_secret=SECRET)
    add_user(app.state.services.store, "viewer", "viewer")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    r = httpx.post(url + "/api/auth/login", json={"username": "viewer", "password": PASSWORD})
    assert r.status_code == 200, r.text
    try:
        yield Service(url, r.cookies[SESSION_COOKIE], cfg, app)
    finally:
        server.should_exit = True
        thread.join(30)


def frame_message(pub: Publisher, camera: str, step: int, jpeg: bytes) -> None:
    pub.publish("live_frame", {"camera": camera, "width": 64, "height": 64, "episode": 0,
                               "step": step, "stamp_ns": time.monotonic_ns(),
                               "jpeg_size": len(jpeg)}, {"jpeg": pack_jpeg(jpeg)})


def test_a_viewer_gets_telemetry_and_frames_and_a_stranger_is_refused(service: Service) -> None:
    with pytest.raises(InvalidStatus):
        connect(service.url.replace("http", "ws") + "/ws/live").close()
    ctx = zmq.Context()
    pub = Publisher(ctx, service.cfg.actor.telemetry_address, "actor",
                    security=service.cfg.socket_security(service.cfg.actor.telemetry_address,
                                                         "actor"))
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    jpeg = encode_jpeg(image, 75)
    got: dict[str, object] = {}
    try:
        with service.ws() as ws:
            deadline = time.monotonic() + 20
            step = 0
            while len(got) < 2:
                assert time.monotonic() < deadline, f"only got {list(got)}"
                step += 1
                pub.publish("telemetry", {"kind": "actor", "values": {"step": step,
                                                                      "estop": False}})
                frame_message(pub, "front", step, jpeg)
                try:
                    msg = ws.recv(timeout=0.15)
                except TimeoutError:
                    continue
                if isinstance(msg, bytes):
                    header, _, body = msg.partition(b"\n")
                    got["frame"] = (json.loads(header), body)
                else:
                    got["telemetry"] = json.loads(msg)
    finally:
        pub.close()
        ctx.term()
    header, body = got["frame"]
    assert header["camera"] == "front" and header["width"] == 64
    assert body == jpeg
    assert got["telemetry"]["values"]["estop"] is False


def test_a_viewer_that_stops_reading_costs_bounded_memory(service: Service) -> None:
    ctx = zmq.Context()
    pub = Publisher(ctx, service.cfg.actor.telemetry_address, "actor",
                    security=service.cfg.socket_security(service.cfg.actor.telemetry_address,
                                                         "actor"))
    # 1 MiB "JPEG"s on two cameras: what an unbounded queue would keep adds up fast.
    big = np.random.default_rng(1).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    try:
        with service.ws() as ws:
            deadline = time.monotonic() + 20
            while not service.app.state.services.extras.get("live_hub") or \
                    not service.hub.clients:
                assert time.monotonic() < deadline, "the viewer never registered"
                time.sleep(0.05)
            (client,) = service.hub.clients
            before = rss_bytes()
            offered = 0
            step = 0
            # The viewer reads nothing while ~140 MiB pass its rate cap.
            while offered < 140:
                step += 1
                for cam in ("front", "wrist"):
                    frame_message(pub, cam, step, big)
                time.sleep(0.05)
                offered = client.sent + client.dropped + len(client.queue)
            grown_mib = (rss_bytes() - before) / 2**20
            print(f"slow viewer: offered {offered} frames (1 MiB), dropped {client.dropped}, "
                  f"queue {len(client.queue)}, server RSS +{grown_mib:.1f} MiB")
            assert len(client.queue) <= QUEUE_LEN
            assert client.dropped > 0
            assert grown_mib < 80, f"server memory grew {grown_mib:.0f} MiB"
            # Still alive: it reads a current frame once it reads again.
            msg = ws.recv(timeout=10)
            assert isinstance(msg, bytes)
    finally:
        pub.close()
        ctx.term()


def test_the_newest_telemetry_is_served_typed_and_none_is_a_clear_503(service: Service) -> None:
    cookies = {SESSION_COOKIE: service.cookie}
    r = httpx.get(service.url + "/api/live/telemetry", cookies=cookies, timeout=10)
    assert r.status_code == 503 and "is the run up?" in r.json()["detail"]
    assert httpx.get(service.url + "/api/live/telemetry", timeout=10).status_code == 401

    values = {"step": 7, "episode": 0, "episode_step": 7, "reward": 0.0, "success": False,
              "success_prob": 0.25, "q_value": 1.5, "intervention": False, "estop": False,
              "paused": False, "takeover": False, "state": "running", "filtered": "",
              "action_dim": 4, "period_ms": 100.0, "jitter_ms": 0.3, "latency_ms": 2.0,
              "frame_age_ms": 30.0, "reward_worker_clip": "ok"}
    ctx = zmq.Context()
    address = service.cfg.actor.telemetry_address
    pub = Publisher(ctx, address, "actor", security=service.cfg.socket_security(address, "actor"))
    try:
        deadline = time.monotonic() + 20
        while True:
            assert time.monotonic() < deadline, "the service never saw the telemetry"
            pub.publish("telemetry", {"kind": "actor", "values": values})
            r = httpx.get(service.url + "/api/live/telemetry", cookies=cookies, timeout=10)
            if r.status_code == 200:
                break
            time.sleep(0.1)
    finally:
        pub.close()
        ctx.term()
    body = r.json()
    assert body["sender"] == "actor" and body["age_s"] >= 0
    assert body["values"]["success_prob"] == 0.25 and body["values"]["action_dim"] == 4
    assert body["values"]["reward_worker_clip"] == "ok"  # a config's extra key rides along


def test_non_finite_telemetry_reaches_scripts_and_browsers_as_null(service: Service) -> None:
    # A faulting policy publishes a NaN Q, a failing reward model a NaN probability: the
    # REST route must still answer, and the socket must carry JSON a browser parses.
    cookies = {SESSION_COOKIE: service.cookie}
    values = {"step": 3, "episode": 0, "episode_step": 3, "reward": float("inf"),
              "success": False, "success_prob": float("nan"), "q_value": float("nan"),
              "intervention": False, "estop": False, "paused": False, "takeover": False,
              "state": "policy_fault", "policy_fault": "non-finite Q", "filtered": "",
              "action_dim": 4, "period_ms": 100.0, "jitter_ms": 0.3, "latency_ms": 2.0,
              "frame_age_ms": 30.0, "reward_clip": float("-inf"), "reward_vlm": 0.5}
    ctx = zmq.Context()
    address = service.cfg.actor.telemetry_address
    pub = Publisher(ctx, address, "actor", security=service.cfg.socket_security(address, "actor"))
    try:
        with service.ws() as ws:
            deadline = time.monotonic() + 20
            text = None
            while text is None:
                assert time.monotonic() < deadline, "no telemetry came through the socket"
                pub.publish("telemetry", {"kind": "actor", "values": values})
                with contextlib.suppress(TimeoutError):
                    msg = ws.recv(timeout=0.2)
                    if isinstance(msg, str) and '"telemetry"' in msg:
                        text = msg
        r = httpx.get(service.url + "/api/live/telemetry", cookies=cookies, timeout=10)
    finally:
        pub.close()
        ctx.term()
    # Strict JSON, as a browser's JSON.parse reads it: no NaN or Infinity tokens.
    sent = json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} on the socket"))
    assert sent["values"]["q_value"] is None and sent["values"]["success_prob"] is None
    assert sent["values"]["reward"] is None
    assert sent["values"]["reward_clip"] is None and sent["values"]["reward_vlm"] == 0.5
    assert r.status_code == 200, r.text
    body = r.json()["values"]
    assert body["q_value"] is None and body["reward"] is None and body["success_prob"] is None
    assert body["state"] == "policy_fault" and body["step"] == 3
