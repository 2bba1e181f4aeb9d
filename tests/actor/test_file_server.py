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
