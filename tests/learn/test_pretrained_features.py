"""CQN on frozen pretrained features (CQNConfig.encoder "pretrained"): the replay's feature
cache, its memory per frame, updates, actor/learner agreement and the weights round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robolearn.config.cqn import CQNConfig
from robolearn.learn.batch import ObsSpec
from robolearn.learn.cqn import CQNAgent
from robolearn.learn.cqn.pretrained import PretrainedFeatures, SpatialSoftmaxPooling
from robolearn.learn.observation import FrameStacker
from robolearn.learn.replay import DemoAndOnline, ReplayBuffer, load_from_store
from robolearn.learn.weights import pack_policy, unpack_policy
from robolearn.sim.panda import PandaSim
from robolearn.store import Store

CAMERAS = ("front", "wrist")
SPEC = ObsSpec(cameras=CAMERAS, image_hw=(84, 84), frame_stack=2, low_dim=3)
STEPS = 6
SMALL = dict(encoder="pretrained", frame_stack=SPEC.frame_stack, feature_dim=16, hidden_dim=64,
             pooling_channels=8, spatial_embeddings=4, batch_size=16, demo_batch_size=0)


@pytest.fixture(scope="module")
def episode() -> dict[str, np.ndarray]:
    """STEPS + 1 rendered frames per camera of the scripted pick; low-dim holds the step."""
    sim = PandaSim("pick_cube", image_size=SPEC.image_hw, cameras=CAMERAS)
    sim.reset(seed=3)
    frames: dict[str, list[np.ndarray]] = {c: [] for c in CAMERAS}
    for t in range(STEPS + 1):
        for c in CAMERAS:
            frames[c].append(sim.render(c))
        if t < STEPS:
            for _ in range(3):  # ~0.3 s apart: frames that differ
                sim.step(sim.expert_action())
    sim.close()
    return {c: np.stack(f) for c, f in frames.items()}  # [T+1, H, W, 3] each


@pytest.fixture(scope="module")
def frozen() -> PretrainedFeatures:
    return PretrainedFeatures(SPEC.image_hw)


def _low_dim() -> np.ndarray:
    return np.repeat(np.arange(STEPS + 1, dtype=np.float32)[:, None], SPEC.low_dim, axis=1)


def _add(buffer: ReplayBuffer, episode: dict[str, np.ndarray], *, stream: bool) -> None:
    low, action = _low_dim(), np.zeros((STEPS, 2), np.float32)
    reward = np.linspace(0.0, 1.0, STEPS, dtype=np.float32)
    if not stream:
        buffer.add_episode(episode, low, action, reward, terminated=True)
        return
    buffer.start_episode({c: episode[c][0] for c in CAMERAS}, low[0])
    for t in range(STEPS):
        buffer.add(action[t], float(reward[t]), {c: episode[c][t + 1] for c in CAMERAS},
                   low[t + 1], terminated=t == STEPS - 1, truncated=False)


def _first_frames(buffer: ReplayBuffer) -> np.ndarray:
    """[T+1, V, *frame_shape]: what the buffer keeps of its oldest episode's frames."""
    return buffer.episode(buffer.episode_keys[0]).frames


