"""ReplayBuffer: stacking, ring overwrite, n-step, sequences, demo routing, store loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robolearn.learn.batch import ObsSpec
from robolearn.learn.replay import (
    DemoAndOnline,
    ReplayBuffer,
    ReplayEpisode,
    append_loaded,
    load_from_store,
    read_store_episodes,
    relabel_success,
)
from robolearn.store import Store

HW = (2, 2)


def _spec(frame_stack: int = 1, cameras: tuple[str, ...] = ("cam",)) -> ObsSpec:
    return ObsSpec(cameras=cameras, image_hw=HW, frame_stack=frame_stack, low_dim=1)


def _episode(code: int, steps: int, cameras: tuple[str, ...] = ("cam",)) -> dict:
    """Frames and low-dim carry `code + step` (frames mod 256); actions the step index."""
    values = code + np.arange(steps + 1)
    images = {
        c: np.broadcast_to(values[:, None, None, None] % 256, (steps + 1, *HW, 3)).astype(np.uint8)
        for c in cameras
    }
    return {
        "images": images,
        "low_dim": values[:, None].astype(np.float32),
        "action": np.repeat(np.arange(steps, dtype=np.float32)[:, None], 2, axis=1),
        "reward": np.arange(1, steps + 1, dtype=np.float32),
    }


def _stream(buffer: ReplayBuffer | DemoAndOnline, code: int, steps: int, *,
            terminated: bool, intervention: tuple[int, ...] = ()) -> None:
    ep = _episode(code, steps)
    buffer.start_episode({"cam": ep["images"]["cam"][0]}, ep["low_dim"][0])
    for t in range(steps):
        end = t == steps - 1
        buffer.add(ep["action"][t], float(ep["reward"][t]), {"cam": ep["images"]["cam"][t + 1]},
                   ep["low_dim"][t + 1], terminated=end and terminated,
                   truncated=end and not terminated, intervention=t in intervention)


def _check_stacks(batch, frame_stack: int, codes: dict[int, int]) -> np.ndarray:
    """Every stacked frame equals code + max(step - k, 0) of its own episode.

    `codes` maps an episode code (multiple of 100) to its length. Returns the steps t.
    """
    low = batch.low_dim_obs.numpy()  # [B, S]
    nxt = batch.next_low_dim_obs.numpy()
    rgb = batch.rgb_obs.numpy()[:, 0, :, 0, 0].reshape(len(low), frame_stack, 3)  # [B, S, 3]
    nrgb = batch.next_rgb_obs.numpy()[:, 0, :, 0, 0].reshape(len(low), frame_stack, 3)
    current = low[:, -1].astype(int)
    code, step = current // 100 * 100, current % 100
    for row in range(len(low)):
        assert code[row] in codes, f"sampled evicted episode {code[row]}"
        assert step[row] < codes[code[row]]
        expect = code[row] + np.maximum(step[row] - np.arange(frame_stack - 1, -1, -1), 0)
        np.testing.assert_array_equal(low[row], expect)
        np.testing.assert_array_equal(rgb[row], np.repeat(expect[:, None], 3, 1) % 256)
        next_step = int(nxt[row, -1]) - code[row]
        assert 1 <= next_step <= codes[code[row]]
        expect_next = code[row] + np.maximum(next_step - np.arange(frame_stack - 1, -1, -1), 0)
        np.testing.assert_array_equal(nxt[row], expect_next)
        np.testing.assert_array_equal(nrgb[row], np.repeat(expect_next[:, None], 3, 1) % 256)
    return step


def test_frame_stack_never_crosses_episode_start():
    buffer = ReplayBuffer(_spec(frame_stack=4), action_dim=2, capacity=100, seed=0)
    lengths = {100: 2, 200: 6, 300: 1}
    for code, steps in lengths.items():
        buffer.add_episode(**_episode(code, steps), terminated=False)
    _stream(buffer, 400, 5, terminated=True)
    lengths[400] = 5
    assert len(buffer) == 14 and buffer.num_episodes == 4
    batch = buffer.sample(400)
    assert batch.rgb_obs.shape == (400, 1, 12, *HW) and batch.rgb_obs.dtype == torch.uint8
    assert batch.low_dim_obs.shape == (400, 4)
    steps = _check_stacks(batch, 4, lengths)
    assert set(steps.tolist()) == set(range(6))


def test_ring_overwrite_evicts_whole_episodes():
    buffer = ReplayBuffer(_spec(frame_stack=3), action_dim=2, capacity=13, nstep=2, seed=1)
    for i in range(1, 9):
        if i % 2:
            buffer.add_episode(**_episode(100 * i, 4), terminated=True)
        else:
            _stream(buffer, 100 * i, 4, terminated=False)
        # 5 slots per episode: the newest two fit in 13 slots, a third would be partial.
        live = {100 * j: 4 for j in range(max(1, i - 1), i + 1)}
        assert buffer.num_episodes == len(live)
        assert len(buffer) == 4 * len(live)
        _check_stacks(buffer.sample(200), 3, live)


def test_streaming_transitions_become_sampleable_after_nstep():
    buffer = ReplayBuffer(_spec(), action_dim=2, capacity=50, nstep=3, seed=0)
    ep = _episode(100, 5)
    buffer.start_episode({"cam": ep["images"]["cam"][0]}, ep["low_dim"][0])
    seen = []
    for t in range(5):
        buffer.add(ep["action"][t], 1.0, {"cam": ep["images"]["cam"][t + 1]}, ep["low_dim"][t + 1],
                   terminated=False, truncated=t == 4)
        seen.append(len(buffer))
    assert seen == [0, 0, 1, 2, 5]
    with pytest.raises(ValueError, match="before start_episode"):
        buffer.add(ep["action"][0], 1.0, {"cam": ep["images"]["cam"][0]}, ep["low_dim"][0],
                   terminated=False, truncated=False)


def _expected_nstep(rewards, terminated: bool, t: int, n: int, gamma: float):
    T = len(rewards)  # noqa: N806
    steps = min(n, T - t)
    reward = sum(gamma**k * rewards[t + k] for k in range(steps))
    discount = 0.0 if terminated and t + steps == T else gamma**steps
    return reward, discount, t + steps


@pytest.mark.parametrize("terminated", [True, False])
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_nstep_returns_and_discounts(terminated, steps):
    n, gamma = 3, 0.5
    buffer = ReplayBuffer(_spec(frame_stack=2), action_dim=2, capacity=40, nstep=n,
                          discount=gamma, seed=3)
    ep = _episode(100, steps)
    buffer.add_episode(**ep, terminated=terminated)
    batch = buffer.sample(300)
    t = batch.low_dim_obs[:, -1].numpy().astype(int) - 100
    assert set(t.tolist()) == set(range(steps))
    for row in range(300):
        reward, discount, next_t = _expected_nstep(ep["reward"], terminated, t[row], n, gamma)
        assert batch.reward[row].item() == pytest.approx(reward)
        assert batch.discount[row].item() == pytest.approx(discount)
        assert int(batch.next_low_dim_obs[row, -1]) - 100 == next_t
    if terminated:  # the success step never bootstraps
        assert (batch.discount[t == steps - 1] == 0).all()
    _check_stacks(batch, 2, {100: steps})


def test_nstep_one_terminal_success_has_zero_discount():
    buffer = ReplayBuffer(_spec(), action_dim=2, capacity=20, seed=0, discount=0.9)
    _stream(buffer, 100, 3, terminated=True)
    batch = buffer.sample(100)
    t = batch.low_dim_obs[:, 0].numpy().astype(int) - 100
    expected = np.where(t == 2, 0.0, 0.9)
    np.testing.assert_allclose(batch.discount.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(batch.reward.numpy(), t + 1)


def test_action_sequence_padded_past_the_end():
    K = 4  # noqa: N806
    buffer = ReplayBuffer(_spec(), action_dim=2, capacity=40, action_sequence=K, seed=0)
    buffer.add_episode(**_episode(100, 6), terminated=True)
    _stream(buffer, 200, 2, terminated=False)
    batch = buffer.sample(300)
    assert batch.action.shape == (300, K, 2)
    current = batch.low_dim_obs[:, 0].numpy().astype(int)
    length = np.where(current >= 200, 2, 6)
    t = current % 100
    expected = np.minimum(t[:, None] + np.arange(K), length[:, None] - 1)  # [B, K]
    np.testing.assert_array_equal(batch.action[..., 0].numpy(), expected)
    np.testing.assert_array_equal(batch.action[..., 1].numpy(), expected)


def test_demo_and_online_batch_composition_and_routing():
    spec = _spec(frame_stack=2)
    online = ReplayBuffer(spec, action_dim=2, capacity=100, seed=0)
    demos = ReplayBuffer(spec, action_dim=2, capacity=100, seed=1, is_demo=True)
    sampler = DemoAndOnline(online, demos, batch_size=16, demo_batch_size=8)
    _stream(sampler, 100, 5, terminated=False)  # plain failure: not a demo
    assert demos.num_episodes == 0
    online_only = sampler.sample()
    assert online_only.size == 16 and not online_only.is_demo.any()

    _stream(sampler, 200, 4, terminated=False, intervention=(1, 2))
    assert demos.num_episodes == 1 and len(demos) == 2  # only intervention steps sampleable
    batch = sampler.sample()
    assert batch.size == 24 and batch.rgb_obs.shape == (24, 1, 6, *HW)
    assert batch.is_demo[16:].all()
    demo_steps = batch.low_dim_obs[16:, -1].numpy().astype(int)
    assert set(demo_steps.tolist()) <= {201, 202}
    online_codes = batch.low_dim_obs[:16, -1].numpy().astype(int)
    np.testing.assert_array_equal(
        batch.is_demo[:16].numpy(), np.isin(online_codes, [201, 202])
    )
    # Intervention rows keep their real history in the demo buffer.
    _check_stacks(batch, 2, {100: 5, 200: 4})

    _stream(sampler, 300, 3, terminated=True)  # success: relabelled into the demos
    assert demos.num_episodes == 2 and len(demos) == 5
    assert not relabel_success(online, demos, key=0)  # a failure is never relabelled
    many = demos.sample(200)
    codes = many.low_dim_obs[:, -1].numpy().astype(int)
    assert set(codes.tolist()) == {201, 202, 300, 301, 302}
    terminal = codes == 302
    assert (many.discount[terminal] == 0).all() and many.is_demo.all()


def test_add_rejects_wrong_shapes_and_dtypes():
    buffer = ReplayBuffer(_spec(), action_dim=2, capacity=10)
    good = np.zeros((*HW, 3), np.uint8)
    with pytest.raises(ValueError, match=r"rgb\['cam'\] must be uint8 \(2, 2, 3\).*float32"):
        buffer.start_episode({"cam": good.astype(np.float32)}, np.zeros(1))
    with pytest.raises(ValueError, match="one image per camera"):
        buffer.start_episode({"other": good}, np.zeros(1))
    with pytest.raises(ValueError, match=r"low_dim must be a float array of shape \(1,\)"):
        buffer.start_episode({"cam": good}, np.zeros(3))
    buffer.start_episode({"cam": good}, np.zeros(1))
    with pytest.raises(ValueError, match=r"action must be .* shape \(2,\), got float64 \(3,\)"):
        buffer.add(np.zeros(3), 0.0, {"cam": good}, np.zeros(1), terminated=False,
                   truncated=False)
    ep = _episode(0, 3)
    ep["reward"] = ep["reward"][:2]
    with pytest.raises(ValueError, match=r"reward must be numeric \(3,\)"):
        buffer.add_episode(**ep, terminated=True)
    with pytest.raises(ValueError, match="raise capacity"):
        buffer.add_episode(**_episode(0, 12), terminated=True)
    with pytest.raises(ValueError, match="empty buffer"):
        ReplayBuffer(_spec(), action_dim=2, capacity=10).sample(4)


CAMERAS = ("front", "wrist")


def _frame(step: int, camera: int) -> np.ndarray:
    """Channel c of camera v at step t holds 10·t + c + 100·v, plus one marked pixel, so
    an HWC→CHW or H/W mix-up shows."""
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., :] = 10 * step + np.arange(3) + 100 * camera
    image[1, 2, 0] = 255  # one marked pixel: H/W order is checked
    return image


def _write_episodes(store: Store) -> list[int]:
    run_id = store.create_run("cqn", {})
    specs = [  # (is_demo, steps, outcome, intervention steps)
        (True, 3, "success", ()),
        (False, 4, "failure", (1, 2)),
        (False, 2, "success", ()),
    ]
    ids = []
    for is_demo, steps, outcome, intervention in specs:
        writer = store.begin_episode(run_id, "pick_cube", list(CAMERAS), is_demo=is_demo)
        for t in range(steps):
            writer.add_step({c: _frame(t, v) for v, c in enumerate(CAMERAS)},
                            np.full(3, t, np.float32), np.full(2, t, np.float32), float(t),
                            success=outcome == "success" and t == steps - 1,
                            intervention=t in intervention)
        ids.append(writer.finish({c: _frame(steps, v) for v, c in enumerate(CAMERAS)},
                                 np.full(3, steps, np.float32), outcome))
    return ids


def _buffers(capacity: int = 50) -> tuple[ReplayBuffer, ReplayBuffer]:
    spec = ObsSpec(cameras=CAMERAS, image_hw=(4, 6), frame_stack=2, low_dim=3)
    return (ReplayBuffer(spec, 2, capacity, seed=0),
            ReplayBuffer(spec, 2, capacity, seed=1, is_demo=True))


def test_load_from_store_round_trip(tmp_path):
    with Store.open(tmp_path) as store:
        ids = _write_episodes(store)
        online, demos = _buffers()
        assert load_from_store(store, online, demos, task="pick_cube", cameras=CAMERAS) == 3
        assert online.episode_ids == ids and len(online) == 9
        # demo success, the failure's two intervention steps, the relabelled success
        assert demos.episode_ids == ids and len(demos) == 3 + 2 + 2
        assert load_from_store(store, online, demos, cameras=CAMERAS, skip_ids=set(ids)) == 0

    batch = DemoAndOnline(online, demos, 64, 64).sample()
    assert batch.rgb_obs.shape == (128, 2, 6, 4, 6)
    assert batch.low_dim_obs.shape == (128, 6) and batch.action.shape == (128, 2)
    assert batch.is_demo[64:].all()
    t = batch.low_dim_obs[:, -1].numpy().astype(int)
    np.testing.assert_array_equal(batch.action[:, 0].numpy(), t)
    for v in range(2):
        for c in range(3):
            np.testing.assert_array_equal(batch.rgb_obs[:, v, 3 + c, 0, 0].numpy(),
                                          10 * t + c + 100 * v)
            np.testing.assert_array_equal(batch.next_rgb_obs[:, v, 3 + c, 0, 0].numpy(),
                                          10 * (t + 1) + c + 100 * v)
    assert (batch.rgb_obs[:, :, 3, 1, 2] == 255).all()  # marked pixel, channel 0 at (1, 2)
    # The terminal steps of the successes (t=2 of the demo, t=1 of the online success)
    # never bootstrap; the failure's last step (t=3) does.
    last = batch.discount.numpy()[t == 3]
    assert (last > 0).all()


def test_state_dict_round_trip_restores_the_index(tmp_path):
    with Store.open(tmp_path) as store:
        ids = _write_episodes(store)
        online, demos = _buffers(capacity=9)  # the oldest episode (4 slots) gets evicted
        load_from_store(store, online, demos, cameras=CAMERAS)
        assert online.episode_ids == ids[1:]
        states = online.state_dict(), demos.state_dict()

        restored_online, restored_demos = _buffers(capacity=9)
        restored_online.load_state_dict(states[0])
        restored_demos.load_state_dict(states[1])
        held = set(online.episode_ids) | set(demos.episode_ids)
        assert load_from_store(
            store, restored_online, restored_demos, cameras=CAMERAS
        ) == len(held)
    assert restored_online.episode_ids == online.episode_ids
    assert restored_demos.episode_ids == demos.episode_ids
    assert restored_online.state_dict() == states[0]
    assert restored_demos.state_dict() == states[1]
    assert len(restored_online) == len(online) and len(restored_demos) == len(demos)
    with pytest.raises(ValueError, match="fresh buffer"):
        restored_online.load_state_dict(states[0])
    with pytest.raises(ValueError, match="capacity"):
        _buffers(capacity=10)[0].load_state_dict(states[0])


def test_state_only_buffer_and_pin_memory_flag():
    spec = ObsSpec(cameras=(), image_hw=(0, 0), frame_stack=3, low_dim=1)
    buffer = ReplayBuffer(spec, action_dim=2, capacity=20, seed=0)
    ep = _episode(100, 4)
    buffer.add_episode(None, ep["low_dim"], ep["action"], ep["reward"], terminated=True)
    batch = buffer.sample(32, pin_memory=True)  # no CUDA here: plain CPU tensors
    assert batch.rgb_obs is None and batch.low_dim_obs.shape == (32, 3)


def test_load_from_store_adds_the_late_shaping_values_of_the_step_rows(tmp_path):
    from robolearn.rewards.late_values import store_late_values, stored_late_delta

    with Store.open(tmp_path) as store:
        ids = _write_episodes(store)
        # A reward worker's values arrived after episode 2 (4 steps) was stored; one never came.
        store_late_values(store, ids[1], {0: {"frame_mean": 0.5}, 2: {"frame_mean": 1.0}})
        weights = {"frame_mean": 0.2}
        np.testing.assert_allclose(stored_late_delta(store, ids[1], weights, 4),
                                   [0.1, 0.0, 0.2, 0.0])
        online, demos = _buffers()
        load_from_store(store, online, demos, cameras=CAMERAS,
                        reward_delta=lambda eid, n: stored_late_delta(store, eid, weights, n))
    seq = online.episode_ids.index(ids[1])
    stored = np.arange(4, dtype=np.float32)  # _write_episodes' inline reward is t
    np.testing.assert_allclose(online.episode(online.episode_keys[seq]).reward,
                               stored + np.array([0.1, 0.0, 0.2, 0.0]))


def test_a_corrupt_episode_file_is_quarantined_and_the_others_load(tmp_path, caplog):
    with Store.open(tmp_path) as store:
        ids = _write_episodes(store)
        path = store.episode_file(store.get_episode(ids[1]))
        # The zip directory stays intact, a member's compressed data does not: np.load
        # raised zlib.error here, which no learner start survived.
        raw = bytearray(path.read_bytes())
        rng = np.random.default_rng(0)
        raw[100:-300] = rng.integers(0, 256, len(raw) - 400, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(raw))
        online, demos = _buffers()
        assert load_from_store(store, online, demos, cameras=CAMERAS) == 2
        assert online.episode_ids == [ids[0], ids[2]]
        assert not path.exists()
        moved = path.parent / "quarantine" / path.name
        assert moved.read_bytes() == bytes(raw)
        record = store.get_episode(ids[1])
        assert record.status == "incomplete" and record.end_reason.startswith("quarantined")
        assert f"episode {ids[1]}" in caplog.text and "quarantined" in caplog.text
        # The next start does not meet it again.
        assert [r.id for r in store.list_episodes()] == [ids[0], ids[2]]


def test_short_successes_and_one_step_interventions_stay_out_of_the_demos():
    spec = ObsSpec(cameras=("cam",), image_hw=HW, frame_stack=1, low_dim=1)
    online = ReplayBuffer(spec, 2, 200, seed=0)
    demos = ReplayBuffer(spec, 2, 200, seed=1, is_demo=True)
    sampler = DemoAndOnline(online, demos, 4, 4, min_demo_steps=3)
    _stream(sampler, 0, 1, terminated=True, intervention=(0,))  # one-step "success"
    _stream(sampler, 100, 6, terminated=False, intervention=(1, 4))  # stray flags
    assert demos.num_episodes == 0 and len(online) == 7
    _stream(sampler, 200, 6, terminated=False, intervention=(1, 2, 3))  # a real takeover
    assert demos.num_episodes == 1 and len(demos) == 3


def test_append_episode_takes_a_typed_episode_and_episode_reads_it_back():
    buffer = ReplayBuffer(_spec(frame_stack=2), action_dim=2, capacity=20, seed=0)
    ep = _episode(100, 4)
    frames = ep["images"]["cam"].transpose(0, 3, 1, 2)[:, None]  # [T+1, V, 3, H, W]
    typed = ReplayEpisode(frames, ep["low_dim"], ep["action"], ep["reward"], terminated=True,
                          intervention=np.array([0, 1, 1, 0], bool), episode_id=42)
    key = buffer.append_episode(typed, sample_mask=np.array([1, 1, 0, 1], bool))
    assert buffer.episode_keys == [key] and buffer.last_finished == key
    assert len(buffer) == 3 and buffer.episode_ids == [42]
    back = buffer.episode(key)
    for name in ("frames", "low_dim", "action", "reward", "intervention"):
        np.testing.assert_array_equal(getattr(back, name), getattr(typed, name))
    assert back.terminated and back.episode_id == 42 and back.num_steps == 4
    steps = buffer.sample(64).low_dim_obs[:, -1].numpy().astype(int)
    assert set(steps.tolist()) == {100, 101, 103}  # step 2 is context only

    bad = ReplayEpisode(frames[:, :, :, :1], ep["low_dim"], ep["action"], ep["reward"], True)
    with pytest.raises(ValueError, match="frames must be uint8"):
        buffer.append_episode(bad)
    assert buffer.episode_keys == [key]  # nothing written

    # A streaming episode has a key at once but reads back only when it has finished.
    buffer.start_episode({"cam": ep["images"]["cam"][0]}, ep["low_dim"][0])
    streaming = buffer.episode_keys[-1]
    assert buffer.episode(streaming) is None
    assert buffer.add(ep["action"][0], 1.0, {"cam": ep["images"]["cam"][1]}, ep["low_dim"][1],
                      terminated=False, truncated=True) == streaming
    assert buffer.episode(streaming).num_steps == 1


def test_reading_the_store_and_appending_are_separate_steps(tmp_path):
    with Store.open(tmp_path) as store:
        ids = _write_episodes(store)
        online, demos = _buffers()
        read = list(read_store_episodes(store, online.obs_spec, cameras=CAMERAS,
                                        wanted=lambda i: i != ids[0]))
    assert [e.episode_id for e in read] == ids[1:] and len(online) == 0  # nothing appended
    failure, success = read
    assert failure.pixels.shape == (5, 2, 3, 4, 6) and failure.pixels.dtype == np.uint8
    assert not failure.success and success.success
    np.testing.assert_array_equal(failure.intervention, [False, True, True, False])
    np.testing.assert_array_equal(failure.low_dim[:, 0], [0, 1, 2, 3, 4])

    assert append_loaded(online, demos, failure) and append_loaded(online, demos, success)
    assert online.episode_ids == ids[1:] and len(online) == 4 + 2
    assert len(demos) == 2 + 2  # the failure's intervention steps, the success whole


def test_no_replay_module_reaches_into_another_objects_private_members():
    """The package's modules (and the learner's episode assembler) meet on public names
    only: `x._name` is allowed on `self` alone."""
    import ast
    from pathlib import Path

    import robolearn.learn.episodes
    import robolearn.learn.replay

    package = Path(robolearn.learn.replay.__file__).parent
    sources = [*sorted(package.glob("*.py")), Path(robolearn.learn.episodes.__file__)]
    found = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id == "self")):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert len(sources) >= 7 and found == []
