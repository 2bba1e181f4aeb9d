"""Recording, reading back, refusing bad input and surviving write failures."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import pytest

from robolearn.errors import StoreError
from robolearn.store import EpisodeRecord, EpisodeWriter, Store, write_npz
from robolearn.store.models import Step

from .conftest import CAMERAS, observation, record


def files_of(store: Store, run_id: int) -> list[str]:
    run_dir = store.data_dir / "episodes" / str(run_id)
    return sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else []


def test_episode_reads_back_identical(store: Store, run_id: int) -> None:
    rng = np.random.default_rng(0)
    writer = store.begin_episode(
        run_id, "pick_cube", CAMERAS, seed=7, policy="cqn@100", direction="forward"
    )
    assert store.get_episode(writer.episode_id).status == "recording"
    episode_id, expected = record(writer, 6, rng)

    data = store.load_episode(episode_id)
    assert set(data.arrays) == set(expected)
    for key, array in expected.items():
        assert data.arrays[key].dtype == array.dtype, key
        np.testing.assert_array_equal(data.arrays[key], array, err_msg=key)
    assert data.images("wrist_cam").shape == (7, 84, 84, 3)

    record_ = store.get_episode(episode_id)
    assert record_ == data.record == writer.record
    assert isinstance(record_, EpisodeRecord)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record_.status = "aborted"  # type: ignore[misc]
    assert (record_.run_id, record_.task, record_.seed, record_.policy) == (
        run_id,
        "pick_cube",
        7,
        "cqn@100",
    )
    assert (record_.direction, record_.is_demo, record_.cameras) == (
        "forward",
        False,
        tuple(CAMERAS),
    )
    assert (record_.status, record_.outcome, record_.end_reason) == ("complete", "success", "test")
    assert record_.num_steps == 6 and record_.has_intervention
    assert record_.npz_path == f"episodes/{run_id}/{episode_id}.npz"
    assert record_.finished_at >= record_.created_at
    assert store.list_episodes(run_id=run_id) == [record_]

    with store.session() as session:
        steps = session.query(Step).filter_by(episode_id=episode_id).order_by(Step.index).all()
    assert [s.index for s in steps] == list(range(6))
    np.testing.assert_allclose([s.reward for s in steps], expected["reward"], rtol=1e-6)
    assert [s.success for s in steps] == expected["success"].tolist()
    assert [s.intervention for s in steps] == expected["intervention"].tolist()
    np.testing.assert_allclose([s.success_prob for s in steps], expected["reward"] / 2, rtol=1e-6)
    assert steps[0].scalars == {"latency_ms": 3.5}
    assert [s.stamp_ns for s in steps] == expected["stamp_ns"].tolist()


@pytest.mark.parametrize("size", [(84, 84), (45, 61)])
def test_video_is_h264_with_every_frame(store: Store, run_id: int, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    episode_id, _ = record(store.begin_episode(run_id, "pick", CAMERAS, fps=15), 5, rng, size=size)
    even = (size[0] + size[0] % 2, size[1] + size[1] % 2)
    for camera in CAMERAS:
        path = store.video_path(episode_id, camera)
        assert path.name == f"{episode_id}_{camera}.mp4"
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert stream.average_rate == 15
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert len(frames) == 6
        assert {f.shape for f in frames} == {(*even, 3)}
        head = path.read_bytes()
        assert head.find(b"moov") < head.find(b"mdat"), "+faststart: index before the media data"


def test_list_episodes_filters(store: Store, run_id: int) -> None:
    rng = np.random.default_rng(2)
    demo, _ = record(store.begin_episode(run_id, "pick", [], is_demo=True), 2, rng)
    other, _ = record(store.begin_episode(run_id, "place", []), 2, rng, outcome="failure")
    store.begin_episode(run_id, "pick", []).abort("operator pressed stop")
    assert [e.id for e in store.list_episodes()] == [demo, other]
    assert [e.id for e in store.list_episodes(task="pick")] == [demo]
    assert [e.id for e in store.list_episodes(is_demo=False)] == [other]
    assert [e.id for e in store.list_episodes(limit=1)] == [demo]
    assert [e.status for e in store.list_episodes(status=None)] == [
        "complete",
        "complete",
        "aborted",
    ]
    assert store.list_episodes(run_id=run_id + 1) == []
    aborted = store.list_episodes(status="aborted")[0]
    assert aborted.end_reason == "operator pressed stop"
    with pytest.raises(StoreError, match="only complete episodes"):
        store.load_episode(aborted.id)


def test_runs_and_audit(store: Store) -> None:
    run_id = store.create_run("r1", {"nested": {"x": [1, 2]}}, kind="real")
    store.end_run(run_id, "finished")
    (run,) = store.list_runs()
    assert (run.id, run.name, run.config, run.kind, run.status) == (
        run_id,
        "r1",
        {"nested": {"x": [1, 2]}},
        "real",
        "finished",
    )
    assert run.ended_at is not None and run.ended_at >= run.started_at
    with pytest.raises(StoreError, match="no such run"):
        store.end_run(999, "failed")
    with pytest.raises(StoreError, match="no such run"):
        store.begin_episode(999, "pick", [])
    assert store.audit("run.end", f"run:{run_id}", {"why": "done"}) > 0


def _writer(store: Store, run_id: int) -> tuple[EpisodeWriter, np.random.Generator]:
    writer = store.begin_episode(run_id, "pick", ["cam"])
    rng = np.random.default_rng(3)
    writer.add_step(observation(rng, ["cam"]), np.zeros(3), np.zeros(2), 0.0, False)
    return writer, rng


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"images": {"cam": np.zeros((84, 84, 3), np.float32)}}, "uint8"),
        ({"images": {"cam": np.zeros((84, 84), np.uint8)}}, "uint8"),
        ({"images": {"cam": np.zeros((64, 64, 3), np.uint8)}}, "same size"),
        ({"images": {"other": np.zeros((84, 84, 3), np.uint8)}}, "one image per camera"),
        ({"proprio": np.zeros(4)}, "earlier steps"),
        ({"proprio": np.array([0.0, np.nan, 0.0])}, "NaN or inf"),
        ({"action": np.array([np.inf, 0.0])}, "NaN or inf"),
        ({"action": np.array([1e39, 0.0])}, "NaN or inf"),
        ({"action": np.zeros((2, 1))}, "1-D"),
        ({"reward": float("nan")}, "finite"),
        ({"success": 1}, "bool"),
        ({"scalars": {"q_value": float("inf")}}, "finite"),
    ],
)
def test_bad_step_is_refused_and_changes_nothing(
    store: Store, run_id: int, change: dict, message: str
) -> None:
    writer, rng = _writer(store, run_id)
    step = {
        "images": observation(rng, ["cam"]),
        "proprio": np.zeros(3),
        "action": np.zeros(2),
        "reward": 1.0,
        "success": True,
    }
    with pytest.raises(StoreError, match=message):
        writer.add_step(**{**step, **change})
    assert writer.num_steps == 1 and not writer.closed
    writer.add_step(**step)  # still usable
    episode_id = writer.finish(observation(rng, ["cam"]), np.zeros(3), "success")
    assert store.load_episode(episode_id).arrays["action"].shape == (2, 2)


def test_zero_step_episode_is_refused_and_aborted(store: Store, run_id: int) -> None:
    writer = store.begin_episode(run_id, "pick", ["cam"])
    rng = np.random.default_rng(4)
    with pytest.raises(StoreError, match="zero steps"):
        writer.finish(observation(rng, ["cam"]), np.zeros(3), "success")
    record_ = store.get_episode(writer.episode_id)
    assert record_.status == "aborted" and "zero steps" in record_.end_reason
    assert files_of(store, run_id) == []
    with pytest.raises(StoreError, match="already finished"):
        writer.add_step(observation(rng, ["cam"]), np.zeros(3), np.zeros(2), 0.0, False)


def test_bad_outcome_aborts(store: Store, run_id: int) -> None:
    writer, rng = _writer(store, run_id)
    with pytest.raises(StoreError, match="outcome must be one of"):
        writer.finish(observation(rng, ["cam"]), np.zeros(3), "won")
    assert store.get_episode(writer.episode_id).status == "aborted"


def test_leaving_the_with_block_aborts(store: Store, run_id: int) -> None:
    with pytest.raises(RuntimeError), store.begin_episode(run_id, "pick", []) as writer:
        raise RuntimeError("e-stop")
    record_ = store.get_episode(writer.episode_id)
    assert (record_.status, record_.end_reason) == ("aborted", "RuntimeError: e-stop")


class FailingNpzWriter:
    """Writes part of the file, then fails like a full disk."""

    def __init__(self) -> None:
        self.fail = False

    def __call__(self, file: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
        if self.fail:
            file.write(b"PK\x03\x04 half a zip")
            raise OSError(28, "No space left on device")
        write_npz(file, arrays)


def test_write_failure_loses_nothing_earlier(tmp_path: Path) -> None:
    npz_writer = FailingNpzWriter()
    rng = np.random.default_rng(5)
    with Store.open(tmp_path, npz_writer=npz_writer) as store:
        run_id = store.create_run("r", {})
        good, expected = record(store.begin_episode(run_id, "pick", CAMERAS), 3, rng)
        before = files_of(store, run_id)
        npz_writer.fail = True
        writer = store.begin_episode(run_id, "pick", CAMERAS)
        with pytest.raises(StoreError, match="No space left on device") as info:
            record(writer, 3, rng)
        assert isinstance(info.value.__cause__, OSError)
        failed = store.get_episode(writer.episode_id)
        assert failed.status == "incomplete" and "No space left" in failed.end_reason
        assert files_of(store, run_id) == before  # no temp, no lock, no partial files
        assert store.count_steps(writer.episode_id) == 0
        assert [e.id for e in store.list_episodes()] == [good]
        np.testing.assert_array_equal(store.load_episode(good).arrays["action"], expected["action"])
        npz_writer.fail = False
        again, _ = record(store.begin_episode(run_id, "pick", CAMERAS), 2, rng)
        assert [e.id for e in store.list_episodes()] == [good, again]


def test_video_failure_removes_the_npz_too(tmp_path: Path) -> None:
    def broken_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
        path.write_bytes(b"partial")
        raise RuntimeError("encoder crashed")

    with Store.open(tmp_path, video_writer=broken_video) as store:
        run_id = store.create_run("r", {})
        writer = store.begin_episode(run_id, "pick", ["cam"])
        with pytest.raises(StoreError, match="encoder crashed"):
            record(writer, 2, np.random.default_rng(6))
        assert store.get_episode(writer.episode_id).status == "incomplete"
        assert files_of(store, run_id) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder(store: Store, run_id: int) -> None:
    rng = np.random.default_rng(7)
    good, _ = record(store.begin_episode(run_id, "pick", ["cam"]), 2, rng)
    writer = store.begin_episode(run_id, "pick", ["cam"])
    run_dir = store.data_dir / "episodes" / str(run_id)
    run_dir.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="incomplete"):
            record(writer, 2, rng)
    finally:
        run_dir.chmod(0o755)
    assert store.get_episode(writer.episode_id).status == "incomplete"
    assert store.load_episode(good).num_steps == 2


def test_corrupt_or_missing_file_is_a_store_error(store: Store, run_id: int) -> None:
    rng = np.random.default_rng(8)
    first, _ = record(store.begin_episode(run_id, "pick", ["cam"]), 2, rng)
    second, _ = record(store.begin_episode(run_id, "pick", ["cam"]), 2, rng)
    path = store.data_dir / store.get_episode(first).npz_path
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(StoreError, match="corrupt"):
        store.load_episode(first)
    (store.data_dir / store.get_episode(second).npz_path).unlink()
    with pytest.raises(StoreError, match="missing"):
        store.load_episode(second)
    with pytest.raises(StoreError, match="no such episode"):
        store.load_episode(12345)
    with pytest.raises(StoreError, match="no camera"):
        store.video_path(first, "nope")


def test_recover_marks_dead_writers_and_spares_live_ones(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    with Store.open(tmp_path) as first:
        run_id = first.create_run("r", {})
        done, _ = record(first.begin_episode(run_id, "pick", ["cam"]), 2, rng)
        live = first.begin_episode(run_id, "pick", ["cam"])
        live.add_step(observation(rng, ["cam"]), np.zeros(3), np.zeros(2), 0.0, False)
        run_dir = tmp_path / "episodes" / str(run_id)
        (run_dir / f"{live.episode_id}.npz.tmp").write_bytes(b"in progress")
        # A second process opening the same store must not touch the live writer's episode.
        with Store.open(tmp_path) as second:
            assert second.recover() == 0
            assert second.get_episode(live.episode_id).status == "recording"
            assert (run_dir / f"{live.episode_id}.npz.tmp").exists()
        (run_dir / f"{live.episode_id}.npz.tmp").unlink()
        live_id = live.finish(observation(rng, ["cam"]), np.zeros(3), "timeout")

        # Simulate a writer that died: a recording row, no lock holder, temp files left.
        dead = first.begin_episode(run_id, "pick", ["cam"])
        dead._lock.release(unlink=False)  # what the kernel does when the process dies
        for name in (f"{dead.episode_id}.npz.tmp", f"{dead.episode_id}_cam.mp4.tmp", "77.npz.tmp"):
            (run_dir / name).write_bytes(b"junk")
        assert first.recover() == 1
        assert first.get_episode(dead.episode_id).status == "incomplete"
        assert first.recover() == 0
        assert sorted(files_of(first, run_id)) == sorted(
            [f"{i}{s}" for i in (done, live_id) for s in (".npz", "_cam.mp4")]
        )
        assert {e.id for e in first.list_episodes()} == {done, live_id}


def test_one_writer_thread_with_readers(store: Store, run_id: int) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                for record_ in store.list_episodes(run_id=run_id):
                    assert store.load_episode(record_.id).num_steps == 3
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        rng = np.random.default_rng(10)
        for _ in range(5):
            record(store.begin_episode(run_id, "pick", ["cam"]), 3, rng)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert errors == []
    assert len(store.list_episodes()) == 5


def test_close_aborts_open_writers(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    run_id = store.create_run("r", {})
    writer = store.begin_episode(run_id, "pick", [])
    store.close()
    with Store.open(tmp_path) as again:
        assert again.get_episode(writer.episode_id).status == "aborted"
    with pytest.raises(StoreError, match="after close"):
        store.list_runs()


def test_optional_world_state_round_trips_and_must_be_consistent(
    store: Store, run_id: int
) -> None:
    rng = np.random.default_rng(5)
    cams = ["front_cam"]
    writer = store.begin_episode(run_id, "pick_cube", cams)
    states = [rng.normal(size=6).astype(np.float32) for _ in range(4)]
    for s in states[:3]:
        writer.add_step(observation(rng, cams), np.zeros(7, np.float32),
                        np.zeros(4, np.float32), 0.0, False, state=s)
    with pytest.raises(StoreError, match="state given on some steps"):
        writer.add_step(observation(rng, cams), np.zeros(7, np.float32),
                        np.zeros(4, np.float32), 0.0, False)
    episode_id = writer.finish(observation(rng, cams), np.zeros(7, np.float32), "failure",
                               final_state=states[3])
    data = store.load_episode(episode_id)
    np.testing.assert_array_equal(data.arrays["state"], np.stack(states))
    # An episode without state has no state array.
    plain = store.begin_episode(run_id, "pick_cube", cams)
    plain.add_step(observation(rng, cams), np.zeros(7, np.float32), np.zeros(4, np.float32),
                   0.0, False)
    plain_id = plain.finish(observation(rng, cams), np.zeros(7, np.float32), "failure")
    assert "state" not in store.load_episode(plain_id).arrays
    # finish() without the final state when steps carried it is refused.
    w = store.begin_episode(run_id, "pick_cube", cams)
    w.add_step(observation(rng, cams), np.zeros(7, np.float32), np.zeros(4, np.float32), 0.0,
               False, state=states[0])
    with pytest.raises(StoreError, match="final_state"):
        w.finish(observation(rng, cams), np.zeros(7, np.float32), "failure")
