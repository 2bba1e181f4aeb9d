"""The learner process: transitions in (PULL), CQN updates, versioned weights out (PUB).

The learner never blocks an actor: actors push transitions and forget; they read weights
from a latest-value subscription and swap them between steps. Episodes arrive step by step
from any number of actors and enter the replay buffer whole, when their last step arrives.
Checkpoints (networks, optimiser, counters, replay index) are written every N updates and
on SIGTERM; `resume` continues with the same counters and the same episodes in the buffers
(reloaded from the store).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zmq

from robolearn.config import RunConfig
from robolearn.errors import ConfigError, StoreError
from robolearn.learn.batch import ObsSpec
from robolearn.learn.cqn import CQNAgent
from robolearn.learn.metrics import MetricsWriter, Progress
from robolearn.learn.observation import check_checkpoint_layout, obs_spec_for
from robolearn.learn.replay import DemoAndOnline, ReplayBuffer, load_from_store
from robolearn.learn.weights import pack_policy
from robolearn.protocol import Message, Publisher, Puller
from robolearn.rewards.late_values import stored_late_delta
from robolearn.store import Store

log = logging.getLogger(__name__)

CHECKPOINT_GLOB = "ckpt_*.pt"
# An idle learner whose newest weights no actor has acted on re-sends them this often.
REPUBLISH_IDLE_S = 3.0


def pick_device(kind: str) -> torch.device:
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("learner.device is cuda but no CUDA device is visible; use auto/cpu")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(kind)


def checkpoint_dir(cfg: RunConfig) -> Path:
    return cfg.learner.checkpoint_dir or cfg.data_dir / "checkpoints"


def latest_checkpoint(directory: Path) -> Path | None:
    found = sorted(directory.glob(CHECKPOINT_GLOB))
    return found[-1] if found else None


# How long a finished episode waits for the actor's `episode_stored` (its store id, which
# lets a resumed learner find it again) before it enters the buffer without one.
_STORED_WAIT_S = 5.0


@dataclass
class _PendingEpisode:
    """Steps of one actor episode, held until its last step (and its store id) arrive."""

    first: Message | None = None
    steps: list[Message] = field(default_factory=list)
    done_at: float | None = None
    stored: bool = False  # its store id came, or none will (not recorded, or waited out)
    episode_id: int | None = None
    # Worker-run shaping rewards to add per transition (episode_rewards), when the run has
    # such terms; the episode waits for them (rewards.late_wait_s).
    reward_delta: np.ndarray | None = None


@dataclass
class Counters:
    update_step: int = 0
    env_steps: int = 0
    episodes: int = 0
    version: int = 0
    demo_transitions: int = 0


class Learner:
    def __init__(self, cfg: RunConfig, ctx: zmq.Context, *, resume: bool = False,
                 run_id: int | None = None) -> None:
        self.cfg = cfg
        self.lcfg = cfg.learner
        self.device = pick_device(self.lcfg.device)
        self.spec: ObsSpec = obs_spec_for(cfg)
        self.action_dim = cfg.actor.action_scale.action_dim
        torch.manual_seed(self.lcfg.seed)
        cqn = self.lcfg.cqn
        self.agent = CQNAgent(cqn, self.spec, self.action_dim, self.device)
        buffers = {"nstep": cqn.nstep, "discount": cqn.discount,
                   "action_sequence": cqn.action_sequence}
        self.online = ReplayBuffer(self.spec, self.action_dim, self.lcfg.capacity,
                                   seed=self.lcfg.seed, **buffers)
        self.demos = ReplayBuffer(self.spec, self.action_dim, self.lcfg.demo_capacity,
                                  seed=self.lcfg.seed + 1, is_demo=True, **buffers)
        self.replay = DemoAndOnline(self.online, self.demos, cqn.batch_size,
                                    cqn.demo_batch_size)
        self.counters = Counters()
        self.resume = resume
        self.ckpt_dir = checkpoint_dir(cfg)
        security = cfg.security.socket_security()
        self._pull = Puller(ctx, self.lcfg.transitions_address, security=security)
        self._pub = Publisher(ctx, self.lcfg.weights_address, "learner", security=security)
        self._pending: dict[str, _PendingEpisode] = {}
        # Shaping terms that may run out of the actor's loop: their values come late, in
        # one episode_rewards message per episode, which every episode then waits for.
        self._late_rewards = any(t.process != "inline" for t in cfg.rewards.shaping)
        self.session = uuid.uuid4().hex[:12]
        self._started = False
        # True while the demo head start (lcfg.pretrain_updates) runs; published with the
        # weights so the actor knows to wait for the next version.
        self.pretraining = False
        self._last_weights: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._published_at = 0.0
        self._published_env_steps = -1
        self.last_metrics: dict[str, float] = {}
        # Metrics rows go to the run's store; opened in start(), closed in close().
        self.run_id = run_id
        self._store: Store | None = None
        self.metrics_writer: MetricsWriter | None = None
        self._latest: dict[str, torch.Tensor] = {}

    # -- start-up -----------------------------------------------------------------------
    def start(self) -> None:
        """Resume from the newest checkpoint or start fresh, then load stored episodes."""
        if self._started:
            return
        self._started = True
        ckpt = latest_checkpoint(self.ckpt_dir) if self.resume else None
        if self.resume and ckpt is None:
            log.warning("--resume: no checkpoint in %s; starting fresh", self.ckpt_dir)
        if ckpt is not None:
            self.load_checkpoint(ckpt)
        if self.lcfg.load_from_store and (self.cfg.data_dir / "robolearn.db").exists():
            with Store.open(self.cfg.data_dir, self.cfg.database_url) as store:
                loaded = self._load_store(store)
                if ckpt is not None:
                    # Episodes stored while the learner was down are new experience.
                    known = set(self.online.episode_ids) | set(self.demos.episode_ids)
                    newest = max(known, default=0)
                    before = len(self.online)
                    loaded += self._load_store(store, after_id=newest)
                    self.counters.env_steps += len(self.online) - before
            log.info("loaded %d stored episodes: %d online, %d demo transitions", loaded,
                     len(self.online), len(self.demos))
        if ckpt is None:
            self.counters.demo_transitions = len(self.demos)
        self._open_metrics()
        if self.counters.update_step < self.lcfg.pretrain_updates:
            self.pretraining = self.can_update()
            if self.pretraining:
                log.info("pretraining on %d demo / %d online transitions: %d updates before "
                         "the first trained weights", len(self.demos), len(self.online),
                         self.lcfg.pretrain_updates - self.counters.update_step)
            else:
                log.warning("learner.pretrain_updates: no stored transitions to pretrain on "
                            "(need learner.min_transitions); the actor starts untrained")
        self.publish_weights()

    def _open_metrics(self) -> None:
        self._store = Store.open(self.cfg.data_dir, self.cfg.database_url)
        if self.run_id is not None:
            try:
                self._store.get_run(self.run_id)
            except StoreError as exc:
                self._store.close()
                self._store = None
                raise ConfigError(f"learner: --run-id {self.run_id}: {exc}; give the id of "
                                  "a run in this config's store or leave it out") from exc
        self.metrics_writer = MetricsWriter(self._store, self.session,
                                            self.lcfg.metrics_every_s, run_id=self.run_id)
        self.metrics_writer.begin(self.counters.update_step)

    def progress(self) -> Progress:
        """Counters and replay sizes now, as the metrics rows record them."""
        return Progress(update_step=self.counters.update_step,
                        env_steps=self.counters.env_steps, episodes=self.counters.episodes,
                        online_transitions=len(self.online), demo_transitions=len(self.demos),
                        online_episodes=self.online.num_episodes,
                        demo_episodes=self.demos.num_episodes)

    def _load_store(self, store: Store, after_id: int | None = None) -> int:
        rf = self.cfg.reset_free
        # A reset-free run's one policy learns both directions: load both tasks' episodes.
        tasks = (rf.forward_task, rf.backward_task) if rf.enabled else (self.cfg.robot.task,)
        late = None
        weights = {t.source: t.weight for t in self.cfg.rewards.shaping if t.process != "inline"}
        if weights:
            # Worker values live in the step rows, not in the episode file's rewards.
            def late(episode_id: int, steps: int) -> np.ndarray:
                return stored_late_delta(store, episode_id, weights, steps)
        loaded = 0
        for task in tasks:
            skip: set[int] = set()
            if after_id is not None:
                skip = {r.id for r in store.list_episodes(task=task) if r.id <= after_id}
            loaded += load_from_store(store, self.online, self.demos, task=task,
                                      cameras=self.spec.cameras,
                                      skip_ids=skip, reward_delta=late)
        return loaded

    # -- transitions --------------------------------------------------------------------
    def drain(self, timeout_s: float = 0.0, max_messages: int = 1000) -> int:
        """Take queued transitions; returns how many messages were handled."""
        n = 0
        msg = self._pull.recv(timeout_s)
        while msg is not None:
            self._on_message(msg)
            n += 1
            if n >= max_messages:
                break
            msg = self._pull.recv(0.0)
        return n

    def _on_message(self, msg: Message) -> None:
        if msg.type == "episode_stored":
            key = msg.body["episode"]
            ready = self._pending.get(key)
            if ready is not None and ready.done_at is not None:
                episode_id = msg.body["episode_id"]
                if episode_id in set(self.online.episode_ids) | set(self.demos.episode_ids):
                    # Stored before this learner started and loaded from the store then;
                    # its queued transitions would be the same experience a second time.
                    # Its steps still count, as if they had come before the load.
                    self._pending.pop(key)
                    self.counters.env_steps += len(ready.steps)
                    self.counters.episodes += 1
                    return
                ready.stored, ready.episode_id = True, episode_id
                self._add_if_complete(key)
            return
        if msg.type == "episode_rewards":
            self._on_episode_rewards(msg)
            return
        if msg.type != "transition":
            log.warning("learner: ignoring %s from %s", msg.type, msg.sender)
            return
        key = msg.body["episode"]
        step = msg.body["step"]
        pending = self._pending.get(key)
        if step == 0:
            pending = self._pending[key] = _PendingEpisode(first=msg)
        elif pending is None or len(pending.steps) != step:
            # Joined mid-episode (learner restarted) or a step went missing: drop it; the
            # episode is in the store and a resumed learner loads it from there.
            self._pending.pop(key, None)
            return
        pending.steps.append(msg)
        if msg.body["terminated"] or msg.body["truncated"]:
            pending.done_at = time.monotonic()
            pending.stored = not msg.body["recorded"]  # else wait for its store id
            self._add_if_complete(key)

    def _on_episode_rewards(self, msg: Message) -> None:
        key = msg.body["episode"]
        pending = self._pending.get(key)
        delta = msg.arrays["reward_delta"]
        if pending is None or pending.done_at is None:
            log.warning("learner: episode_rewards for %s, which is not waiting (dropped, or "
                        "added without them after rewards.late_wait_s); ignored", key)
            return
        if delta.shape != (len(pending.steps),):
            log.warning("learner: episode_rewards for %s has %d values for %d transitions; "
                        "ignored", key, delta.shape[0], len(pending.steps))
            return
        if msg.body["missing"]:
            log.warning("learner: episode %s: %d worker reward values missing (delta 0 there)",
                        key, msg.body["missing"])
        pending.reward_delta = delta
        self._add_if_complete(key)

    def _add_if_complete(self, key: str) -> None:
        """Add a finished episode once its store id and its late rewards (if the run has
        worker-run shaping terms) are in."""
        ep = self._pending[key]
        if ep.done_at is None or not ep.stored:
            return
        if self._late_rewards and ep.reward_delta is None:
            return
        self._add_episode(key, self._pending.pop(key), ep.episode_id)

    def flush_waiting(self, now: float | None = None) -> None:
        """Add finished episodes whose store id never came (the actor died before storing)
        or whose late rewards did not come within rewards.late_wait_s."""
        now = time.monotonic() if now is None else now
        for key, p in list(self._pending.items()):
            if p.done_at is None:
                continue
            if not p.stored and now - p.done_at > _STORED_WAIT_S:
                p.stored = True
            if (self._late_rewards and p.reward_delta is None
                    and now - p.done_at > self.cfg.rewards.late_wait_s):
                log.warning("learner: episode %s: no worker rewards after %.0f s; added with "
                            "its inline rewards only", key, self.cfg.rewards.late_wait_s)
                p.reward_delta = np.zeros(len(p.steps), np.float32)
            self._add_if_complete(key)

    def _add_episode(self, key: str, ep: _PendingEpisode, episode_id: int | None) -> None:
        first = ep.first
        assert first is not None
        def rgb(msg: Message, prefix: str) -> dict[str, np.ndarray] | None:
            if not self.spec.pixels:
                return None
            return {c: msg.arrays[f"{prefix}{c}"] for c in self.spec.cameras}
        try:
            self.replay.start_episode(rgb(first, "rgb_"), first.arrays["low_dim"],
                                      episode_id=episode_id)
            delta = ep.reward_delta
            for i, m in enumerate(ep.steps):
                # The transition carried the inline reward; worker terms come as a delta.
                reward = m.body["reward"] + (float(delta[i]) if delta is not None else 0.0)
                self.replay.add(m.arrays["action"], reward, rgb(m, "next_rgb_"),
                                m.arrays["next_low_dim"], terminated=m.body["terminated"],
                                truncated=m.body["truncated"],
                                intervention=m.body["intervention"])
        except (KeyError, ValueError) as e:
            log.warning("learner: dropped episode %s: %s", key, e)
            return
        self.counters.env_steps += len(ep.steps)
        self.counters.episodes += 1
        if episode_id is not None and self.metrics_writer is not None:
            self.metrics_writer.saw_episode(episode_id)

    # -- training -----------------------------------------------------------------------
    def can_update(self) -> bool:
        if len(self.online) + len(self.demos) < self.lcfg.min_transitions or not len(self.online):
            return False
        ratio = self.lcfg.max_update_ratio
        if ratio is None:
            return True
        budget = (ratio * (self.counters.env_steps + self.counters.demo_transitions)
                  + self.lcfg.pretrain_updates)
        return self.counters.update_step < budget

    def update(self) -> dict[str, torch.Tensor]:
        batch = self.replay.sample(pin_memory=self.device.type == "cuda").to(self.device)
        metrics = self.agent.update(batch)
        self.counters.update_step += 1
        step = self.counters.update_step
        if self.pretraining and step >= self.lcfg.pretrain_updates:
            self.pretraining = False
            log.info("pretraining done (%d updates): publishing the first trained weights", step)
            self.publish_weights()
        elif step % self.lcfg.publish_every == 0:
            self.publish_weights()
        if step % self.lcfg.checkpoint_every == 0:
            self.save_checkpoint()
        return metrics

    def publish_weights(self) -> None:
        self.counters.version += 1
        layout, blob = pack_policy(self.agent.policy_state_dict())
        self._last_weights = ({
            "session": self.session, "version": self.counters.version,
            "update_step": self.counters.update_step, "env_steps": self.counters.env_steps,
            "pretraining": self.pretraining, "layout": layout,
        }, {"blob": blob})
        self._republish()

    def _republish(self) -> None:
        """Send the newest weights message again (same version), for a subscriber that
        joined after it went out: an actor waiting for the pretrained weights sends no
        transitions, so no update would ever publish a newer one."""
        if self._last_weights is not None:
            self._pub.publish("weights", *self._last_weights)
            self._published_at = time.monotonic()
            self._published_env_steps = self.counters.env_steps

    def _nobody_may_have_the_weights(self) -> bool:
        """Idle, and no actor has sent a step since the newest weights went out."""
        return (not self.can_update()
                and self.counters.env_steps == self._published_env_steps
                and time.monotonic() - self._published_at > REPUBLISH_IDLE_S)

    def run(self, stop: threading.Event, *, max_updates: int | None = None) -> None:
        self.start()
        last_log = time.monotonic()
        try:
            while not stop.is_set():
                if max_updates is not None and self.counters.update_step >= max_updates:
                    break
                self.drain(0.0 if self.can_update() else 0.05)
                self.flush_waiting()
                if self._nobody_may_have_the_weights():
                    self._republish()
                if self.can_update():
                    metrics = self._latest = self.update()
                    if time.monotonic() - last_log > 10.0:
                        self.last_metrics = {k: float(v) for k, v in metrics.items()}
                        log.info("update %d, env steps %d, buffers %d/%d: %s",
                                 self.counters.update_step, self.counters.env_steps,
                                 len(self.online), len(self.demos),
                                 ", ".join(f"{k} {v:.4g}" for k, v in
                                           sorted(self.last_metrics.items())))
                        last_log = time.monotonic()
                if self.metrics_writer is not None:
                    self.metrics_writer.maybe_write(self.progress(), self._latest)
        finally:
            self.save_checkpoint()
            if self.metrics_writer is not None:
                self.metrics_writer.write(self.progress(), self._latest)

    # -- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Atomically write ckpt_<update>.pt (temp file + rename)."""
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        path = self.ckpt_dir / f"ckpt_{self.counters.update_step:09d}.pt"
        state: dict[str, Any] = {
            "agent": self.agent.state_dict(),
            "counters": vars(self.counters).copy(),
            "online": self.online.state_dict(),
            "demos": self.demos.state_dict(),
            "sizes": {"online": len(self.online), "demos": len(self.demos),
                      "online_episodes": self.online.num_episodes,
                      "demo_episodes": self.demos.num_episodes},
            "obs_spec": dataclasses.asdict(self.spec),
            "config": self.cfg.model_dump(mode="json"),
        }
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        log.info("checkpoint %s (update %d, env steps %d)", path.name,
                 self.counters.update_step, self.counters.env_steps)
        return path

    def load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        check_checkpoint_layout(state, self.spec, path)
        self.agent.load_state_dict(state["agent"])
        self.counters = Counters(**state["counters"])
        self.online.load_state_dict(state["online"])
        self.demos.load_state_dict(state["demos"])
        log.info("resumed from %s: update %d, env steps %d, version %d", path.name,
                 self.counters.update_step, self.counters.env_steps, self.counters.version)

    def close(self) -> None:
        self._pull.close()
        self._pub.close()
        if self._store is not None:
            self._store.close()
            self._store = None

