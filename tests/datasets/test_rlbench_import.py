"""RLBench demonstration folders: a folder in RLBench's layout (generated here, with the
pickles naming RLBench's own module paths) imports into the demo buffer with the right
shapes; a pickle naming any other class is refused before it runs and imports nothing."""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robolearn.datasets import import_rlbench, restricted_load
from robolearn.errors import DatasetError
from robolearn.learn.batch import ObsSpec
from robolearn.learn.replay import ReplayBuffer, load_from_store
from robolearn.store import Store

OBS_FIELDS = (
    "left_shoulder_rgb", "left_shoulder_depth", "left_shoulder_mask",
    "left_shoulder_point_cloud", "right_shoulder_rgb", "right_shoulder_depth",
    "right_shoulder_mask", "right_shoulder_point_cloud", "overhead_rgb", "overhead_depth",
    "overhead_mask", "overhead_point_cloud", "wrist_rgb", "wrist_depth", "wrist_mask",
    "wrist_point_cloud", "front_rgb", "front_depth", "front_mask", "front_point_cloud",
    "joint_velocities", "joint_positions", "joint_forces", "gripper_open", "gripper_pose",
    "gripper_matrix", "gripper_joint_positions", "gripper_touch_forces",
    "task_low_dim_state", "misc",
)


