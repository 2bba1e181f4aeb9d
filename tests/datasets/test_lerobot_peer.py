"""LeRobot interchange against the real `lerobot` package (0.4.4, in .venvs/lerobot, built by
`make test`), driven in subprocesses by tests/datasets/lerobot_peer/peer.py, offline.

Datasets LeRobot's own writer makes (H.264 video, AV1 video, PNG images) import exactly;
robolearn's exports load in LeRobot, decode in DataLoader workers, keep their statistics
through LeRobot's delete/split/merge tools, and train a step of ACT.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from robolearn.datasets import RobotSpec, export_lerobot, import_lerobot
from robolearn.errors import DatasetError
from robolearn.store import Store
from tests.playback.recording import record_sim_episode

REPO = Path(__file__).resolve().parents[2]
PEER_PYTHON = REPO / ".venvs" / "lerobot" / "bin" / "python"
PEER = Path(__file__).parent / "lerobot_peer" / "peer.py"
KINDS = ("video-h264", "video-av1", "image")

pytestmark = pytest.mark.skipif(
    not PEER_PYTHON.exists(),
    reason=f"{PEER_PYTHON} is missing: `make lerobot` (part of `make test`) builds it")


def run_peer(args: list[str], home: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(home / "hf"), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([str(PEER_PYTHON), str(PEER), *args], capture_output=True,
                          text=True, timeout=400, env=env, cwd=home)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Three datasets LeRobot's own writer made, once for every test here."""
    root = tmp_path_factory.mktemp("lerobot_written")
    return root, run_peer(["write", str(root), *KINDS], root)


@pytest.mark.parametrize("kind", KINDS)
def test_datasets_lerobot_writes_import_exactly(written, kind: str, tmp_path: Path) -> None:
    root, report = written
    fed = np.load(root / f"{kind}.npz")
    assert report[kind]["episodes"] == 3
    with Store.open(tmp_path / "store") as store:
        result = import_lerobot(store, root / kind, spec=RobotSpec(proprio_dim=6, action_dim=6),
                                tasks={"pick up the red block": "pick_cube"})
        episodes = [store.load_episode(i) for i in result.episode_ids]
    steps = [e.num_steps for e in episodes]
    assert steps == [6, 9, 12]  # one store step per LeRobot frame
    assert [e.record.task for e in episodes] == ["pick_cube", "put the block in the bowl",
                                                 "pick_cube"]
    assert [e.record.outcome for e in episodes] == ["success", "failure", "success"]

    def joined(key: str, final: bool) -> np.ndarray:
        # The store holds T+1 observations; the dataset's frames are the first T.
        return np.concatenate([e.arrays[key][: e.num_steps] if final else e.arrays[key]
                               for e in episodes])

    np.testing.assert_array_equal(joined("proprio", True), fed["state"])
    np.testing.assert_array_equal(joined("action", False), fed["action"])
    np.testing.assert_array_equal(joined("reward", False), fed["reward"])
    np.testing.assert_array_equal(joined("success", False), fed["success"])
    for camera in ("front", "wrist"):
        key = f"observation.images.{camera}"
        # Images are PNG, bit-identical to what was fed; video is compared with what
        # LeRobot itself decodes from the files it wrote.
        expected = fed[f"fed/{key}"] if kind == "image" else fed[f"decoded/{key}"]
        np.testing.assert_array_equal(joined(f"images_{camera}", True), expected)
    for e in episodes:  # no observation after the last action: the last frame's stands in
        np.testing.assert_array_equal(e.arrays["proprio"][-1], e.arrays["proprio"][-2])


def test_a_dataset_that_does_not_fit_the_robot_changes_nothing(written,
                                                              tmp_path: Path) -> None:
    root, _ = written
    with Store.open(tmp_path / "store") as store:
        runs_before = store.list_runs()
        with pytest.raises(DatasetError, match=r"robot's proprio has 8 values, the dataset "
                                               r"gives observation.state with 6 values"):
            import_lerobot(store, root / "video-h264")  # robolearn's 8-D / 4-D robot
        assert store.list_runs() == runs_before
        assert store.list_episodes(status=None) == []


def test_exports_load_decode_in_workers_survive_tools_and_train(tmp_path: Path) -> None:
    with Store.open(tmp_path / "source") as store:
        ids = [record_sim_episode(store, "pick_cube", seed=3, image_size=(24, 32)),
               record_sim_episode(store, "reach", seed=1, max_steps=4, image_size=(24, 32),
                                  policy=lambda _b: np.array([0.2, 0.0, -0.3, 1.0], np.float32)),
               record_sim_episode(store, "reach", seed=2, max_steps=6, image_size=(24, 32))]
        export_lerobot(store, ids, tmp_path / "default")
        export_lerobot(store, ids, tmp_path / "lossless", lossless=True)
        episodes = [store.load_episode(i) for i in ids]
    report = run_peer(["verify", str(tmp_path / "tools"), str(tmp_path / "default"),
                       str(tmp_path / "lossless")], tmp_path)

    frames = sum(e.num_steps for e in episodes)
    for name in ("default", "lossless"):
        check = report["check"][str(tmp_path / name)]
        assert check["frames"] == frames and check["backend"] == "torchcodec"
        assert check["first_task"] == "pick up the red cube and lift it"
        decoded = np.load(tmp_path / f"{name}.decoded.npz")
        np.testing.assert_array_equal(decoded["index"], np.arange(frames))
        for camera in ("front", "wrist"):
            stored = np.concatenate([e.images(camera)[: e.num_steps] for e in episodes])
            got = decoded[f"observation.images.{camera}"]
            if name == "lossless":
                np.testing.assert_array_equal(got, stored)
            else:
                assert np.abs(got.astype(int) - stored.astype(int)).mean() < 4.0

    tools = report["tools"]
    assert tools["source_missing"] == {}
    expected = {"deleted": 2, "train": 1, "val": 2, "merged": 3}
    for name, count in expected.items():
        assert tools[name]["episodes"] == count, name
        assert tools[name]["missing"] == {}, (name, tools[name]["missing"])
        assert tools[name]["decoded"], name
    proprio = np.concatenate([e.arrays["proprio"][: e.num_steps] for e in episodes])
    np.testing.assert_allclose(tools["merged"]["state_mean"], proprio.mean(axis=0), atol=1e-5)
    assert np.isfinite(report["train"]["loss"])
    assert "observation.images.front" in report["train"]["inputs"]
