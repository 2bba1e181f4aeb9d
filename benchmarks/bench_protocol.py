"""Wire-protocol overhead: robolearn encode/decode/validate versus raw pyzmq, same bytes,
and what CURVE authentication adds on top.

Method: round-trip echo over tcp loopback between two processes (this one and a spawned echo
server), because one-way latency needs two clocks or two threads sharing a GIL, and both add
more noise than the thing measured. Each payload is timed in four variants over four separate
PAIR socket pairs served by the same echo process:

- raw: ``send_multipart`` of the pre-encoded frames, ``recv_multipart`` back; the server
  echoes the frames untouched.
- protocol: ``encode`` (spec-validated) + send; the server decodes + validates and re-encodes
  the message; the client receives and decodes + validates the echo. That is the full
  protocol cost of two one-way hops, so the round-trip ratio equals the one-way ratio.
  Send/receive copy modes are those of the socket helpers (``send_frames``: zero-copy only
  for frames >= 64 KiB; receive with copy, the helpers' default).
- curve: the protocol echo again, over CURVE sockets set up as a run's are
  (``robolearn.protocol.security``): the echo process binds as the CURVE server with a ZAP
  allow-list holding only this process's client key (``apply_security``,
  ``zap_handler(ctx).register`` and ``sock.zap_domain``); it receives with ``copy=False`` to
  read each message's ZAP ``User-Id`` (as an authenticating robolearn socket does), refuses
  any other identity, and decodes with that ``peer``. This process connects with the
  server's public key and its own key pair and receives with copy, like a Requester.
  curve/protocol isolates encryption plus authenticated receiving (the handshake and the ZAP
  check happen once per connection, during the warm-up).

- minimal (for reference, not part of the target): what hand-rolled code must do at least
  for the same bytes -- msgpack-pack a header dict and ``np.frombuffer`` the arrays, no
  validation. protocol/minimal shows what the validation itself costs.

The variants alternate in blocks (default 250 round trips) to cancel machine noise. Reported
per payload: p50/p99 round trip in µs for each variant, the protocol/raw ratio at p50
(target <= 1.3x) and the curve/protocol ratio at p50 (``curve_over_protocol_p50``; no target,
it is what authentication costs). The result is appended to benchmarks/results.jsonl and
printed.

    python -m benchmarks.bench_protocol            # 5,000 round trips per variant and payload
    python -m benchmarks.bench_protocol --quick    # 1,000, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
import zmq

from benchmarks.results import append_result
from robolearn.protocol import SocketSecurity, apply_security, decode, encode, generate_keypair
from robolearn.protocol.codec import send_frames
from robolearn.protocol.security import zap_handler

_STOP = b"__stop__"
_CLIENT_IDENTITY = "bench"
_RECV_TIMEOUT_MS = 10_000  # a dead or refusing echo server fails the run instead of hanging


def _payloads() -> dict[str, tuple[str, dict[str, Any], dict[str, np.ndarray]]]:
    rng = np.random.default_rng(0)
    arm_body = {
        "stamp_ns": time.monotonic_ns(), "gripper_width_m": 0.04, "stopped": False,
        "estop": False, "error": "", "watchdog_tripped": False, "task": "pick the cube",
    }
    arm_arrays = {
        "joint_pos_rad": rng.standard_normal(7), "joint_vel_rad_s": rng.standard_normal(7),
        "ee_pos_m": rng.standard_normal(3), "ee_quat_wxyz": np.array([1.0, 0.0, 0.0, 0.0]),
    }

    def camera(h: int, w: int) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        return ("camera_frame", {"camera": "wrist", "stamp_ns": 1, "frame_index": 7},
                {"image": image})

    return {
        "arm_state": ("arm_state", arm_body, arm_arrays),
        "camera_84x84": camera(84, 84),
        "camera_128x128": camera(128, 128),
    }


def _minimal_decode(frames: list[bytes]) -> tuple[dict, list[np.ndarray]]:
    header = msgpack.unpackb(frames[0])
    arrays = [np.frombuffer(f, np.dtype(dtype)).reshape(shape)
              for f, (_, dtype, shape) in zip(frames[1:], header["arrays"], strict=True)]
    return header, arrays


def _minimal_encode(header: dict, arrays: list[np.ndarray]) -> list:
    return [msgpack.packb(header), *arrays]


def _echo_server(raw_addr: str, proto_addr: str, minimal_addr: str,
                 curve_security: SocketSecurity, curve_endpoint: Any) -> None:
    """Echo raw frames untouched on one socket; decode, validate and re-encode on another;
    unpack and repack without validation on the third; on the fourth, a CURVE server socket
    with a ZAP allow-list that it binds itself (its address goes back on `curve_endpoint`),
    decode the authenticated message with its peer identity and re-encode."""
    ctx = zmq.Context()
    raw = ctx.socket(zmq.PAIR)
    proto = ctx.socket(zmq.PAIR)
    minimal = ctx.socket(zmq.PAIR)
    curve = ctx.socket(zmq.PAIR)
    raw.connect(raw_addr)
    proto.connect(proto_addr)
    minimal.connect(minimal_addr)
    assert curve_security.allowed_clients is not None
    apply_security(curve, curve_security, server=True)
    curve.zap_domain = zap_handler(ctx).register("bench_protocol curve echo",
                                                 curve_security.allowed_clients).encode()
    curve.bind("tcp://127.0.0.1:*")
    curve_endpoint.put(curve.getsockopt(zmq.LAST_ENDPOINT).decode())
    poller = zmq.Poller()
    for sock in (raw, proto, minimal, curve):
        poller.register(sock, zmq.POLLIN)
    seq = 0
    while True:
        for sock, _ in poller.poll():
            if sock is raw:
                frames = raw.recv_multipart()
                if frames[0] == _STOP:
                    for s in (raw, proto, minimal, curve):
                        s.close(0)
                    ctx.term()
                    return
                raw.send_multipart(frames)
            elif sock is curve:
                # copy=False: the ZAP User-Id is a property of zmq.Frame.
                frames = curve.recv_multipart(copy=False)
                peer = frames[-1].get("User-Id") or None
                if peer != _CLIENT_IDENTITY:  # never happens: ZAP admitted only that key
                    raise RuntimeError(f"curve echo: message from identity {peer!r}")
                msg = decode(frames, peer=peer)
                send_frames(curve, encode(msg.type, "echo", seq, msg.body, msg.arrays))
                seq += 1
            elif sock is minimal:
                header, arrays = _minimal_decode(minimal.recv_multipart())
                header["seq"] = seq
                minimal.send_multipart(_minimal_encode(header, arrays))
                seq += 1
            else:
                msg = decode(proto.recv_multipart())
                send_frames(proto, encode(msg.type, "echo", seq, msg.body, msg.arrays))
                seq += 1


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def run(n: int, block: int, warmup: int) -> dict[str, Any]:
    """Measure every payload; returns {payload: {raw_p50_us, raw_p99_us, proto_p50_us, ...}}."""
    server_public, server_secret = generate_keypair()
    client_public, client_secret = generate_keypair()
    server_security = SocketSecurity(
        server_public_key=server_public, server_secret_key=server_secret,
        allowed_clients={client_public: _CLIENT_IDENTITY},
    )
    client_security = SocketSecurity(server_public_key=server_public,
                                     client_public_key=client_public,
                                     client_secret_key=client_secret)
    ctx = zmq.Context()
    raw = ctx.socket(zmq.PAIR)
    proto = ctx.socket(zmq.PAIR)
    minimal = ctx.socket(zmq.PAIR)
    curve = ctx.socket(zmq.PAIR)
    for sock in (raw, proto, minimal, curve):
        sock.rcvtimeo = _RECV_TIMEOUT_MS
    ports = [s.bind_to_random_port("tcp://127.0.0.1") for s in (raw, proto, minimal)]
    spawn = mp.get_context("spawn")
    curve_endpoint = spawn.Queue()
    server = spawn.Process(
        target=_echo_server,
        args=(*(f"tcp://127.0.0.1:{p}" for p in ports), server_security, curve_endpoint),
        daemon=True,
    )
    server.start()
    apply_security(curve, client_security, server=False)
    curve.connect(curve_endpoint.get(timeout=60))
    perf = time.perf_counter_ns
    results: dict[str, Any] = {}
    try:
        for label, (mtype, body, arrays) in _payloads().items():
            raw_frames = [bytes(f) for f in encode(mtype, "bench", 0, body, arrays)]
            times: dict[str, list[int]] = {"raw": [], "proto": [], "minimal": [], "curve": []}

            def raw_block(count: int, out: list[int] | None, frames: list = raw_frames) -> None:
                for _ in range(count):
                    t0 = perf()
                    raw.send_multipart(frames)
                    raw.recv_multipart()
                    if out is not None:
                        out.append(perf() - t0)

            seq = 0

            def proto_block(count: int, out: list[int] | None, mtype: str = mtype,
                            body: dict = body, arrays: dict = arrays) -> None:
                nonlocal seq
                for _ in range(count):
                    t0 = perf()
                    send_frames(proto, encode(mtype, "bench", seq, body, arrays))
                    decode(proto.recv_multipart())
                    if out is not None:
                        out.append(perf() - t0)
                    seq += 1

            def curve_block(count: int, out: list[int] | None, mtype: str = mtype,
                            body: dict = body, arrays: dict = arrays) -> None:
                nonlocal seq
                for _ in range(count):
                    t0 = perf()
                    send_frames(curve, encode(mtype, "bench", seq, body, arrays))
                    decode(curve.recv_multipart())
                    if out is not None:
                        out.append(perf() - t0)
                    seq += 1

            def minimal_block(count: int, out: list[int] | None, mtype: str = mtype,
                              body: dict = body, arrays: dict = arrays) -> None:
                nonlocal seq
                for _ in range(count):
                    t0 = perf()
                    header = {
                        "v": 1, "type": mtype, "sender": "bench", "seq": seq,
                        "sent_ns": time.monotonic_ns(), "body": body,
                        "arrays": [[k, a.dtype.name, a.shape] for k, a in arrays.items()],
                    }
                    minimal.send_multipart(_minimal_encode(header, list(arrays.values())))
                    _minimal_decode(minimal.recv_multipart())
                    if out is not None:
                        out.append(perf() - t0)
                    seq += 1

            blocks: dict[str, Callable[[int, list[int] | None], None]] = {
                "raw": raw_block, "proto": proto_block, "minimal": minimal_block,
                "curve": curve_block,
            }
            for variant in blocks.values():
                variant(warmup, None)
            while len(times["raw"]) < n:
                count = min(block, n - len(times["raw"]))
                for name, variant in blocks.items():
                    variant(count, times[name])
            raw_p50, raw_p99 = _percentiles(times["raw"])
            proto_p50, proto_p99 = _percentiles(times["proto"])
            minimal_p50, minimal_p99 = _percentiles(times["minimal"])
            curve_p50, curve_p99 = _percentiles(times["curve"])
            results[label] = {
                "bytes": sum(len(f) for f in raw_frames),
                "raw_p50_us": round(raw_p50, 1), "raw_p99_us": round(raw_p99, 1),
                "proto_p50_us": round(proto_p50, 1), "proto_p99_us": round(proto_p99, 1),
                "minimal_p50_us": round(minimal_p50, 1), "minimal_p99_us": round(minimal_p99, 1),
                "ratio_p50": round(proto_p50 / raw_p50, 3),
                "ratio_vs_minimal_p50": round(proto_p50 / minimal_p50, 3),
                "curve_p50_us": round(curve_p50, 1), "curve_p99_us": round(curve_p99, 1),
                "curve_over_protocol_p50": round(curve_p50 / proto_p50, 3),
            }
    finally:
        raw.send_multipart([_STOP])
        server.join(timeout=5)
        if server.is_alive():
            server.kill()
        for sock in (raw, proto, minimal, curve):
            sock.close(0)
        ctx.term()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_protocol",
        description="Round-trip latency of robolearn protocol messages versus raw pyzmq, "
                    "and over CURVE with a ZAP allow-list (tcp loopback, two processes); "
                    "appends to benchmarks/results.jsonl.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="1,000 round trips per variant and payload instead of --n")
    parser.add_argument("--n", type=int, default=5000,
                        help="round trips per variant and payload (default 5000)")
    parser.add_argument("--block", type=int, default=250,
                        help="round trips per alternating block (default 250)")
    parser.add_argument("--warmup", type=int, default=500, help="untimed round trips first")
    args = parser.parse_args(argv)
    n = 1000 if args.quick else args.n
    results = run(n, args.block, args.warmup)
    record = append_result(
        "protocol_roundtrip", results, method="tcp loopback echo, two processes, p50/p99 of "
        "round trip; ratio = protocol/raw at p50; curve_over_protocol_p50 = protocol over "
        "CURVE (ZAP allow-list, authenticated copy=False receive) / protocol at p50",
        n_per_variant=n, block=args.block, quick=args.quick, target_ratio_p50=1.3,
        curve="CURVE server in the echo process, ZAP allow-list of one client key",
        zmq=zmq.zmq_version(), pyzmq=zmq.__version__,
        load_avg=[round(x, 2) for x in os.getloadavg()],
    )
    print(json.dumps(record, indent=2))
    for label, r in results.items():
        print(f"{label:16s} {r['bytes']:7d} B  raw p50 {r['raw_p50_us']:7.1f} p99 "
              f"{r['raw_p99_us']:7.1f} µs | protocol p50 {r['proto_p50_us']:7.1f} p99 "
              f"{r['proto_p99_us']:7.1f} µs | ratio {r['ratio_p50']:.3f} | minimal p50 "
              f"{r['minimal_p50_us']:7.1f} µs, protocol/minimal {r['ratio_vs_minimal_p50']:.3f}")
        print(f"{'':16s} {'':7s}    curve p50 {r['curve_p50_us']:7.1f} p99 "
              f"{r['curve_p99_us']:7.1f} µs | curve/protocol {r['curve_over_protocol_p50']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
