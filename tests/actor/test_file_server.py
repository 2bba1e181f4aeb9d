"""A robot host serves its episode videos by store id and camera only: byte ranges of
complete episodes, clear refusals for anything else, and only to the service's key."""

from __future__ import annotations

from pathlib import Path

import pytest

from robolearn.actor.file_server import MAX_CHUNK_BYTES, answer
from robolearn.config import parse_config
from robolearn.errors import ConfigError
from robolearn.protocol.messages import FileRequest
from robolearn.store import Store
from tests.conftest import run_config_dict
from tests.server.conftest import record_episode


def request(episode_id: int, camera: str = "front", offset: int = 0,
            length: int = 100) -> FileRequest:
    return FileRequest(episode_id=episode_id, camera=camera, offset=offset, length=length)


def test_ranges_of_complete_episodes_and_refusals(tmp_path: Path) -> None:
    with Store.open(tmp_path / "data") as store:
        run = store.create_run("r", {})
        episode = record_episode(store, run)
        data = store.video_path(episode, "front").read_bytes()
        ok, _, info, arrays = answer(store, request(episode, offset=10, length=50))
        assert ok and info == {"size": len(data)}
        assert arrays is not None and arrays["chunk"].tobytes() == data[10:60]
        ok, _, info, arrays = answer(store, request(episode, length=0))  # the size only
        assert ok and info == {"size": len(data)} and arrays["chunk"].size == 0
        ok, _, _, arrays = answer(store, request(episode, offset=len(data) + 5))
        assert ok and arrays["chunk"].size == 0  # past the end: nothing, not an error
        recording = store.begin_episode(run, "reach", ["front"])
        for bad, why in [(request(episode, camera="../../etc/passwd"), "no camera"),
                         (request(999), "no such episode"),
                         (request(recording.episode_id), "status"),
                         (request(episode, offset=-1), "offset must be"),
                         (request(episode, length=MAX_CHUNK_BYTES + 1), "length 0..")]:
            ok, reason, info, arrays = answer(store, bad)
            assert not ok and why in reason and info is None and arrays is None
        recording.abort("test over")


def test_only_the_service_may_ask_a_robot_host_for_files(tmp_path: Path) -> None:
    raw = run_config_dict(tmp_path / "s", tmp_path / "data")
    raw["fleet"] = {"robots": [{"name": "a"}, {"name": "b"}]}
    cfg = parse_config(raw)
    address = cfg.fleet.robots[0].set["actor.files_address"]
    served = cfg.socket_security(address, "service")
    assert served.server_public_key is not None
    for stranger in ("learner", "operator"):
        with pytest.raises(ConfigError, match="may not connect"):
            cfg.socket_security(address, stranger)


def test_on_real_sockets_only_the_services_key_gets_a_video(tmp_path: Path) -> None:
    """A run's own learner key, a key of no run and no key at all are refused by the
    robot host's file server; the service's key gets the bytes."""
    import threading

    import zmq

    from robolearn.actor.file_server import serve_episode_files
    from robolearn.config.sockets import run_keys
    from robolearn.errors import PeerTimeout
    from robolearn.protocol import Requester, SocketSecurity, generate_keypair

    raw = run_config_dict(tmp_path / "s", tmp_path / "data")
    raw["actor"] = {**raw["actor"], "files_address": f"ipc://{tmp_path}/files"}
    cfg = parse_config(raw)
    with Store.open(cfg.data_dir) as store:
        episode = record_episode(store, store.create_run("r", {}))
        data = store.video_path(episode, "front").read_bytes()
    ring = run_keys(cfg)
    address, server_key = cfg.actor.files_address, ring.public("actor")
    stranger_public, stranger_secret = generate_keypair()
    refused = {
        "the learner's key": SocketSecurity(server_public_key=server_key,
                                            client_public_key=ring.public("learner"),
                                            client_secret_key=ring.secret("learner")),
        "a key of no run": SocketSecurity(server_public_key=server_key,
                                          client_public_key=stranger_public,
                                          client_secret_key=stranger_secret),
        "no key": None,
    }
    body = {"episode_id": episode, "camera": "front", "offset": 0, "length": 64}
    ctx = zmq.Context()
    stop = threading.Event()
    server = threading.Thread(target=serve_episode_files, args=(cfg, ctx, stop), daemon=True)
    server.start()
    try:
        with Requester(ctx, address, "service",
                       security=cfg.socket_security(address, "service")) as req:
            reply = req.request("file_request", body, timeout_s=5.0)
            assert reply.body["ok"] and reply.arrays["chunk"].tobytes() == data[:64]
        for who, security in refused.items():
            with Requester(ctx, address, "service", security=security) as req, \
                    pytest.raises(PeerTimeout):
                req.request("file_request", body, timeout_s=0.7)
                pytest.fail(f"{who} got an answer")
    finally:
        stop.set()
        server.join(5.0)
        ctx.term()