@pytest.fixture
def rlbench_modules(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Classes living at RLBench's module paths, so pickles name exactly what RLBench's
    dataset generator writes (RLBench itself cannot be installed here)."""
    demo_mod = types.ModuleType("rlbench.demo")
    obs_mod = types.ModuleType("rlbench.backend.observation")

    class Observation:
        def __init__(self, **fields: object) -> None:
            for name in OBS_FIELDS:
                setattr(self, name, fields.get(name))

    class Demo:
        def __init__(self, observations: list, random_seed: object = None) -> None:
            self._observations = observations
            self.random_seed = random_seed

    Observation.__module__, Observation.__qualname__ = obs_mod.__name__, "Observation"
    Demo.__module__, Demo.__qualname__ = demo_mod.__name__, "Demo"
    obs_mod.Observation, demo_mod.Demo = Observation, Demo
    for name, module in (("rlbench", types.ModuleType("rlbench")),
                         ("rlbench.backend", types.ModuleType("rlbench.backend")),
                         ("rlbench.demo", demo_mod), ("rlbench.backend.observation", obs_mod)):
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(Observation=Observation, Demo=Demo)


def write_demo(folder: Path, mods: types.SimpleNamespace, steps: int, seed: int) -> None:
    """One episode as RLBench saves it: images stripped from the pickle, PNGs beside it."""
    rng = np.random.default_rng(seed)
    observations = []
    for i in range(steps + 1):
        fingers = np.array([0.04, 0.04]) if i < steps // 2 else np.array([0.02, 0.02])
        observations.append(mods.Observation(
            joint_positions=rng.normal(size=7), joint_velocities=np.zeros(7),
            gripper_open=1.0 if i < steps // 2 else 0.0,
            gripper_pose=np.array([0.3 + 0.01 * i, 0.0, 1.0 - 0.02 * i, 0.0, 1.0, 0.0, 0.0]),
            gripper_joint_positions=fingers, task_low_dim_state=rng.normal(size=3),
            misc={"descriptions": ["reach the red target"]},
        ))
        for camera in ("front", "wrist", "left_shoulder"):
            (folder / f"{camera}_rgb").mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{camera}_rgb" / f"{i}.png")
    demo = mods.Demo(observations, random_seed=np.random.get_state())
    (folder / "low_dim_obs.pkl").write_bytes(pickle.dumps(demo))


def make_task_folder(root: Path, mods: types.SimpleNamespace) -> Path:
    task_dir = root / "reach_target"
    for k, steps in enumerate((5, 7)):
        write_demo(task_dir / "variation0" / "episodes" / f"episode{k}", mods, steps, seed=k)
    return task_dir


def test_demo_folder_imports_into_the_demo_buffer(tmp_path: Path, rlbench_modules) -> None:
    task_dir = make_task_folder(tmp_path / "rlbench", rlbench_modules)
    with Store.open(tmp_path / "data") as store:
        report = import_rlbench(store, task_dir, cameras=("front", "wrist"))
        assert len(report.episode_ids) == 2
        first = store.load_episode(report.episode_ids[0])
        assert first.record.task == "reach_target"
        assert first.record.is_demo and first.record.outcome == "success"
        assert first.images("front").shape == (6, 16, 16, 3)
        assert first.arrays["proprio"].shape == (6, 8)
        assert first.arrays["joint_pos"].shape == (6, 7)
        assert first.arrays["state"].shape == (6, 3)
        # RLBench's quaternion (x, y, z, w) = (0, 1, 0, 0) becomes w, x, y, z = (0, 0, 1, 0).
        np.testing.assert_allclose(first.arrays["proprio"][0, 3:7], [0, 0, 1, 0])
        np.testing.assert_allclose(first.arrays["proprio"][0, 7], 0.08)
        # 1 cm in x, -2 cm in z per step at 5 cm per full-scale action; gripper then closes.
        np.testing.assert_allclose(first.arrays["action"][0], [0.2, 0.0, -0.4, -1.0],
                                   atol=1e-5)
        assert first.arrays["action"][-1, -1] == 1.0
        assert first.arrays["success"].tolist() == [False] * 4 + [True]
        expected_png = np.asarray(Image.open(task_dir / "variation0/episodes/episode0/"
                                             "wrist_rgb/3.png"))
        np.testing.assert_array_equal(first.images("wrist")[3], expected_png)

        spec = ObsSpec(cameras=("front", "wrist"), image_hw=(16, 16), frame_stack=2, low_dim=8)
        online = ReplayBuffer(spec, action_dim=4, capacity=64, seed=0)
        demos = ReplayBuffer(spec, action_dim=4, capacity=64, is_demo=True, seed=1)
        assert load_from_store(store, online, demos, cameras=spec.cameras) == 2
    assert demos.num_episodes == 2 and len(demos) == 5 + 7
    batch = demos.sample(4)
    assert tuple(batch.rgb_obs.shape) == (4, 2, 6, 16, 16)  # [B, V, 3S, H, W]
    assert tuple(batch.low_dim_obs.shape) == (4, 16)  # [B, S·P]
    assert tuple(batch.action.shape) == (4, 4)
    assert bool(batch.is_demo.all())


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_pickle_naming_any_other_class_is_refused(tmp_path: Path, rlbench_modules,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    task_dir = make_task_folder(tmp_path / "rlbench", rlbench_modules)
    hostile = task_dir / "variation0/episodes/episode1/low_dim_obs.pkl"
    hostile.write_bytes(pickle.dumps(rlbench_modules.Demo([_RunsCode()])))
    with Store.open(tmp_path / "data") as store:
        with pytest.raises(DatasetError, match=r"refused to load (posix|os)\.system"):
            import_rlbench(store, task_dir)
        assert store.list_runs() == [] and store.list_episodes(status=None) == []
    assert not (tmp_path / "pwned-by-pickle").exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps(types.SimpleNamespace(a=1)),  # types.SimpleNamespace
    pickle.dumps(Path("/etc/passwd")),  # pathlib
    pickle.dumps({"f": print}),  # builtins.print
])
def test_other_globals_are_refused(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "low_dim_obs.pkl"
    path.write_bytes(payload)
    with pytest.raises(DatasetError, match="refused to load"):
        restricted_load(path)


def test_missing_image_and_garbage_pickle_import_nothing(tmp_path: Path,
                                                        rlbench_modules) -> None:
    task_dir = make_task_folder(tmp_path / "rlbench", rlbench_modules)
    (task_dir / "variation0/episodes/episode1/front_rgb/4.png").unlink()
    with Store.open(tmp_path / "data") as store:
        with pytest.raises(DatasetError, match=r"4\.png is missing"):
            import_rlbench(store, task_dir)
        (task_dir / "variation0/episodes/episode0/low_dim_obs.pkl").write_bytes(b"\x80\x05junk")
        with pytest.raises(DatasetError, match="not a readable RLBench pickle"):
            import_rlbench(store, task_dir)
        with pytest.raises(DatasetError, match=r"no low_dim_obs\.pkl"):
            import_rlbench(store, tmp_path / "data")
        with pytest.raises(DatasetError, match="unknown cameras"):
            import_rlbench(store, task_dir, cameras=("head",))
        assert store.list_runs() == []
