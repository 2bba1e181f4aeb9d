"""Socket helpers over real sockets: latest-value PUB/SUB, PUSH/PULL, DEALER/ROUTER with
timeouts, stale replies, and a Replier in another process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import zmq

from robolearn.errors import ConfigError, PeerTimeout, ProtocolError
from robolearn.protocol import (
    Publisher,
    Puller,
    Pusher,
    Replier,
    Requester,
    Subscriber,
    decode,
    encode,
)
from tests.protocol.util import arm_state, wait_until


def _frame_body(i: int, camera: str = "wrist") -> dict:
    return {"camera": camera, "stamp_ns": i, "frame_index": i}


def _image(i: int) -> dict[str, np.ndarray]:
    return {"image": np.full((84, 84, 3), i % 256, np.uint8)}


def _sync(pub: Publisher, sub: Subscriber) -> None:
    """Publish until the subscription is live (PUB/SUB's slow joiner)."""
    assert wait_until(lambda: pub.publish("telemetry", {"kind": "sync", "values": {}}) and
                      sub.wait_new("telemetry", 0.01) is not None)


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
def test_subscriber_latest_value_after_burst(ctx: zmq.Context, transport: str) -> None:
    address = "inproc://cams" if transport == "inproc" else "tcp://127.0.0.1:*"
    with Publisher(ctx, address, "wrist_cam") as pub, \
            Subscriber(ctx, pub.address, types=["camera_frame", "telemetry"]) as sub:
        _sync(pub, sub)
        for i in range(1, 101):
            assert pub.publish("camera_frame", _frame_body(i), _image(i))
        assert wait_until(lambda: (m := sub.latest("camera_frame", "wrist")) is not None
                          and m.body["frame_index"] == 100)
        msg = sub.latest("camera_frame", "wrist")
        assert msg is not None and msg.seq == pub._seq - 1  # the newest one sent
        assert int(msg.arrays["image"][0, 0, 0]) == 100
        assert sub.latest("camera_frame") is None  # keyed by camera
        assert sub.rejected == {}


def test_subscriber_keys_by_camera_and_filters_types(ctx: zmq.Context) -> None:
    with Publisher(ctx, "inproc://multi", "cams") as pub, \
            Subscriber(ctx, pub.address, types=["camera_frame", "telemetry"]) as sub:
        _sync(pub, sub)
        pub.publish("camera_frame", _frame_body(1, "left"), _image(1))
        pub.publish("camera_frame", _frame_body(2, "right"), _image(2))
        pub.publish("arm_state", *arm_state()[1:])  # filtered out by types
        assert wait_until(lambda: sub.latest("camera_frame", "right") is not None)
        left = sub.latest("camera_frame", "left")
        assert left is not None and left.body["frame_index"] == 1
        assert sub.latest("arm_state") is None


def test_wait_new_returns_each_message_once_and_times_out(ctx: zmq.Context) -> None:
    with Publisher(ctx, "inproc://state", "arm") as pub, \
            Subscriber(ctx, pub.address) as sub:
        _sync(pub, sub)
        pub.publish(*arm_state(1))
        first = sub.wait_new("arm_state", 2.0)
        assert first is not None and first.body["stamp_ns"] == 1
        t0 = time.monotonic()
        assert sub.wait_new("arm_state", 0.1) is None  # nothing newer
        assert 0.09 <= time.monotonic() - t0 < 1.0
        assert sub.latest("arm_state") is first  # latest() still gives it
        threading.Timer(0.05, lambda: pub.publish(*arm_state(2))).start()
        second = sub.wait_new("arm_state", 2.0)
        assert second is not None and second.body["stamp_ns"] == 2


def test_subscriber_rejects_unregistered_type_filter(ctx: zmq.Context) -> None:
    with pytest.raises(ConfigError):
        Subscriber(ctx, "inproc://x", types=["telepathy"])


def test_publish_validates_outbound(ctx: zmq.Context) -> None:
    with Publisher(ctx, "inproc://val", "arm") as pub, pytest.raises(ProtocolError):
        pub.publish("arm_state", {"stamp_ns": 0})
    assert pub.closed


def test_push_pull_round_trip_and_nonblocking_send(ctx: zmq.Context) -> None:
    with Pusher(ctx, "tcp://127.0.0.1:1", "actor", sndhwm=5, linger_ms=0) as lonely:
        # nobody listens: messages queue up to SNDHWM, then send would block -> False at once
        t0 = time.monotonic()
        sent = [lonely.send("telemetry", {"kind": "k", "values": {}}) for _ in range(20)]
        assert time.monotonic() - t0 < 1.0
        assert sent[0] is True and sent[-1] is False
        assert lonely.dropped == sent.count(False) > 0
    with Puller(ctx, "tcp://127.0.0.1:*") as puller, \
            Pusher(ctx, puller.address, "actor") as pusher:
        _, body, arrays = arm_state(3)
        assert wait_until(lambda: pusher.send("arm_state", body, arrays))
        msg = puller.recv(2.0)
        assert msg is not None and msg.sender == "actor" and msg.body["stamp_ns"] == 3
        assert np.array_equal(msg.arrays["joint_pos_rad"], arrays["joint_pos_rad"])
        t0 = time.monotonic()
        assert puller.recv(0.1) is None
        assert time.monotonic() - t0 < 1.0
        assert puller.recv(0) is None


def test_puller_zero_copy_large_arrays(ctx: zmq.Context) -> None:
    with Puller(ctx, "inproc://big", zero_copy=True) as puller, \
            Pusher(ctx, puller.address, "cam") as pusher:
        image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        assert pusher.send("camera_frame", _frame_body(1), {"image": image})
        msg = puller.recv(2.0)
        assert msg is not None and np.array_equal(msg.arrays["image"], image)


def test_requester_timeout_against_silent_peer(ctx: zmq.Context) -> None:
    silent = ctx.socket(zmq.ROUTER)
    port = silent.bind_to_random_port("tcp://127.0.0.1")
    try:
        with Requester(ctx, f"tcp://127.0.0.1:{port}", "actor") as req:
            for timeout_s in (0.2, 0.3):
                t0 = time.monotonic()
                with pytest.raises(PeerTimeout):
                    req.request("arm_command", {"command": "status"}, timeout_s=timeout_s)
                elapsed = time.monotonic() - t0
                assert timeout_s - 0.01 <= elapsed < timeout_s + 0.15, elapsed
    finally:
        silent.close(0)


def test_requester_timeout_with_no_server_at_all(ctx: zmq.Context) -> None:
    with Requester(ctx, "tcp://127.0.0.1:1", "actor") as req:
        t0 = time.monotonic()
        with pytest.raises(PeerTimeout):
            req.request("arm_command", {"command": "stop"}, timeout_s=0.2)
        assert time.monotonic() - t0 < 0.35


def _serve_one(replier: Replier, **reply_kwargs: object) -> threading.Thread:
    def run() -> None:
        got = replier.poll(5.0)
        assert got is not None
        identity, msg = got
        replier.reply(identity, msg, **reply_kwargs)  # type: ignore[arg-type]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_late_reply_to_timed_out_request_is_ignored(ctx: zmq.Context) -> None:
    with Replier(ctx, "tcp://127.0.0.1:*", "arm") as rep, \
            Requester(ctx, rep.address, "actor") as req:
        with pytest.raises(PeerTimeout):
            req.request("arm_command", {"command": "home"}, timeout_s=0.2)
        assert req.reconnects == 1  # queued requests are dropped with the old socket
        # the server wakes up late and answers the timed-out request
        got = rep.poll(1.0)
        assert got is not None
        identity, old = got
        assert old.body["command"] == "home"
        rep.reply(identity, old, ok=True, reason="late")
        thread = _serve_one(rep, ok=True, reason="fresh", data={"n": 2})
        reply = req.request("arm_command", {"command": "status"}, timeout_s=2.0)
        thread.join()
        assert reply.body["reason"] == "fresh" and reply.body["request_seq"] == old.seq + 1
        assert reply.body["data"] == {"n": 2}


def test_replies_with_another_request_seq_are_discarded(ctx: zmq.Context) -> None:
    """A server that answers twice (a stale answer, then the right one): only the matching
    reply is returned."""
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")

    def answer_twice() -> None:
        assert router.poll(5000)
        identity, header = router.recv_multipart()
        seq = decode([header]).seq
        for request_seq, reason in ((seq - 1, "stale"), (seq + 5, "future"), (seq, "right")):
            router.send_multipart([identity, *encode("reply", "arm", 0, {
                "ok": True, "reason": reason, "request_seq": request_seq})])

    try:
        with Requester(ctx, f"tcp://127.0.0.1:{port}", "actor") as req:
            req._seq = 3
            thread = threading.Thread(target=answer_twice, daemon=True)
            thread.start()
            reply = req.request("arm_command", {"command": "status"}, timeout_s=5.0)
            thread.join()
            assert reply.body["reason"] == "right" and reply.body["request_seq"] == 3
            assert req.stale == 2
    finally:
        router.close(0)


def test_reply_sent_just_before_the_server_closes_arrives(ctx: zmq.Context) -> None:
    for _ in range(20):
        rep = Replier(ctx, "tcp://127.0.0.1:*", "arm")
        with Requester(ctx, rep.address, "actor") as req:

            def serve_and_close(rep: Replier = rep) -> None:
                got = rep.poll(5.0)
                assert got is not None
                rep.reply(got[0], got[1], ok=True, reason="bye")
                rep.close()

            thread = threading.Thread(target=serve_and_close, daemon=True)
            thread.start()
            reply = req.request("arm_command", {"command": "reset"}, timeout_s=5.0)
            thread.join()
            assert reply.body["reason"] == "bye"


def test_ok_false_reply_is_returned_not_raised(ctx: zmq.Context) -> None:
    with Replier(ctx, "inproc://rep", "arm") as rep, \
            Requester(ctx, rep.address, "actor") as req:
        thread = _serve_one(rep, ok=False, reason="estop latched",
                            arrays={"jpeg": np.arange(5, dtype=np.uint8)})
        reply = req.request("arm_command", {"command": "ee_delta"},
                            {"delta_xyz_m": np.array([0.01, 0.0, 0.0])}, timeout_s=2.0)
        thread.join()
        assert reply.body["ok"] is False and reply.body["reason"] == "estop latched"
        assert list(reply.arrays["jpeg"]) == [0, 1, 2, 3, 4]


def test_req_client_is_served_too(ctx: zmq.Context) -> None:
    with Replier(ctx, "inproc://req", "arm") as rep:
        req = ctx.socket(zmq.REQ)
        req.connect(rep.address)
        req.send_multipart(encode("arm_command", "cli", 5, {"command": "status"}))
        thread = _serve_one(rep, ok=True)
        assert req.poll(2000)
        reply = decode(req.recv_multipart())
        thread.join()
        assert reply.body["request_seq"] == 5
        req.close(0)


SERVER = textwrap.dedent("""
    import sys, zmq
    from robolearn.protocol import Replier
    ctx = zmq.Context()
    with Replier(ctx, "tcp://127.0.0.1:*", "remote_arm") as rep:
        print(rep.address, flush=True)
        while True:
            got = rep.poll(10.0)
            if got is None:
                break
            identity, msg = got
            command = msg.body["command"]
            data = {"pid_ok": True, "steps": len(msg.arrays.get("delta_xyz_m", ()))}
            rep.reply(identity, msg, ok=command != "estop", reason=command, data=data)
            if command == "reset":
                break
    ctx.term()
""")


def test_requester_against_replier_in_another_process(ctx: zmq.Context) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address.startswith("tcp://127.0.0.1:")
        with Requester(ctx, address, "actor") as req:
            reply = req.request("arm_command", {"command": "ee_delta", "gripper_close": 0.0},
                                {"delta_xyz_m": np.zeros(3)}, timeout_s=5.0)
            assert reply.sender == "remote_arm" and reply.body["ok"] is True
            assert reply.body["data"] == {"pid_ok": True, "steps": 3}
            reply = req.request("arm_command", {"command": "estop"}, timeout_s=5.0)
            assert reply.body["ok"] is False and reply.body["reason"] == "estop"
            # a malformed request is answered at once with the rejection reason
            bad = req.socket
            frames = encode("arm_command", "actor", 99, {"command": "home"})
            bad.send_multipart([b"\x81\xa1v\x02", *frames[1:]])  # {"v": 2}
            assert bad.poll(5000)
            err = decode(bad.recv_multipart())
            assert err.body["ok"] is False and err.body["reason"] == "bad_version"
            req.request("arm_command", {"command": "reset"}, timeout_s=5.0)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bind_conflict_is_a_config_error(ctx: zmq.Context) -> None:
    with Replier(ctx, "tcp://127.0.0.1:*", "a") as rep, pytest.raises(ConfigError):
        Replier(ctx, rep.address, "b")
