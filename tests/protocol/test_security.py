"""check_bind rules and CURVE-secured sockets."""

from __future__ import annotations

import time

import pytest
import zmq

from robolearn.errors import ConfigError
from robolearn.protocol import (
    Publisher,
    Replier,
    Requester,
    SocketSecurity,
    Subscriber,
    check_bind,
    generate_keypair,
)
from tests.protocol.util import wait_until


@pytest.mark.parametrize("address", [
    "tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://10.0.0.2:5555", "tcp://eth0:5555",
    "tcp://[::]:5555", "tcp://robot-pc.lab:5555", "ws://127.0.0.1:5555",
])
def test_network_bind_without_keys_is_refused(address: str) -> None:
    with pytest.raises(ConfigError, match="CURVE"):
        check_bind(address, None)
    with pytest.raises(ConfigError):
        check_bind(address, SocketSecurity())
    check_bind(address, SocketSecurity(insecure=True))
    public, secret = generate_keypair()
    check_bind(address, SocketSecurity(server_public_key=public, server_secret_key=secret))


@pytest.mark.parametrize("address", [
    "tcp://127.0.0.1:5555", "tcp://127.3.4.5:1", "tcp://localhost:5555", "tcp://[::1]:5555",
    "tcp://127.0.0.1:*", "ipc:///tmp/robolearn-arm", "inproc://arm",
])
def test_loopback_ipc_inproc_binds_are_fine(address: str) -> None:
    check_bind(address, None)


def test_address_without_transport_is_refused() -> None:
    with pytest.raises(ConfigError):
        check_bind("127.0.0.1:5555", None)


def test_socket_helpers_apply_check_bind(ctx: zmq.Context) -> None:
    with pytest.raises(ConfigError):
        Publisher(ctx, "tcp://0.0.0.0:*", "arm")
    with pytest.raises(ConfigError):
        Replier(ctx, "tcp://*:*", "arm")
    with Publisher(ctx, "tcp://0.0.0.0:*", "arm", security=SocketSecurity(insecure=True)) as p:
        assert p.address.startswith("tcp://0.0.0.0:")


def test_bad_keys_are_config_errors() -> None:
    public, secret = generate_keypair()
    assert len(public) == len(secret) == 40
    with pytest.raises(ConfigError):
        SocketSecurity(server_public_key="not-a-key")
    with pytest.raises(ConfigError):
        SocketSecurity(server_public_key=public, client_public_key=public)  # half a pair


def _publish_until(pub: Publisher, sub: Subscriber, timeout_s: float) -> bool:
    return wait_until(lambda: pub.publish("telemetry", {"kind": "hb", "values": {}}) and
                      sub.wait_new("telemetry", 0.01) is not None, timeout_s)


def test_curve_pub_sub_on_loopback(ctx: zmq.Context) -> None:
    server_public, server_secret = generate_keypair()
    server = SocketSecurity(server_public_key=server_public, server_secret_key=server_secret)
    with Publisher(ctx, "tcp://127.0.0.1:*", "arm", security=server) as pub:
        assert pub.socket.curve_server
        good = SocketSecurity(server_public_key=server_public)
        with Subscriber(ctx, pub.address, security=good) as sub:
            assert _publish_until(pub, sub, 5.0)
            assert sub.rejected == {}
        wrong_public, _ = generate_keypair()
        wrong = SocketSecurity(server_public_key=wrong_public)
        with Subscriber(ctx, pub.address, security=wrong) as eve:
            assert not _publish_until(pub, eve, 0.7)
            assert eve.latest("telemetry") is None
        plain = Subscriber(ctx, pub.address)  # no keys at all: the handshake fails too
        with plain:
            assert not _publish_until(pub, plain, 0.5)


def test_curve_request_reply_with_client_keys(ctx: zmq.Context) -> None:
    server_public, server_secret = generate_keypair()
    client_public, client_secret = generate_keypair()
    server = SocketSecurity(server_public_key=server_public, server_secret_key=server_secret)
    client = SocketSecurity(server_public_key=server_public, client_public_key=client_public,
                            client_secret_key=client_secret)
    with Replier(ctx, "tcp://127.0.0.1:*", "arm", security=server) as rep, \
            Requester(ctx, rep.address, "actor", security=client) as req:
        import threading

        def serve() -> None:
            got = rep.poll(5.0)
            assert got is not None
            rep.reply(got[0], got[1], ok=True)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        t0 = time.monotonic()
        reply = req.request("arm_command", {"command": "status"}, timeout_s=5.0)
        thread.join()
        assert reply.body["ok"] is True and time.monotonic() - t0 < 5.0


def test_key_files(tmp_path: object) -> None:
    import zmq.auth

    public_file, secret_file = zmq.auth.create_certificates(str(tmp_path), "server")
    sec = SocketSecurity.from_key_files(server_key_file=secret_file)
    assert sec.server_secret_key is not None and sec.curve
    client_side = SocketSecurity.from_key_files(server_key_file=public_file)
    assert client_side.server_public_key == sec.server_public_key
    assert client_side.server_secret_key is None
    with pytest.raises(ConfigError):
        SocketSecurity.from_key_files(server_key_file="/nonexistent/key")
