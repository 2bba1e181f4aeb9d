"""Preferences while training: queries only from the training run's own episodes at the
configured rate, retraining after every N answers with held-out agreement, a restart that
carries on, and `prefs query` choosing the active training run over a newer replay run."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from robolearn.cli.main import main
from robolearn.config import load_config, parse_config
from robolearn.config.rewards import PreferenceConfig
from robolearn.errors import RewardModelError
from robolearn.learn.policy import CQNPolicy
from robolearn.rewards.preference import is_held_out
from robolearn.rewards.preference_loop import PreferenceLoop
from robolearn.rewards.preference_runs import (
    EVALUATION_POLICY_SUFFIX,
    active_training_run,
    choose_run,
    queries_due,
)
from robolearn.rewards.queries import create_queries
from robolearn.rewards.teachers import answer_pending
from robolearn.sim.rollouts import Rollout, record_rollout, rollout
from robolearn.store import Store
from robolearn.store.models import PreferenceQuery, RewardModel
from tests.conftest import run_config_dict

PREFERENCE = {"segment_steps": 8, "ensemble": 2, "hidden": 16, "steps": 40,
              "warmup_labels": 4, "queries_per_episode": 2, "max_pending": 6,
              "retrain_every": 5, "holdout_fraction": 0.5}


@pytest.fixture(scope="module")
def rollouts() -> list[Rollout]:
    """pick_cube episodes with world state (the oracle teacher's returns), no rendering."""
    return [rollout("pick_cube", seed, policy, 16, cameras=(), noise=0.2, render=False)
            for seed in range(3) for policy in ("expert", "random")]


def training_config(sock_dir: Path, data_dir: Path, shaping: bool = True,
                    **preference: Any) -> dict[str, Any]:
    rewards: dict[str, Any] = {"preference": {**PREFERENCE, **preference}}
    if shaping:
        rewards["shaping"] = [{"source": "preference", "weight": 0.1}]
    raw = run_config_dict(sock_dir, data_dir, rewards=rewards)
    return parse_config(raw).model_dump(mode="json")


def replay_of(store: Store, source_id: int, r: Rollout) -> int:
    """A replay run with one replayed episode, as "Replay in sim" stores them."""
    run_id = store.create_run(f"replay of episode {source_id}",
                              {"replay": {"source_episode_id": source_id, "mode": "joints"}})
    with store.begin_episode(run_id, "pick_cube", [], seed=r.seed, policy="replay-joints",
                             source_episode_id=source_id) as writer:
        for t in range(len(r.action)):
            writer.add_step({}, r.proprio[t], r.action[t], 0.0, bool(r.success[t]),
                            state=r.state[t])
        writer.finish({}, r.proprio[-1], r.outcome, final_state=r.state[-1])
    return run_id


@dataclasses.dataclass
class World:
    store: Store
    training: int
    replay: int
    train_episodes: set[int]
    eval_episode: int
    replay_episodes: set[int]


@pytest.fixture
def world(store: Store, sock_dir: Path, rollouts: list[Rollout]) -> World:
    training = store.create_run("train", training_config(sock_dir, store.data_dir))
    episodes = {record_rollout(store, training, r) for r in rollouts[:4]}
    # An evaluation episode: the actor records it under the greedy policy's name.
    evaluation = record_rollout(store, training,
                                dataclasses.replace(rollouts[4], policy="cqn-eval"))
    # The newest run, still "running": a replay of a training episode.
    replay = replay_of(store, min(episodes), rollouts[5])
    replayed = {e.id for e in store.list_episodes(run_id=replay)}
    return World(store, training, replay, episodes, evaluation, replayed)


def queries(store: Store) -> list[PreferenceQuery]:
    with store.session() as db:
        return list(db.scalars(select(PreferenceQuery).order_by(PreferenceQuery.id)))


def models(store: Store) -> list[RewardModel]:
    with store.session() as db:
        return list(db.scalars(select(RewardModel).where(RewardModel.kind == "preference")
                               .order_by(RewardModel.version)))


def test_evaluation_episodes_are_named_as_the_loop_expects() -> None:
    # The actor flags an evaluation episode only through the policy name it records.
    name = CQNPolicy.name.fget(types.SimpleNamespace(eval_mode=True))  # type: ignore[attr-defined]
    assert name.endswith(EVALUATION_POLICY_SUFFIX)
    assert not CQNPolicy.name.fget(  # type: ignore[attr-defined]
        types.SimpleNamespace(eval_mode=False)).endswith(EVALUATION_POLICY_SUFFIX)


def test_queries_due_follows_the_rate_and_the_pending_cap() -> None:
    assert queries_due(episodes=4, asked=0, pending=0, queries_per_episode=2,
                       max_pending=6) == 6
    assert queries_due(episodes=4, asked=6, pending=3, queries_per_episode=2,
                       max_pending=6) == 2
    assert queries_due(episodes=3, asked=1, pending=0, queries_per_episode=0.5,
                       max_pending=6) == 0
    assert queries_due(episodes=10, asked=0, pending=0, queries_per_episode=0,
                       max_pending=6) == 0


def test_queries_come_only_from_the_training_runs_episodes_at_the_rate(
        world: World, rollouts: list[Rollout]) -> None:
    store = world.store
    assert active_training_run(store).id == world.training  # not the newer replay run
    loop = PreferenceLoop(store)
    step = loop.tick()
    assert step is not None and step.run_id == world.training
    assert len(step.created) == 6  # 4 episodes x 2, capped by max_pending 6
    assert loop.tick().created == ()  # six wait: nothing more
    assert answer_pending(store, world.training, "oracle", 3) == 3
    # 8 due in all, 6 asked; 3 waiting leave room for 3: the rate decides (2).
    assert len(loop.tick().created) == 2
    record_rollout(store, world.training, rollouts[1])  # a fifth training episode
    assert len(loop.tick().created) == 1  # room for one more under max_pending
    rows = queries(store)
    assert len(rows) == 9 and {r.run_id for r in rows} == {world.training}
    used = {r.episode_a_id for r in rows} | {r.episode_b_id for r in rows}
    assert world.eval_episode not in used and not used & world.replay_episodes
    assert all(r.episode_a_id != r.episode_b_id for r in rows)
    # Asked by hand for the replay run: refused, with the way out.
    with pytest.raises(RewardModelError, match="is a replay run"):
        create_queries(store, world.replay, 2, "uniform")


def test_retrains_after_every_n_answers_and_records_held_out_agreement(world: World) -> None:
    store = world.store
    loop = PreferenceLoop(store)
    loop.tick()
    assert answer_pending(store, world.training, "oracle", 4) == 4
    assert loop.tick().trained_version is None  # 4 < retrain_every 5
    assert answer_pending(store, world.training, "oracle", 1) == 1
    step = loop.tick()
    assert step.trained_version == 1
    (v1,) = models(store)
    assert v1.status == "ready" and v1.run_id == world.training
    assert v1.metrics["n_answers"] == 5
    answered = [q.id for q in queries(store) if q.status == "answered"]
    held = [q for q in answered if is_held_out(q, PREFERENCE["holdout_fraction"])]
    assert v1.metrics["n_holdout"] == len(held)
    assert v1.metrics["n_labels"] == (5 - len(held) if len(held) < 5 else 5)
    if held and len(held) < 5:
        assert 0.0 <= v1.metrics["holdout_agreement"] <= 1.0

    # No new answers: no retraining, also after a restart (a new loop, same database).
    assert loop.tick().trained_version is None
    restarted = PreferenceLoop(store)
    assert restarted.tick().trained_version is None
    # Five more answers (queries asked by hand count like the loop's): version 2.
    create_queries(store, world.training, 5, "uniform", cfg=PreferenceConfig(segment_steps=8))
    assert answer_pending(store, world.training, "oracle", 5) == 5
    assert restarted.tick().trained_version == 2
    v2 = models(store)[1]
    assert v2.metrics["n_answers"] == 10 and v2.metrics["n_holdout"] > 0
    assert 0.0 <= v2.metrics["holdout_agreement"] <= 1.0


def test_nothing_happens_without_preference_shaping(store: Store, sock_dir: Path,
                                                    rollouts: list[Rollout]) -> None:
    run = store.create_run("plain", training_config(sock_dir, store.data_dir, shaping=False))
    for r in rollouts[:3]:
        record_rollout(store, run, r)
    assert PreferenceLoop(store).tick() is None and queries(store) == []
    collect = store.create_run("bootstrap", training_config(
        sock_dir, store.data_dir, shaping=False, collect_without_shaping=True))
    for r in rollouts[:3]:
        record_rollout(store, collect, r)
    step = PreferenceLoop(store).tick()
    assert step is not None and step.run_id == collect and len(step.created) == 6


def test_prefs_query_defaults_to_the_active_training_run(write_config, sock_dir: Path,
                                                         rollouts: list[Rollout],
                                                         capsys, caplog) -> None:
    path = write_config(rewards={"preference": {"segment_steps": 8}})
    cfg = load_config(path)
    with Store.open(cfg.data_dir) as store:
        training = store.create_run("train", training_config(sock_dir, cfg.data_dir))
        for r in rollouts[:3]:
            record_rollout(store, training, r)
        replay = replay_of(store, 1, rollouts[3])  # newest run, a replay
        run, why = choose_run(store, None)
        assert run.id == training and "active training run" in why
        store.end_run(training, "stopped")
        run, why = choose_run(store, None)
        assert run.id == training and "no run is training" in why
        store.mark_running(training)
    assert main(["prefs", "query", str(path), "-n", "3"]) == 0
    out = capsys.readouterr()
    assert f"run {training} (train): the active training run" in out.err
    assert out.out.startswith(f"run {training}: created queries")
    assert main(["prefs", "query", str(path), "-n", "1", "--run", str(replay)]) == 2
    assert "is a replay run" in caplog.text
    with Store.open(cfg.data_dir) as store:
        rows = queries(store)
    assert len(rows) == 3 and {r.run_id for r in rows} == {training}
