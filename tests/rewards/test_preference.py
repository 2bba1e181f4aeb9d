"""Bradley-Terry preference model: loss direction, equal labels, active selection, queries
and answers in the database, simulated teachers, replay relabelling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sqlalchemy import select

from robolearn.config.rewards import PreferenceConfig
from robolearn.errors import RewardModelError
from robolearn.learn.batch import ObsSpec
from robolearn.learn.observation import low_dim_of
from robolearn.learn.replay import ReplayBuffer
from robolearn.rewards import records
from robolearn.rewards.preference import (
    PreferenceModel,
    RewardEnsemble,
    answered_pairs,
    bradley_terry_loss,
    fit_ensemble,
    relabel_replay,
    train_preference,
)
from robolearn.rewards.queries import create_queries, select_pairs
from robolearn.rewards.segments import FeatureCache, Segment, step_features
from robolearn.rewards.teachers import TrueReturns, answer, answer_pending
from robolearn.sim.rollouts import record_rollout, rollout
from robolearn.store import Store
from robolearn.store.models import PreferenceAnswer, PreferenceQuery

CFG = PreferenceConfig(segment_steps=10, ensemble=3, hidden=64, steps=150, warmup_labels=10,
                       label_noise=0.05)


def grads(target: float, ret_a: float, ret_b: float) -> tuple[float, float]:
    a = torch.tensor(ret_a, requires_grad=True)
    b = torch.tensor(ret_b, requires_grad=True)
    bradley_terry_loss(a, b, torch.tensor(target), 0.1).backward()
    return float(a.grad), float(b.grad)


def test_loss_gradient_moves_preferred_return_up() -> None:
    for ret_a, ret_b in ((0.0, 0.0), (-2.0, 1.0), (3.0, 1.0)):
        grad_a, grad_b = grads(1.0, ret_a, ret_b)
        assert grad_a < 0 < grad_b  # descent raises R_a, lowers R_b
        grad_a, grad_b = grads(0.0, ret_a, ret_b)
        assert grad_b < 0 < grad_a


def test_equal_labels_pull_returns_together() -> None:
    grad_a, grad_b = grads(0.5, 2.0, -1.0)
    assert grad_a > 0 > grad_b  # descent lowers the higher return, raises the lower
    assert grads(0.5, 1.0, 1.0) == pytest.approx((0.0, 0.0), abs=1e-7)

    # Through a network: training on "equal" shrinks the gap, on "left" opens it.
    rng = np.random.default_rng(0)
    seg_a = rng.normal(1.0, 1.0, (32, 5, 4)).astype(np.float32)
    seg_b = rng.normal(-1.0, 1.0, (32, 5, 4)).astype(np.float32)
    cfg = PreferenceConfig(ensemble=2, hidden=16, steps=80, label_noise=0.0)
    left, _ = fit_ensemble(seg_a, seg_b, np.ones(32, np.float32), cfg)
    equal, _ = fit_ensemble(seg_a, seg_b, np.full(32, 0.5, np.float32), cfg)
    with torch.no_grad():
        gap_left = (left.returns(torch.from_numpy(seg_a)) - left.returns(torch.from_numpy(seg_b)))
        gap_equal = (equal.returns(torch.from_numpy(seg_a))
                     - equal.returns(torch.from_numpy(seg_b)))
    assert gap_left.mean() > 2.0
    assert gap_equal.abs().mean() < 0.3


def test_disagreement_selection_returns_highest_variance_pairs() -> None:
    torch.manual_seed(0)
    net = RewardEnsemble(4, members=5, hidden=16)
    model = PreferenceModel(PreferenceConfig(ensemble=5, hidden=16, inputs=("x",)), net)
    rng = np.random.default_rng(0)
    features = {e: rng.normal(size=(20, 4)).astype(np.float32) for e in range(6)}

    class Cache(FeatureCache):
        def episode(self, episode_id: int) -> np.ndarray:
            return features[episode_id]

    cache = Cache(None, ("x",))  # type: ignore[arg-type]
    candidates = [(Segment(a, s, s + 4), Segment(b, s + 2, s + 6))
                  for a in range(6) for b in range(6) if a != b for s in (0, 7)]
    # Each member's P(a > b) computed one member at a time, independently of select_pairs.
    def member_returns(s: Segment) -> np.ndarray:
        with torch.no_grad():
            steps = torch.from_numpy(features[s.episode_id][s.start : s.end + 1])
            return np.array([float(net(steps)[m].sum()) for m in range(5)])

    stds = [np.std(1 / (1 + np.exp(-(member_returns(a) - member_returns(b)))))
            for a, b in candidates]
    expected = {candidates[i] for i in np.argsort(stds)[-7:]}
    chosen = select_pairs(candidates, 7, "disagreement", model, cache, rng)
    assert set(chosen) == expected
    uniform = select_pairs(candidates, 7, "uniform", model, cache, np.random.default_rng(1))
    assert len(set(uniform)) == 7 and set(uniform) != expected


# ------------------------------------------------------------------------ with the store
@pytest.fixture(scope="module")
def state_rollouts() -> list:
    """pick_cube rollouts with world state, no rendering: noisy experts and random arms."""
    out = []
    for seed in range(10):
        out.append(rollout("pick_cube", seed, "expert", 30, cameras=(), noise=0.3 * (seed % 3),
                           render=False))
        out.append(rollout("pick_cube", seed, "random", 30, cameras=(), render=False))
    return out


def fill(store: Store, run_id: int, rollouts: list) -> list[int]:
    return [record_rollout(store, run_id, r) for r in rollouts]


def test_queries_answers_training_and_relabelling(store: Store, run_id: int,
                                                  state_rollouts: list) -> None:
    episode_ids = fill(store, run_id, state_rollouts)
    ids = create_queries(store, run_id, 80, "disagreement", cfg=CFG)  # warm-up: uniform
    with store.session() as session:
        rows = session.scalars(select(PreferenceQuery).where(PreferenceQuery.id.in_(ids))).all()
    assert len(rows) == 80 and {r.status for r in rows} == {"pending"}
    for r in rows:
        assert r.episode_a_end - r.episode_a_start + 1 == CFG.segment_steps
        assert r.episode_a_id in episode_ids and r.episode_a_id != r.episode_b_id

    assert answer_pending(store, run_id, "oracle", 80) == 80
    report = train_preference(store, CFG, run_id=run_id)
    # Oracle answers are strict: every one either trained or was held out to measure.
    assert report.n_labels + report.n_holdout == 80 and report.n_holdout > 0
    assert report.train_accuracy > 0.9 and report.holdout_agreement > 0.8
    row = records.latest_ready(store, "preference", run_id)
    assert row is not None and row.id == report.model_id
    model = PreferenceModel.load(store.data_dir / row.path)

    # Held-out pairs: the learned returns order segments like the true returns.
    truth = TrueReturns(store)
    cache = FeatureCache(store, CFG.inputs)
    lengths = {e.id: e.num_steps for e in store.list_episodes(run_id=run_id)}
    from robolearn.rewards.segments import random_segments
    segments = random_segments(lengths, CFG.segment_steps, 200, np.random.default_rng(7))
    learned = model.rewards(cache.segments(segments)).sum(1)
    true = np.array([truth.segment(s) for s in segments])
    assert spearmanr(learned, true).statistic > 0.8

    # After the warm-up, active selection uses the trained model and stores new queries.
    more = create_queries(store, run_id, 5, "disagreement", cfg=CFG)
    assert len(more) == 5 and not set(more) & set(ids)

    # Relabel a replay buffer (state-based: low-dim = proprio + state + the cube's offset from
    # the end effector, which is not a model input).
    data = store.load_episode(episode_ids[0])
    spec = ObsSpec(cameras=(), image_hw=(0, 0), frame_stack=1, low_dim=14, ee_offsets=1)
    buffer = ReplayBuffer(spec, action_dim=4, capacity=200)
    low = low_dim_of(spec, data.arrays["proprio"], data.arrays["state"])
    buffer.add_episode(None, low, data.arrays["action"], np.zeros(data.num_steps, np.float32),
                       terminated=True)
    assert relabel_replay(buffer, model, weight=0.5) == 30
    expected = 0.5 * model.rewards(step_features(data, CFG.inputs))
    expected[-1] += 1.0  # the terminal step keeps its success reward
    assert np.allclose(buffer.episode(buffer.episode_keys[0]).reward, expected, atol=1e-5)
    pixels = ObsSpec(cameras=("front",), image_hw=(8, 8), frame_stack=1, low_dim=8)
    with pytest.raises(RewardModelError, match="buffer offers"):
        relabel_replay(ReplayBuffer(pixels, action_dim=4, capacity=200), model)


def test_training_uses_only_live_answers_and_drops_skips(store: Store, run_id: int,
                                                         state_rollouts: list) -> None:
    fill(store, run_id, state_rollouts[:4])
    ids = create_queries(store, run_id, 4, "uniform", cfg=CFG)
    with store.session() as session, session.begin():
        session.add_all([
            PreferenceAnswer(query_id=ids[0], answer="left"),
            PreferenceAnswer(query_id=ids[1], answer="skip"),
            PreferenceAnswer(query_id=ids[2], answer="right", undone=True),
            PreferenceAnswer(query_id=ids[2], answer="equal"),
        ])
    pairs, skipped = answered_pairs(store, run_id)
    assert [p[2] for p in pairs] == [1.0, 0.5] and skipped == 1


def test_no_answers_is_a_clear_error_and_writes_nothing(store: Store, run_id: int,
                                                        state_rollouts: list) -> None:
    fill(store, run_id, state_rollouts[:2])
    with pytest.raises(RewardModelError, match="no answered preference queries"):
        train_preference(store, CFG, run_id=run_id)
    assert records.list_models(store) == []
    with pytest.raises(RewardModelError, match="unknown query selection"):
        create_queries(store, run_id, 3, "loudest", cfg=CFG)


def test_simulated_teachers() -> None:
    rng = np.random.default_rng(0)
    assert answer("oracle", 2.0, 1.0, rng) == "left"
    assert answer("oracle", 1.0, 2.0, rng) == "right"
    flips = [answer("mistake", 2.0, 1.0, rng, eps=0.1) for _ in range(2000)]
    assert 0.07 < flips.count("right") / 2000 < 0.13
    assert answer("equal", 1.0, 1.05, rng, equal_margin=0.1) == "equal"
    assert answer("equal", 2.0, 1.0, rng, equal_margin=0.1) == "left"
    noisy = [answer("noisy", 0.5, 0.0, rng, beta=2.0) for _ in range(2000)]
    assert 0.68 < noisy.count("left") / 2000 < 0.78  # sigmoid(1) = 0.73
