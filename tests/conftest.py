"""Shared fixtures: run configs with private ipc:// addresses, so tests never collide with
each other or with a `make run` on the same machine."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

# torch 2.14's optimisers import torch._dynamo, which loads triton; triton loaded after MuJoCo
# has made an EGL context in the same process segfaults it (Mesa EGL). Tests render and
# train in one pytest process, so load it first.
import torch._dynamo  # noqa: F401


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # ipc:// paths must stay under ~100 characters: pytest's tmp_path can be longer.
    d = Path(tempfile.mkdtemp(prefix="rl-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_config_dict(sock_dir: Path, data_dir: Path, **sections: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "test_run",
        "data_dir": str(data_dir),
        "robot": {
            "kind": "sim", "task": "reach",
            "state_address": f"ipc://{sock_dir}/state",
            "command_address": f"ipc://{sock_dir}/cmd",
            "frames_address": f"ipc://{sock_dir}/frames",
        },
        "cameras": [{"kind": "sim", "name": "front", "width": 64, "height": 64, "fps": 20},
                    {"kind": "sim", "name": "wrist", "width": 64, "height": 64, "fps": 20}],
        "actor": {"telemetry_address": f"ipc://{sock_dir}/telemetry",
                  "control_address": f"ipc://{sock_dir}/control", "episode_steps": 30},
        # `robolearn up` starts the service: never on a fixed port that another test or
        # program may hold.
        "server": {"port": free_port()},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


@pytest.fixture
def write_config(sock_dir: Path, tmp_path: Path):
    def write(**sections: Any) -> Path:
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(run_config_dict(sock_dir, tmp_path / "data", **sections)))
        return path

    return write
