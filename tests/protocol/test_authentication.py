"""Authenticated sockets: a ZAP allow-list of client keys, the identity on every message,
and per-sender sequence numbers that must increase."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import zmq

from robolearn.errors import ConfigError, PeerTimeout
from robolearn.protocol import (
    Publisher,
    Puller,
    Pusher,
    Replier,
    Requester,
    SocketSecurity,
    Subscriber,
    encode,
    generate_keypair,
)
from robolearn.protocol.keys import KeyRing
from robolearn.protocol.security import zap_handler


def _pair() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture
def keys() -> dict[str, tuple[str, str]]:
    return {name: _pair() for name in ("driver", "actor", "intruder")}


def _server(keys: dict[str, tuple[str, str]], *clients: str) -> SocketSecurity:
    public, secret = keys["driver"]
    return SocketSecurity(server_public_key=public, server_secret_key=secret,
                          allowed_clients={keys[c][0]: c for c in clients})


def _client(keys: dict[str, tuple[str, str]], me: str) -> SocketSecurity:
    public, secret = keys[me]
    return SocketSecurity(server_public_key=keys["driver"][0], client_public_key=public,
                          client_secret_key=secret)


def _serve(rep: Replier, n: int, seen: list) -> threading.Thread:
    def run() -> None:
        for _ in range(n):
            got = rep.poll(3.0)
            if got is None:
                return
            seen.append(got[1])
            rep.reply(got[0], got[1], ok=True)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_allowed_key_is_admitted_and_named(ctx: zmq.Context, keys: dict) -> None:
    with Replier(ctx, "tcp://127.0.0.1:*", "driver", security=_server(keys, "actor")) as rep, \
            Requester(ctx, rep.address, "forged-name", security=_client(keys, "actor")) as req:
        seen: list = []
        thread = _serve(rep, 1, seen)
        reply = req.request("arm_command", {"command": "status"}, timeout_s=3.0)
        thread.join()
        assert reply.body["ok"] is True
        # the identity comes from the key, whatever the message calls itself
        assert seen[0].peer == "actor" and seen[0].sender == "forged-name"


@pytest.mark.parametrize("who", ["intruder", "no-keys", "ephemeral"])
def test_unknown_clients_are_refused(ctx: zmq.Context, keys: dict, who: str) -> None:
    sec: SocketSecurity | None
    if who == "intruder":
        sec = _client(keys, "intruder")  # a real key pair, just not on the list
    elif who == "ephemeral":
        sec = SocketSecurity(server_public_key=keys["driver"][0])  # knows the server key
    else:
        sec = None
    with Replier(ctx, "tcp://127.0.0.1:*", "driver", security=_server(keys, "actor")) as rep, \
            Requester(ctx, rep.address, "actor", security=sec) as req:
        seen: list = []
        thread = _serve(rep, 1, seen)
        with pytest.raises(PeerTimeout):
            req.request("arm_command", {"command": "estop_release"}, timeout_s=0.7)
        thread.join()
        assert seen == []  # nothing reached the server's application
        if who != "no-keys":  # a plain client fails the handshake before ZAP is asked
            assert sum(zap_handler(ctx).refused.values()) >= 1


def test_replayed_and_reordered_seq_are_refused(ctx: zmq.Context, keys: dict) -> None:
    """A DEALER holding a valid key sends raw frames: the same seq twice, then an older
    one. Only the first is served."""
    with Replier(ctx, "tcp://127.0.0.1:*", "driver", security=_server(keys, "actor")) as rep:
        dealer = ctx.socket(zmq.DEALER)
        public, secret = keys["actor"]
        dealer.curve_serverkey = keys["driver"][0].encode()
        dealer.curve_publickey, dealer.curve_secretkey = public.encode(), secret.encode()
        dealer.connect(rep.address)
        try:
            frames = encode("arm_command", "actor", 1000, {"command": "stop"})
            older = encode("arm_command", "actor", 999, {"command": "stop"})
            for f in (frames, frames, frames, older):
                dealer.send_multipart(f)
            got = rep.poll(3.0)
            assert got is not None and got[1].seq == 1000
            rep.reply(got[0], got[1], ok=True)
            assert rep.poll(0.5) is None
            assert rep.rejected.get("replayed_seq") == 3
            replies = []
            while dealer.poll(500):
                replies.append(dealer.recv_multipart())
            assert len(replies) == 4  # one ok, three refusals the sender can read
        finally:
            dealer.close(0)


def test_restarted_sender_continues_above_its_old_seq(ctx: zmq.Context, keys: dict) -> None:
    with Replier(ctx, "tcp://127.0.0.1:*", "driver", security=_server(keys, "actor")) as rep:
        seen: list = []
        thread = _serve(rep, 2, seen)
        for _ in range(2):  # two lives of the same process identity and sender name
            with Requester(ctx, rep.address, "actor", security=_client(keys, "actor")) as req:
                assert req.request("arm_command", {"command": "status"},
                                   timeout_s=3.0).body["ok"]
        thread.join()
        assert len(seen) == 2 and seen[1].seq > seen[0].seq


def test_puller_names_the_pusher_and_refuses_strangers(ctx: zmq.Context, keys: dict) -> None:
    with Puller(ctx, "tcp://127.0.0.1:*", security=_server(keys, "actor")) as pull, \
            Pusher(ctx, pull.address, "actor", security=_client(keys, "actor")) as push, \
            Pusher(ctx, pull.address, "actor", security=_client(keys, "intruder")) as eve:
        for _ in range(5):
            eve.send("telemetry", {"kind": "x", "values": {}})
        push.send("telemetry", {"kind": "x", "values": {}})
        msg = pull.recv(3.0)
        assert msg is not None and msg.peer == "actor"
        assert pull.recv(0.5) is None


def test_allow_list_needs_a_server_key() -> None:
    with pytest.raises(ConfigError, match="server key pair"):
        SocketSecurity(allowed_clients={_pair()[0]: "actor"})


def test_context_terminates_with_a_zap_handler_running(keys: dict) -> None:
    ctx = zmq.Context()
    rep = Replier(ctx, "tcp://127.0.0.1:*", "driver", security=_server(keys, "actor"))
    rep.close()
    done = threading.Event()
    threading.Thread(target=lambda: (ctx.term(), done.set()), daemon=True).start()
    assert done.wait(5.0), "ctx.term() hung on the ZAP handler's socket"


def test_key_ring_files_and_modes(tmp_path: Path) -> None:
    ring = KeyRing.create(tmp_path / "keys", ["driver", "actor"])
    assert ring.identities() == ["actor", "driver"]
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    secret_file = tmp_path / "keys" / "actor.key_secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    public = ring.public("actor")
    assert ring.identity_of(public) == "actor" and ring.identity_of(_pair()[0]) is None
    assert len(ring.secret("actor")) == 40
    again = KeyRing.create(tmp_path / "keys", ["driver", "actor", "learner"])
    assert again.public("actor") == public  # existing pairs are kept
    secret_file.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        again.secret("actor")
    secret_file.chmod(0o600)
    out = tmp_path / "robot-pc"
    written = again.export(out, ["driver"])
    assert sorted(p.name for p in written) == ["actor.key", "driver.key", "driver.key_secret",
                                               "learner.key"]
    exported = KeyRing(out)
    assert exported.public("actor") == public and len(exported.secret("driver")) == 40
    with pytest.raises(ConfigError, match="no secret key for 'actor'"):
        exported.secret("actor")
    with pytest.raises(ConfigError, match="no run keys"):
        KeyRing(tmp_path / "missing")


def test_zero_copy_receiver_still_gets_the_identity(ctx: zmq.Context, keys: dict) -> None:
    with Puller(ctx, "tcp://127.0.0.1:*", security=_server(keys, "actor"),
                zero_copy=True) as pull, \
            Pusher(ctx, pull.address, "actor", security=_client(keys, "actor")) as push:
        push.send("telemetry", {"kind": "x", "values": {"n": 1}})
        msg = pull.recv(3.0)
        assert msg is not None and msg.peer == "actor" and msg.body["values"] == {"n": 1}


@pytest.mark.parametrize("client_kind", ["subscriber", "pusher"])
def test_a_plain_text_impostor_does_not_cut_a_client_off_for_good(
        keys: dict, sock_dir: Path, client_kind: str) -> None:
    # libzmq drops a connection for good once its handshake fails on the mechanism (a
    # plain-text server where a CURVE one was expected): an impostor bound for a moment on
    # a dead server's address must not keep the client from the real server afterwards.
    ctx = zmq.Context()  # terminated, not destroyed: the ZAP handler's thread ends cleanly
    try:
        _impostor_then_server(ctx, keys, sock_dir, client_kind)
    finally:
        ctx.term()


def _impostor_then_server(ctx: zmq.Context, keys: dict, sock_dir: Path,
                          client_kind: str) -> None:
    address = f"ipc://{sock_dir}/server"
    body = {"kind": "x", "values": {}}
    client: Subscriber | Pusher
    if client_kind == "subscriber":
        client = Subscriber(ctx, address, types=("telemetry",),
                            security=_client(keys, "actor"))
    else:
        client = Pusher(ctx, address, "actor", security=_client(keys, "actor"), linger_ms=0)

    def exchange(server: Publisher | Puller | zmq.Socket) -> bool:
        """One message from the server side to the client or back; True when it arrived."""
        if isinstance(client, Subscriber):
            if isinstance(server, Publisher):
                server.publish("telemetry", body)
            else:
                server.send_multipart(encode("telemetry", "impostor", 1, body))
            return client.poll() > 0
        client.send("telemetry", body)
        if isinstance(server, Puller):
            return server.recv(0.05) is not None
        return bool(server.poll(50)) and server.recv_multipart() is not None

    with client:
        impostor = ctx.socket(zmq.PUB if client_kind == "subscriber" else zmq.PULL)
        impostor.linger = 0
        impostor.bind(address)
        try:
            deadline = time.monotonic() + 5.0
            while client.reopens == 0 and time.monotonic() < deadline:
                assert not exchange(impostor)
                time.sleep(0.05)
            assert client.reopens >= 1  # the refused handshake was seen
        finally:
            impostor.close()
        real: Publisher | Puller = (
            Publisher(ctx, address, "driver", security=_server(keys, "actor"))
            if client_kind == "subscriber" else
            Puller(ctx, address, security=_server(keys, "actor")))
        with real:
            deadline = time.monotonic() + 10.0
            while not exchange(real):
                assert time.monotonic() < deadline, "the client never reached the real server"
                time.sleep(0.05)