def _frames_chw(episode: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([episode[c].transpose(0, 3, 1, 2) for c in CAMERAS], 1)  # [T+1, V, 3, H, W]


def test_the_frozen_model_is_cut_at_stride_16_and_its_quantisation_is_tight(frozen, episode):
    assert frozen.frame_shape == (112, 8, 8)  # 84 px frames resized to 128, stride 16
    assert frozen.nbytes_per_frame() == 112 * 8 * 8
    frames = _frames_chw(episode).reshape(-1, 3, *SPEC.image_hw)  # [N, 3, H, W]
    exact = frozen.features(frames)  # [N, C, h, w] float
    stored = frozen.encode(frames)
    assert stored.dtype == np.uint8 and stored.shape == exact.shape
    scale, offset = frozen.scale[:, None, None], frozen.offset[:, None, None]
    dequantised = torch.from_numpy(stored).float() * scale + offset
    # Nothing clipped on simulated frames; every value within half a quantisation step.
    assert 0 < stored.min() and stored.max() < 255
    assert ((dequantised - exact).abs() <= scale / 2 + 1e-4).all()
    assert not any(p.requires_grad for p in frozen.model.net.parameters())
    assert not frozen.model.net.training


@pytest.mark.parametrize("stream", [False, True], ids=["add_episode", "streamed"])
def test_the_replay_keeps_the_features_the_encoder_gives(frozen, episode, stream):
    buffer = ReplayBuffer(SPEC, 2, 50, seed=0, frame_encoder=frozen)
    _add(buffer, episode, stream=stream)
    expected = frozen.encode(_frames_chw(episode).reshape(-1, 3, *SPEC.image_hw))
    expected = expected.reshape(STEPS + 1, len(CAMERAS), *frozen.frame_shape)
    np.testing.assert_array_equal(_first_frames(buffer), expected)

    batch = buffer.sample(64)
    c = frozen.frame_shape[0]
    assert batch.rgb_obs.dtype == torch.uint8
    assert batch.rgb_obs.shape == (64, 2, SPEC.frame_stack * c, 8, 8)  # [B, V, S·C, h, w]
    t = batch.low_dim_obs[:, -1].long().numpy()  # the step of each row's newest frame
    np.testing.assert_array_equal(batch.rgb_obs[:, :, c:].numpy(), expected[t])
    np.testing.assert_array_equal(batch.rgb_obs[:, :, :c].numpy(), expected[np.maximum(t - 1, 0)])
    np.testing.assert_array_equal(batch.next_rgb_obs[:, :, c:].numpy(), expected[t + 1])


def test_stored_episodes_are_encoded_once_on_load(frozen, episode, tmp_path):
    with Store.open(tmp_path) as store:
        run_id = store.create_run("cqn", {})
        writer = store.begin_episode(run_id, "pick_cube", list(CAMERAS), is_demo=True)
        for t in range(STEPS):
            writer.add_step({c: episode[c][t] for c in CAMERAS}, np.full(3, t, np.float32),
                            np.zeros(2, np.float32), 0.0, success=t == STEPS - 1)
        writer.finish({c: episode[c][STEPS] for c in CAMERAS}, np.full(3, STEPS, np.float32),
                      "success")
        online = ReplayBuffer(SPEC, 2, 50, seed=0, frame_encoder=frozen)
        demos = ReplayBuffer(SPEC, 2, 50, seed=1, is_demo=True, frame_encoder=frozen)
        assert load_from_store(store, online, demos, cameras=CAMERAS) == 1
    reference = ReplayBuffer(SPEC, 2, 50, frame_encoder=frozen)
    _add(reference, episode, stream=False)
    for buffer in (online, demos):
        np.testing.assert_array_equal(_first_frames(buffer), _first_frames(reference))
    batch = DemoAndOnline(online, demos, 8, 8).sample()
    assert batch.rgb_obs.shape == (16, 2, 224, 8, 8)


@pytest.mark.parametrize("dtype, itemsize", [("uint8", 1), ("fp16", 2)])
def test_replay_memory_per_frame(dtype, itemsize):
    frozen = PretrainedFeatures(SPEC.image_hw, dtype=dtype)
    buffer = ReplayBuffer(SPEC, 2, 1000, frame_encoder=frozen)
    per_camera = 112 * 8 * 8 * itemsize  # bytes per camera per frame
    assert frozen.nbytes_per_frame() == per_camera
    assert buffer.frame_dtype == (np.uint8 if dtype == "uint8" else np.float16)
    pixels = ReplayBuffer(SPEC, 2, 1000)
    # Everything but the frames costs the same per slot either way.
    assert (buffer.slot_nbytes() - len(CAMERAS) * per_camera
            == pixels.slot_nbytes() - len(CAMERAS) * 3 * 84 * 84)
    if dtype == "uint8":  # 7168 B per camera: below an 84x84 RGB frame (21168 B)
        assert buffer.slot_nbytes() < pixels.slot_nbytes() / 2.5


@pytest.mark.parametrize("pooling", ["embeddings", "keypoints"])
def test_an_update_trains_the_pooling_and_leaves_the_frozen_model(frozen, episode, pooling):
    torch.manual_seed(0)
    agent = CQNAgent(CQNConfig(**SMALL, pooling=pooling), SPEC, action_dim=2)
    buffer = ReplayBuffer(SPEC, 2, 50, seed=0, frame_encoder=agent.frame_encoder)
    _add(buffer, episode, stream=False)
    frozen_before = [p.clone() for p in agent.frame_encoder.model.net.parameters()]
    pooling_before = [p.clone() for p in agent.encoder.parameters()]
    for _ in range(3):
        metrics = agent.update(buffer.sample(16))
    assert all(torch.isfinite(v).all() for v in metrics.values())
    assert all(torch.equal(a, b) for a, b in
               zip(frozen_before, agent.frame_encoder.model.net.parameters(), strict=True))
    changed = [not torch.equal(a, b) for a, b in
               zip(pooling_before, agent.encoder.parameters(), strict=True)]
    assert all(changed)  # 1x1 convs and norms + embeddings, or the keypoints' gains
    saved = agent.state_dict()["networks"]  # the checkpoint: pooling yes, frozen model no
    key = "keypoints." if pooling == "keypoints" else "pooling."
    assert any(k.startswith(key) for k in saved)
    assert not any("_blocks" in k or "_conv_stem" in k for k in saved)


def _perturbed_agent(seed: int) -> CQNAgent:
    """A pretrained-feature agent whose critic is not flat (an untrained one gives equal
    Q-values everywhere, which any two paths would agree on)."""
    torch.manual_seed(seed)
    agent = CQNAgent(CQNConfig(**SMALL), SPEC, action_dim=2)
    with torch.no_grad():
        for p in agent.critic_target.parameters():  # the critic that acts
            p.add_(torch.randn_like(p) * 0.1)
    return agent


def _learner_q(agent: CQNAgent, rgb_obs: torch.Tensor, low_dim_obs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        encoded = agent._encode(agent._views(rgb_obs, augment=False), low_dim_obs)
        return agent.critic_target.greedy_bins_with_q(
            agent.critic_target.obs_features(*encoded))[1]  # the Q-values


def test_the_actor_acting_on_raw_frames_sees_what_the_learner_trains_on(episode):
    agent = _perturbed_agent(1)
    stacker = FrameStacker(SPEC, agent.frame_encoder)  # as CQNPolicy builds it
    buffer = ReplayBuffer(SPEC, 2, 50, seed=0, frame_encoder=agent.frame_encoder)
    _add(buffer, episode, stream=True)
    batch = buffer.sample(64)
    steps = batch.low_dim_obs[:, -1].long()
    low = _low_dim()
    for t in range(STEPS):
        rgb, low_dim = stacker.push({c: episode[c][t] for c in CAMERAS} | {"proprio": low[t]})
        assert rgb.shape == (2, 224, 8, 8) and rgb.dtype == np.uint8
        rows = torch.nonzero(steps == t)[:, 0]
        if len(rows) == 0:
            continue
        row = int(rows[0])
        np.testing.assert_array_equal(rgb, batch.rgb_obs[row].numpy())
        agent.act(rgb, low_dim, step=t, eval_mode=True)
        q = _learner_q(agent, batch.rgb_obs[row : row + 1], batch.low_dim_obs[row : row + 1])
        assert q.std() > 1e-3  # not a flat critic
        greedy = q[0, -1].amax(-1).mean()  # the finest level's greedy Q, as act reports it
        assert agent.last_q == pytest.approx(float(greedy), abs=1e-6)


def test_weights_round_trip_to_an_actor_policy(episode):
    learner = _perturbed_agent(2)
    layout, blob = pack_policy(learner.policy_state_dict())
    parts = unpack_policy(layout, blob)
    assert sorted(parts) == ["critic", "pooling", "state_encoder"]  # no frozen model
    assert sum(v.numel() for v in parts["pooling"].values()) == sum(
        p.numel() for p in learner.encoder.parameters())

    actor = _perturbed_agent(3)
    actor.load_policy_state_dict(parts)
    stacker = FrameStacker(SPEC, actor.frame_encoder)
    obs = {c: episode[c][STEPS] for c in CAMERAS} | {"proprio": _low_dim()[STEPS]}
    rgb, low_dim = stacker.push(obs)
    actor.act(rgb, low_dim, step=0, eval_mode=True)
    learner.act(rgb, low_dim, step=0, eval_mode=True)
    assert actor.last_q == pytest.approx(learner.last_q, abs=1e-6)

    scratch = CQNAgent(CQNConfig(**(SMALL | {"encoder": "scratch"})), SPEC, action_dim=2)
    with pytest.raises(ValueError, match="pooling"):
        scratch.load_policy_state_dict(parts)


def test_keypoints_are_the_softmax_expectation_a_brute_force_sum_gives(frozen):
    torch.manual_seed(4)
    pooling = SpatialSoftmaxPooling(SPEC, frozen, channels=3)
    with torch.no_grad():
        pooling.gains.normal_(1.0, 0.5)
    c, h, w = frozen.frame_shape
    stored = torch.randint(0, 256, (len(CAMERAS), 2, h, w, SPEC.frame_stack * c),
                           dtype=torch.uint8)  # [V, B, h, w, S·C]
    out = pooling(stored).detach().double()
    assert out.shape == (2, pooling.repr_dim) and pooling.repr_dim == len(CAMERAS) * 3 * 2
    scale, offset = pooling.scale.double(), pooling.offset.double()
    for v in range(len(CAMERAS)):
        conv = pooling.convs[v]
        for b in range(2):
            maps = (stored[v, b].double() * scale + offset) @ conv.weight.double().T + (
                conv.bias.double())  # [h, w, c]
            maps = (maps - maps.mean()) / torch.sqrt(maps.var(unbiased=False) + 1e-5)
            for k in range(3):
                weights = torch.exp(maps[..., k] * pooling.gains[v, k].double())
                weights = weights / weights.sum()  # [h, w]
                x = sum(weights[i, j] * (-1 + 2 * j / (w - 1)) for i in range(h) for j in range(w))
                y = sum(weights[i, j] * (-1 + 2 * i / (h - 1)) for i in range(h) for j in range(w))
                got = out[b, (v * 3 + k) * 2 : (v * 3 + k) * 2 + 2]
                torch.testing.assert_close(got, torch.stack([x, y]), atol=1e-5, rtol=0)


def test_a_keypoint_follows_a_spot_across_the_map(frozen):
    """With its conv reading one input channel and a sharp gain, a keypoint lands on the
    cell where that channel peaks, wherever the peak is."""
    pooling = SpatialSoftmaxPooling(SPEC, frozen, channels=1)
    c, h, w = frozen.frame_shape
    with torch.no_grad():
        for conv in pooling.convs:
            conv.weight.zero_()
            conv.weight[0, 5] = 1.0 / float(pooling.scale[5])  # stored value of channel 5
            conv.bias.zero_()
        pooling.gains.fill_(40.0)
    for row, col in [(0, 0), (3, 6), (h - 1, 2), (5, w - 1)]:
        stored = torch.zeros(len(CAMERAS), 1, h, w, SPEC.frame_stack * c, dtype=torch.uint8)
        stored[:, 0, row, col, 5] = 255
        keypoints = pooling(stored).detach().reshape(len(CAMERAS), 2)
        expected = torch.tensor([-1 + 2 * col / (w - 1), -1 + 2 * row / (h - 1)])
        for v in range(len(CAMERAS)):
            torch.testing.assert_close(keypoints[v], expected, atol=1e-3, rtol=0)


def test_weights_load_only_into_the_pooling_that_wrote_them():
    torch.manual_seed(5)
    keypoints = CQNAgent(CQNConfig(**SMALL, pooling="keypoints"), SPEC, action_dim=2)
    embeddings = CQNAgent(CQNConfig(**SMALL), SPEC, action_dim=2)
    with pytest.raises(ValueError, match=r"expected parts \['critic', 'pooling'"):
        embeddings.load_policy_state_dict(keypoints.policy_state_dict())
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*keypoints\.gains"):
        keypoints.load_state_dict(embeddings.state_dict())
