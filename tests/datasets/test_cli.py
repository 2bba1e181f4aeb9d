"""`robolearn dataset` commands in-process: export a run, import it back, import RLBench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robolearn.cli.main import main
from robolearn.store import Store
from tests.datasets.test_rlbench_import import make_task_folder, rlbench_modules  # noqa: F401
from tests.playback.recording import record_sim_episode


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_export_then_import_a_run(tmp_path: Path, capsys) -> None:
    with Store.open(tmp_path / "src") as store:
        episode_id = record_sim_episode(store, "reach", seed=1, max_steps=5, is_demo=True)
        run_id = store.get_episode(episode_id).run_id
    assert main(["dataset", "export", "--data-dir", str(tmp_path / "src"), "--run",
                 str(run_id), str(tmp_path / "ds")]) == 0
    assert _last_json(capsys.readouterr().out)["episodes"] == 1
    assert main(["dataset", "import", "--data-dir", str(tmp_path / "dst"),
                 str(tmp_path / "ds"), "--name", "from lerobot"]) == 0
    report = _last_json(capsys.readouterr().out)
    with Store.open(tmp_path / "dst") as dst, Store.open(tmp_path / "src") as src:
        (new_id,) = report["episode_ids"]
        assert dst.get_run(report["run_id"]).name == "from lerobot"
        assert dst.get_episode(new_id).is_demo
        np.testing.assert_array_equal(dst.load_episode(new_id).arrays["proprio"],
                                      src.load_episode(episode_id).arrays["proprio"])
    # A second export into the same folder is refused, and says why.
    assert main(["dataset", "export", "--data-dir", str(tmp_path / "src"), "--episodes",
                 str(episode_id), str(tmp_path / "ds")]) == 2


def test_import_rlbench_command(tmp_path: Path, rlbench_modules, capsys) -> None:  # noqa: F811
    task_dir = make_task_folder(tmp_path / "rlbench", rlbench_modules)
    assert main(["dataset", "import-rlbench", "--data-dir", str(tmp_path / "data"),
                 str(task_dir), "--cameras", "front"]) == 0
    report = _last_json(capsys.readouterr().out)
    with Store.open(tmp_path / "data") as store:
        episodes = [store.get_episode(i) for i in report["episode_ids"]]
    assert [e.num_steps for e in episodes] == [5, 7]
    assert all(e.cameras == ("front",) and e.is_demo for e in episodes)


def test_import_maps_tasks_and_refuses_what_does_not_fit(tmp_path: Path, capsys,
                                                         caplog) -> None:
    with Store.open(tmp_path / "src") as store:
        episode_id = record_sim_episode(store, "reach", seed=1, max_steps=5, is_demo=True)
    assert main(["dataset", "export", "--data-dir", str(tmp_path / "src"), "--episodes",
                 str(episode_id), "--lossless", str(tmp_path / "ds")]) == 0
    capsys.readouterr()
    # A map that leaves the robot's proprio short is refused before anything is written.
    assert main(["dataset", "import", "--data-dir", str(tmp_path / "dst"), str(tmp_path / "ds"),
                 "--map", "proprio=observation.state[0:3]"]) == 2
    assert "robot's proprio has 8 values" in caplog.text
    with Store.open(tmp_path / "dst") as dst:
        assert dst.list_runs() == []
    assert main(["dataset", "import", "--data-dir", str(tmp_path / "dst"), str(tmp_path / "ds"),
                 "--task", "move the gripper to the green ball=reach_left"]) == 0
    (new_id,) = _last_json(capsys.readouterr().out)["episode_ids"]
    with Store.open(tmp_path / "dst") as dst, Store.open(tmp_path / "src") as src:
        assert dst.get_episode(new_id).task == "reach_left"
        for key, array in src.load_episode(episode_id).arrays.items():
            np.testing.assert_array_equal(dst.load_episode(new_id).arrays[key], array)
