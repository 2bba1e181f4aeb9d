"""LeRobotDataset v3.0 export and import: a lossless round trip is identical, a default
(yuv420p) one identical but for video noise, the layout and statistics are LeRobot's, and a
truncated, malformed or ill-fitting dataset imports nothing."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robolearn.datasets import FeatureMap, RobotSpec, export_lerobot, import_lerobot
from robolearn.datasets.lerobot_format import STAT_NAMES
from robolearn.errors import DatasetError
from robolearn.store import Store
from tests.playback.recording import record_sim_episode

# Record fields that an import must reproduce (ids, times, run and source links are new).
SAME_FIELDS = ("task", "direction", "seed", "policy", "is_demo", "status", "outcome",
               "end_reason", "num_steps", "cameras", "fps", "has_intervention")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int], Path]:
    """Two sim episodes (a success and a failure) exported once for every test here, losslessly
    (the dataset) and as ordinary yuv420p H.264 (beside it, "lossy")."""
    root = tmp_path_factory.mktemp("lerobot")
    with Store.open(root / "source") as store:
        ids = [
            record_sim_episode(store, "pick_cube", seed=3, image_size=(24, 32)),
            record_sim_episode(store, "reach", seed=1, max_steps=4, image_size=(24, 32),
                               policy=lambda _b: np.array([0.2, 0.0, -0.3, 1.0], np.float32)),
        ]
        export_lerobot(store, ids, root / "dataset", lossless=True)
        export_lerobot(store, ids, root / "lossy")
    return root / "source", ids, root / "dataset"


def _copy(dataset: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(dataset, target)
    return target


def test_layout_is_lerobot_v3(exported) -> None:
    _, _, dataset = exported
    info = json.loads((dataset / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == 2 and info["fps"] == 10
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["features"]["observation.images.front"]["dtype"] == "video"
    assert info["features"]["observation.images.front"]["shape"] == [24, 32, 3]
    assert info["features"]["observation.state"]["shape"] == [8]
    assert (dataset / "videos/observation.images.wrist/chunk-000/file-000.mp4").is_file()
    assert (dataset / "meta/stats.json").is_file()
    episodes = pq.read_table(dataset / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in episodes] == [0, 1]
    assert episodes[0]["dataset_to_index"] == episodes[1]["dataset_from_index"]
    assert episodes[1]["tasks"] == ["move the gripper to the green ball"]
    assert episodes[1]["videos/observation.images.front/from_timestamp"] == pytest.approx(
        episodes[0]["length"] / 10)
    data = pq.read_table(dataset / "data/chunk-000/file-000.parquet")
    assert data.num_rows == info["total_frames"] == sum(e["length"] for e in episodes)
    tasks = pq.read_table(dataset / "meta/tasks.parquet").to_pylist()
    assert [t["task"] for t in tasks] == ["pick up the red cube and lift it",
                                          "move the gripper to the green ball"]


def test_round_trip_is_identical_in_arrays_and_metadata(exported, tmp_path: Path) -> None:
    source_dir, ids, dataset = exported
    with Store.open(tmp_path / "target") as target:
        report = import_lerobot(target, dataset)
        assert len(report.episode_ids) == 2
        assert target.get_run(report.run_id).kind == "import"
        with Store.open(source_dir) as source:
            for old_id, new_id in zip(ids, report.episode_ids, strict=True):
                old, new = source.load_episode(old_id), target.load_episode(new_id)
                old_meta, new_meta = dataclasses.asdict(old.record), dataclasses.asdict(
                    new.record)
                assert {k: new_meta[k] for k in SAME_FIELDS} == {
                    k: old_meta[k] for k in SAME_FIELDS}
                assert sorted(new.arrays) == sorted(old.arrays)
                for key, array in old.arrays.items():
                    np.testing.assert_array_equal(new.arrays[key], array, err_msg=key)
                    assert new.arrays[key].dtype == array.dtype, key


def test_truncated_video_imports_nothing(exported, tmp_path: Path) -> None:
    dataset = _copy(exported[2], tmp_path)
    video = dataset / "videos/observation.images.front/chunk-000/file-000.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    with Store.open(tmp_path / "target") as store:
        with pytest.raises(DatasetError, match="video"):
            import_lerobot(store, dataset)
        assert store.list_runs() == [] and store.list_episodes(status=None) == []


def test_missing_frames_import_nothing(exported, tmp_path: Path) -> None:
    dataset = _copy(exported[2], tmp_path)
    path = dataset / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 3), path)
    with Store.open(tmp_path / "target") as store:
        with pytest.raises(DatasetError, match="truncated"):
            import_lerobot(store, dataset)
        assert store.list_runs() == []


def test_truncated_parquet_and_bad_json_import_nothing(exported, tmp_path: Path) -> None:
    dataset = _copy(exported[2], tmp_path)
    path = dataset / "meta/episodes/chunk-000/file-000.parquet"
    path.write_bytes(path.read_bytes()[:50])
    with Store.open(tmp_path / "target") as store:
        with pytest.raises(DatasetError, match="truncated or not parquet"):
            import_lerobot(store, dataset)
        (dataset / "meta/info.json").write_text("{not json")
        with pytest.raises(DatasetError, match="not valid JSON"):
            import_lerobot(store, dataset)
        assert store.list_runs() == []


def test_malformed_values_import_nothing(exported, tmp_path: Path) -> None:
    dataset = _copy(exported[2], tmp_path)
    path = dataset / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    frames = np.asarray(table.column("frame_index").to_pylist())
    frames[5] = 99  # a hole in an episode's frame sequence
    table = table.set_column(table.column_names.index("frame_index"), "frame_index",
                             pa.array(frames))
    pq.write_table(table, path)
    with Store.open(tmp_path / "target") as store:
        with pytest.raises(DatasetError, match="frame_index"):
            import_lerobot(store, dataset)
        assert store.list_runs() == []


def test_older_format_and_non_dataset_are_refused(exported, tmp_path: Path) -> None:
    dataset = _copy(exported[2], tmp_path)
    info = json.loads((dataset / "meta/info.json").read_text())
    info["codebase_version"] = "v2.1"
    (dataset / "meta/info.json").write_text(json.dumps(info))
    with Store.open(tmp_path / "target") as store:
        with pytest.raises(DatasetError, match=r"v2\.1"):
            import_lerobot(store, dataset)
        with pytest.raises(DatasetError, match="missing"):
            import_lerobot(store, tmp_path)
        assert store.list_runs() == []


def test_export_refuses_mixed_episodes_and_a_used_folder(tmp_path: Path) -> None:
    with Store.open(tmp_path / "data") as store:
        a = record_sim_episode(store, "reach", seed=0, max_steps=2, image_size=(24, 32))
        b = record_sim_episode(store, "reach", seed=0, max_steps=2, image_size=(32, 32))
        with pytest.raises(DatasetError, match="one feature set"):
            export_lerobot(store, [a, b], tmp_path / "out")
        assert not (tmp_path / "out").exists()
        (tmp_path / "used").mkdir()
        (tmp_path / "used" / "keep.txt").write_text("mine")
        with pytest.raises(DatasetError, match="not empty"):
            export_lerobot(store, [a], tmp_path / "used")
        assert (tmp_path / "used" / "keep.txt").read_text() == "mine"


def _pandas_indexed_tasks(path: Path, tasks: list[str]) -> None:
    """tasks.parquet as LeRobot's writer leaves it: a pandas DataFrame indexed by the task
    text (`pd.DataFrame({"task_index": ...}, index=tasks).to_parquet(...)`), the unnamed
    index stored as `__index_level_0__`."""
    meta = {"index_columns": ["__index_level_0__"], "column_indexes": [],
            "columns": [{"name": "task_index", "field_name": "task_index",
                         "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
                        {"name": None, "field_name": "__index_level_0__",
                         "pandas_type": "unicode", "numpy_type": "object", "metadata": None}],
            "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": "2.2.0"}
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "__index_level_0__": pa.array(tasks, pa.string())})
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps(meta).encode()}), path)


def test_tasks_kept_in_a_pandas_index_as_lerobot_writes_them_import(exported,
                                                                   tmp_path: Path) -> None:
    dataset = _copy(exported[2], tmp_path)
    (dataset / "meta/robolearn.json").unlink()  # a dataset LeRobot wrote has none
    texts = ["pick up the cube", "move the gripper to the green ball"]
    _pandas_indexed_tasks(dataset / "meta/tasks.parquet", texts)
    with Store.open(tmp_path / "target") as target:
        report = import_lerobot(target, dataset)
        tasks = [target.load_episode(i).record.task for i in report.episode_ids]
    # A text that is a sim task's description imports as that task; others stay texts.
    assert tasks == ["pick up the cube", "reach"]

    # Neither a task column nor an index of texts: refused by name, nothing imported.
    pq.write_table(pa.table({"task_index": pa.array([0, 1], pa.int64())}),
                   dataset / "meta/tasks.parquet")
    with Store.open(tmp_path / "refused") as target:
        with pytest.raises(DatasetError, match="no task text"):
            import_lerobot(target, dataset)
        assert target.list_episodes(status=None) == []


def test_episode_ends_sit_on_the_last_recorded_frame(exported) -> None:
    source_dir, ids, dataset = exported
    data = pq.read_table(dataset / "data/chunk-000/file-000.parquet").to_pydict()
    with Store.open(source_dir) as source:
        first = source.load_episode(ids[0])
    steps = first.num_steps
    assert first.record.outcome == "success"
    assert data["frame_index"][:steps] == list(range(steps))  # no extra copied frame
    assert data["next.done"][:steps] == [False] * (steps - 1) + [True]
    assert data["next.success"][steps - 1] is True
    assert data["next.reward"][steps - 1] == 1.0
    np.testing.assert_array_equal(np.asarray(data["action"][:steps], np.float32),
                                  first.arrays["action"])


def test_statistics_are_lerobots_per_episode_and_whole(exported) -> None:
    _, _, dataset = exported
    info = json.loads((dataset / "meta/info.json").read_text())
    stats = json.loads((dataset / "meta/stats.json").read_text())
    episodes = pq.read_table(dataset / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for key in info["features"]:
        assert set(stats[key]) == set(STAT_NAMES), key
        for name in STAT_NAMES:
            assert all(f"stats/{key}/{name}" in e for e in episodes), (key, name)
    image = stats["observation.images.front"]
    assert np.asarray(image["q01"]).shape == (3, 1, 1)
    assert np.all(np.asarray(image["q01"]) <= np.asarray(image["q99"]))
    state = np.asarray([e["stats/observation.state/max"] for e in episodes])
    np.testing.assert_allclose(stats["observation.state"]["max"], state.max(axis=0))
    assert stats["observation.state"]["count"] == [info["total_frames"]]


def test_default_video_round_trip_is_close(exported, tmp_path: Path) -> None:
    source_dir, ids, dataset = exported
    info = json.loads((dataset.parent / "lossy/meta/info.json").read_text())
    assert info["features"]["observation.images.front"]["info"]["video.pix_fmt"] == "yuv420p"
    with Store.open(tmp_path / "target") as target, Store.open(source_dir) as source:
        report = import_lerobot(target, dataset.parent / "lossy")
        for old_id, new_id in zip(ids, report.episode_ids, strict=True):
            old, new = source.load_episode(old_id), target.load_episode(new_id)
            for key, array in old.arrays.items():
                if key.startswith("images_"):
                    error = np.abs(new.arrays[key].astype(int) - array.astype(int))
                    assert error.mean() < 4.0, key
                else:
                    np.testing.assert_array_equal(new.arrays[key], array, err_msg=key)


def test_sizes_that_do_not_fit_the_robot_import_nothing(exported, tmp_path: Path) -> None:
    _, _, dataset = exported
    with Store.open(tmp_path / "target") as store:
        with pytest.raises(DatasetError, match=r"robot's action has 5 values.*--map action="):
            import_lerobot(store, dataset, spec=RobotSpec(proprio_dim=8, action_dim=5))
        with pytest.raises(DatasetError, match=r"camera 'top' is not in the dataset"):
            import_lerobot(store, dataset, spec=RobotSpec(8, 4, {"top": (24, 32)}))
        with pytest.raises(DatasetError, match=r"the learner would refuse"):
            import_lerobot(store, dataset, spec=RobotSpec(8, 4, {"front": (84, 84)}))
        assert store.list_runs() == [] and store.list_episodes(status=None) == []

        # An explicit map makes it fit: the first 6 proprio values, 4 of the 4 action values.
        report = import_lerobot(store, dataset, spec=RobotSpec(6, 4, {"front": (24, 32)}),
                                feature_map=FeatureMap.parse(["proprio=observation.state[0:6]",
                                                              "camera.front=observation.images.front"]))
        episode = store.load_episode(report.episode_ids[0])
    assert episode.arrays["proprio"].shape[1] == 6 and episode.record.cameras == ("front",)


def test_task_texts_map_to_a_store_task(exported, tmp_path: Path) -> None:
    _, _, dataset = exported
    with Store.open(tmp_path / "target") as store:
        report = import_lerobot(store, dataset, tasks={"*": "pick_cube"})
        assert {store.get_episode(i).task for i in report.episode_ids} == {"pick_cube"}
        report = import_lerobot(store, dataset,
                                tasks={"move the gripper to the green ball": "reach_far"})
        assert [store.get_episode(i).task for i in report.episode_ids] == ["pick_cube",
                                                                          "reach_far"]
        runs = len(store.list_runs())
        with pytest.raises(DatasetError, match="does not have"):
            import_lerobot(store, dataset, tasks={"stack the cups": "stack"})
        assert len(store.list_runs()) == runs
