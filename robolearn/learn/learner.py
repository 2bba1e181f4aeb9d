"""The learner process: transitions in (PULL), CQN updates, versioned weights out (PUB).

The learner never blocks an actor: actors push transitions and forget; they read weights
from a latest-value subscription and swap them between steps. Episodes arrive step by step
from any number of actors and enter the replay buffer whole, when their last step arrives
(`robolearn.learn.episodes.EpisodeAssembler` puts them together).
It makes learner.utd updates per environment step received (a target it holds while the
device is fast enough; it measures the ratio it held and says when it falls behind).
Checkpoints (networks, optimiser, counters, replay index) are written every N updates and
on SIGTERM; `resume` continues with the same counters and the same episodes in the buffers
(reloaded from the store).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zmq

from robolearn.config import RunConfig
from robolearn.config.sockets import ACTOR, actor_identities, robot_identity, single_host
from robolearn.errors import ConfigError, StoreError, TrainingDiverged
from robolearn.learn.batch import ObsSpec
from robolearn.learn.cqn import CQNAgent
from robolearn.learn.episodes import (
    AssembledEpisode,
    EpisodeAssembler,
    PendingLimits,
    Source,
    ThrottledWarnings,
)
from robolearn.learn.fleet import FleetTally
from robolearn.learn.judge import EpisodeJudge, judges_stored_episodes
from robolearn.learn.metrics import MetricsWriter, Progress, UtdMeter, UtdReport
from robolearn.learn.observation import check_checkpoint_layout, obs_spec_for
from robolearn.learn.replay import DemoAndOnline, ReplayBuffer, load_from_store
from robolearn.learn.replay.archive import EpisodeArchive
from robolearn.learn.replay.loading import append_loaded
from robolearn.learn.tracking import EpisodeOutcome, open_tracker
from robolearn.learn.weights import nonfinite_tensors, pack_policy
from robolearn.protocol import Message, Publisher, Puller
from robolearn.rewards.late_values import stored_late_delta
from robolearn.store import Store
from robolearn.store.checkpoints import add_checkpoint

log = logging.getLogger(__name__)

CHECKPOINT_GLOB = "ckpt_*.pt"
# Under the data directory: the episodes the learner received (learner.keep_received).
ARCHIVE_DIRNAME = "learner_episodes"
# An idle learner whose newest weights no actor has acted on re-sends them this often.
REPUBLISH_IDLE_S = 3.0
# A learner_status goes out this often (from its own thread, so a long update or checkpoint
# write does not look like a death); actors call it dead after learner.heartbeat_timeout_s.
STATUS_EVERY_S = 1.0


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


class _CheckpointUnreadable(Exception):
    """A checkpoint file is damaged (truncated, not a torch file, keys missing)."""


def read_checkpoint(path: Path, spec: ObsSpec, device: torch.device | str) -> dict[str, Any]:
    """Load and check a learner checkpoint without applying it.

    Raises:
        _CheckpointUnreadable: the file is damaged.
        ConfigError: it is intact but of another observation layout.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError) as exc:
        # torch raises RuntimeError for a truncated zip ("failed finding central
        # directory"), and unpickling errors of several kinds for garbage.
        raise _CheckpointUnreadable(f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # pickle.UnpicklingError and kin: still a damaged file
        raise _CheckpointUnreadable(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict):
        raise _CheckpointUnreadable(f"not a checkpoint: a {type(state).__name__}")
    missing = [k for k in ("agent", "counters", "online", "demos") if k not in state]
    if missing:
        raise _CheckpointUnreadable(f"no {missing} in it")
    check_checkpoint_layout(state, spec, path)
    return state


@dataclass
class Counters:
    update_step: int = 0
    env_steps: int = 0
    episodes: int = 0
    version: int = 0
    demo_transitions: int = 0


class Learner:
    def __init__(self, cfg: RunConfig, ctx: zmq.Context[Any], *, resume: bool = False,
                 run_id: int | None = None) -> None:
        self.cfg = cfg
        self.lcfg = cfg.learner
        self.device = pick_device(self.lcfg.device)
        self.spec: ObsSpec = obs_spec_for(cfg)
        self.action_dim = cfg.actor.action_scale.action_dim
        torch.manual_seed(self.lcfg.seed)
        cqn = self.lcfg.cqn
        self.agent = CQNAgent(cqn, self.spec, self.action_dim, self.device)
        # encoder "pretrained": the buffers keep the frozen model's features of each frame.
        def buffer(capacity: int, seed: int, is_demo: bool) -> ReplayBuffer:
            return ReplayBuffer(self.spec, self.action_dim, capacity, nstep=cqn.nstep,
                                discount=cqn.discount, action_sequence=cqn.action_sequence,
                                seed=seed, is_demo=is_demo,
                                frame_encoder=self.agent.frame_encoder)

        self.online = buffer(self.lcfg.capacity, self.lcfg.seed, is_demo=False)
        self.demos = buffer(self.lcfg.demo_capacity, self.lcfg.seed + 1, is_demo=True)
        self.replay = DemoAndOnline(self.online, self.demos, cqn.batch_size,
                                    cqn.demo_batch_size,
                                    min_demo_steps=self.lcfg.min_demo_steps)
        self.counters = Counters()
        self.resume = resume
        self.ckpt_dir = checkpoint_dir(cfg)
        self._pull = Puller(ctx, self.lcfg.transitions_address,
                            security=cfg.socket_security(self.lcfg.transitions_address,
                                                         "learner"))
        self._pub = Publisher(ctx, self.lcfg.weights_address, "learner",
                              security=cfg.socket_security(self.lcfg.weights_address,
                                                           "learner"))
        # Shaping terms that may run out of the actor's loop: their values come late, in
        # one episode_rewards message per episode, which every episode then waits for.
        late_rewards = any(t.process != "inline" for t in cfg.rewards.shaping)
        self.assembler = EpisodeAssembler(
            self.spec, self.action_dim,
            PendingLimits.for_run(cfg, self.spec, self.action_dim, late_rewards),
            late_rewards=late_rewards, late_wait_s=cfg.rewards.late_wait_s,
            loaded=self._holds_store_episode)
        self.utd = UtdMeter(self.lcfg.utd)
        # The learner's own copy of what it receives, for a host without the actors' disks.
        keep = self.lcfg.keep_received
        if keep is None:
            keep = not single_host(cfg)
        self.archive = (EpisodeArchive(cfg.data_dir / ARCHIVE_DIRNAME) if keep else None)
        self._kept_ids: list[int] = []  # store ids loaded from the archive at start
        # The authenticated identities whose transitions the learner takes (Message.peer):
        # every robot's actor. A message nothing authenticated (peer None,
        # security.insecure) is taken too, and attributed by its sender field.
        self.actor_peers = actor_identities(cfg)
        self.fleet = FleetTally(list(cfg.fleet.names))
        # actor identity -> its fleet robot, looked up per message.
        self._robot_of = {robot_identity(ACTOR, name): name for name in cfg.fleet.names}
        self._behind_since: float | None = None  # while the learner cannot hold its target
        self._warnings = ThrottledWarnings(log)
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
        # Divergence guard. Every update's loss is folded into this flag on the device (no
        # host sync per update); it and the parameters are checked when weights or a
        # checkpoint would go out, so nothing non-finite ever leaves the learner.
        self._losses_finite = torch.ones((), dtype=torch.bool, device=self.device)
        self.failed: str | None = None  # why training stopped (TrainingDiverged)
        self.last_checkpoint: Path | None = None  # newest good one, written or resumed
        # learner_status heartbeat (own thread; the PUB socket is shared under a lock).
        self._pub_lock = threading.Lock()
        self._status_stop = threading.Event()
        self._status_thread: threading.Thread | None = None

    # -- start-up -----------------------------------------------------------------------
    def start(self) -> None:
        """Resume from the newest checkpoint or start fresh, then load stored episodes."""
        if self._started:
            return
        self._started = True
        self._status_thread = threading.Thread(target=self._heartbeat, name="learner-status",
                                               daemon=True)
        self._status_thread.start()
        ckpt = self._resume_newest_intact() if self.resume else None
        kept = self._load_kept() if self.lcfg.load_from_store else 0
        has_store = (self.cfg.database_url is not None
                     or (self.cfg.data_dir / "robolearn.db").exists())
        if self.lcfg.load_from_store and has_store:
            with Store.open(self.cfg.data_dir, self.cfg.database_url) as store:
                loaded = kept + self._load_store(store, kept_ids=set(self._kept_ids))
                if ckpt is not None:
                    # Episodes stored while the learner was down are new experience.
                    known = set(self.online.episode_ids) | set(self.demos.episode_ids)
                    newest = max(known, default=0)
                    before = len(self.online)
                    loaded += self._load_store(store, after_id=newest,
                                               kept_ids=set(self._kept_ids))
                    self.counters.env_steps += len(self.online) - before
            log.info("loaded %d stored episodes: %d online, %d demo transitions", loaded,
                     len(self.online), len(self.demos))
        elif kept:
            log.info("no store to load from: %d kept episodes, %d online, %d demo "
                     "transitions", kept, len(self.online), len(self.demos))
        # Restored from the checkpoint's index: from here on every episode is new.
        self.online.end_restore()
        self.demos.end_restore()
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

    def _resume_newest_intact(self) -> Path | None:
        """Load the newest checkpoint that reads back whole; a damaged one (truncated by a
        full disk or a crash mid-copy) is passed over with a warning saying which and why.

        Raises:
            ConfigError: an intact checkpoint of another observation layout (an older one
                would be of the same config, so none is tried).
        """
        found = sorted(self.ckpt_dir.glob(CHECKPOINT_GLOB), reverse=True)
        if not found:
            log.warning("--resume: no checkpoint in %s; starting fresh", self.ckpt_dir)
            return None
        for path in found:
            try:
                state = read_checkpoint(path, self.spec, self.device)
            except _CheckpointUnreadable as exc:
                log.warning("--resume: checkpoint %s is damaged (%s); trying the next older "
                            "one", path, exc)
                continue
            self._apply_checkpoint(state, path)
            if path != found[0]:
                log.warning("--resume: resumed from %s, the newest intact checkpoint (newer "
                            "damaged ones: %s)", path.name,
                            ", ".join(p.name for p in found[:found.index(path)]))
            return path
        raise StoreError(f"learner --resume: none of the {len(found)} checkpoints in "
                         f"{self.ckpt_dir} is readable (see the warnings above); move them "
                         "away to start fresh, or restore one from a backup")

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
                                            self.lcfg.metrics_every_s, run_id=self.run_id,
                                            tracker=open_tracker(self.cfg, self.session))
        self.metrics_writer.begin(self.counters.update_step)

    def progress(self) -> Progress:
        """Counters and replay sizes now, as the metrics rows record them."""
        return Progress(update_step=self.counters.update_step,
                        env_steps=self.counters.env_steps, episodes=self.counters.episodes,
                        online_transitions=len(self.online), demo_transitions=len(self.demos),
                        online_episodes=self.online.num_episodes,
                        demo_episodes=self.demos.num_episodes)

    def _load_kept(self) -> int:
        """Load the episodes this learner kept (learner.keep_received) into the buffers
        that want them (after a resume: those its checkpoint held); returns how many."""
        self._kept_ids = []
        if self.archive is None:
            return 0
        loaded = 0
        for episode_id in self.archive.ids():
            if not (self.online.wants(episode_id) or self.demos.wants(episode_id)):
                continue
            episode = self.archive.read(episode_id)
            if episode is None:
                continue
            if append_loaded(self.online, self.demos, episode,
                             min_demo_steps=self.lcfg.min_demo_steps):
                loaded += 1
                self._kept_ids.append(episode_id)
        if loaded:
            log.info("loaded %d episodes this learner kept in %s", loaded,
                     self.archive.directory)
        return loaded

    def _load_store(self, store: Store, after_id: int | None = None,
                    kept_ids: set[int] | None = None) -> int:
        rf = self.cfg.reset_free
        # A reset-free run's one policy learns both directions: load both tasks' episodes.
        tasks = (rf.forward_task, rf.backward_task) if rf.enabled else (self.cfg.robot.task,)
        late = None
        weights: dict[str, float] = {t.source: t.weight for t in self.cfg.rewards.shaping
                                     if t.process != "inline"}
        if weights:
            # Worker values live in the step rows, not in the episode file's rewards.
            def late(episode_id: int, steps: int) -> np.ndarray:
                return stored_late_delta(store, episode_id, weights, steps)
        # A learned success detector judges every stored episode anew: the stored rewards
        # and outcomes may be the sim's (demos) or an older detector's.
        judge = EpisodeJudge(self.cfg, store) if judges_stored_episodes(self.cfg) else None
        loaded = 0
        for task in tasks:
            skip: set[int] = set(kept_ids or ())
            if after_id is not None:
                skip |= {r.id for r in store.list_episodes(task=task) if r.id <= after_id}
            loaded += load_from_store(store, self.online, self.demos, task=task,
                                      cameras=self.spec.cameras,
                                      skip_ids=skip, reward_delta=late, judge=judge,
                                      min_demo_steps=self.lcfg.min_demo_steps,
                                      skip_missing=self.archive is not None)
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
        # Attributed to the authenticated identity, never to the sender field alone.
        if msg.peer is not None and msg.peer not in self.actor_peers:
            self._warnings.warn(f"peer:{msg.peer}", "learner: refused %s from %r: only the "
                                "run's actor identities %s feed the learner", msg.type,
                                msg.peer, sorted(self.actor_peers))
            return
        source: Source = (msg.peer, msg.sender)
        if msg.type == "transition":
            self.fleet.transition(self._robot(source))
            finished = self.assembler.transition(msg, source)
        elif msg.type == "episode_stored":
            finished = self.assembler.stored(msg, source)
        elif msg.type == "episode_rewards":
            finished = self.assembler.rewards(msg, source)
        else:
            self._warnings.warn(f"type:{msg.type}", "learner: ignoring %s from %s", msg.type,
                                msg.sender)
            return
        if finished is not None:
            self._take_episode(finished)

    def _robot(self, source: Source) -> str | None:
        peer, sender = source
        return self._robot_of.get(peer if peer is not None else sender)

    def _holds_store_episode(self, episode_id: int) -> bool:
        return episode_id in set(self.online.episode_ids) | set(self.demos.episode_ids)

    def flush_waiting(self, now: float | None = None) -> None:
        """Add finished episodes whose store id never came (the actor died before storing)
        or whose late rewards did not come within rewards.late_wait_s."""
        for episode in self.assembler.flush(now):
            self._take_episode(episode)

    def _take_episode(self, ep: AssembledEpisode) -> None:
        """Add a whole episode to the replay and count it (one loaded from the store at
        start is only counted)."""
        if not ep.loaded_before:
            try:
                ep.stream_into(self.replay, self.spec.cameras)
            except (KeyError, ValueError) as e:
                log.warning("learner: dropped episode %s: %s", ep.key, e)
                return
            if self.archive is not None and ep.episode_id is not None:
                self.archive.add(ep.as_store_episode(self.spec, self.spec.cameras))
        self.counters.env_steps += ep.num_steps
        self.counters.episodes += 1
        if not ep.loaded_before:
            self.fleet.episode(self._robot(ep.source), ep.num_steps, ep.success,
                               ep.intervention)
        if (not ep.loaded_before and ep.episode_id is not None
                and self.metrics_writer is not None):
            self.metrics_writer.saw_episode(ep.episode_id)
        self._track_episode(ep)

    def _track_episode(self, ep: AssembledEpisode) -> None:
        """Send a received episode's return and success to the experiment trackers."""
        if self.metrics_writer is None:
            return
        self.metrics_writer.episode(EpisodeOutcome(
            env_steps=self.counters.env_steps, steps=ep.num_steps,
            episode_return=ep.episode_return, success=ep.success,
            intervention=ep.intervention))

    # -- training -----------------------------------------------------------------------
    @property
    def steps_received(self) -> int:
        """Environment steps received: those of episodes in the buffers (and loaded from the
        store) and those of episodes still arriving."""
        return self.counters.env_steps + self.assembler.pending_steps

    def ready(self) -> bool:
        """The buffers hold enough to train on (learner.min_transitions, one online)."""
        return (len(self.online) + len(self.demos) >= self.lcfg.min_transitions
                and len(self.online) > 0)

    def updates_owed(self) -> int:
        """Updates the UTD target asks for that are not made yet: utd per step received and
        per demo transition loaded at start, plus the pretraining updates (0 without a
        target)."""
        utd = self.lcfg.utd
        if utd is None:
            return 0
        budget = (utd * (self.steps_received + self.counters.demo_transitions)
                  + self.lcfg.pretrain_updates)
        return max(0, math.ceil(budget - 1e-9) - self.counters.update_step)

    def can_update(self) -> bool:
        if not self.ready():
            return False
        return self.lcfg.utd is None or self.updates_owed() > 0

    def update(self) -> dict[str, torch.Tensor]:
        batch = self.replay.sample(pin_memory=self.device.type == "cuda").to(self.device)
        metrics = self.agent.update(batch)
        # One tiny device op, no sync: read when weights or a checkpoint would go out.
        self._losses_finite &= torch.isfinite(metrics["loss"])
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

    def check_finite(self, what: str) -> None:
        """Stop before `what` leaves the learner if a loss since the last check, or any
        network parameter or buffer, is NaN or inf.

        Raises:
            TrainingDiverged: it is; the reason is logged, sent to actors as a failed
                learner_status, and nothing further is published or checkpointed.
        """
        if self.failed is not None:
            raise TrainingDiverged(self.failed)
        losses_ok = bool(self._losses_finite)  # the one host sync of the check
        bad = nonfinite_tensors({name: module.state_dict()
                                 for name, module in self.agent.networks.items()})
        if losses_ok and not bad:
            return
        found = []
        if not losses_ok:
            found.append("a loss since the last check")
        if bad:
            found.append(f"{len(bad)} parameter tensor(s) ({', '.join(bad[:3])}"
                         f"{', ...' if len(bad) > 3 else ''})")
        kept = (f"the last good checkpoint {self.last_checkpoint} is kept" if
                self.last_checkpoint is not None else "no checkpoint was written")
        self.failed = (
            f"learner: training diverged by update {self.counters.update_step}: "
            f"{' and '.join(found)} went NaN or inf; {what} not sent and the learner stops "
            f"({kept}). Lower learner.cqn.lr or check the rewards and demonstrations, then "
            "restart with --resume")
        log.error("%s", self.failed)
        self._status_stop.set()  # the heartbeat says running no more
        self._send_status("failed", error=self.failed)
        raise TrainingDiverged(self.failed)

    def publish_weights(self) -> None:
        self.check_finite(f"weights version {self.counters.version + 1}")
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
            with self._pub_lock:
                self._pub.publish("weights", *self._last_weights)
            self._published_at = time.monotonic()
            self._published_env_steps = self.counters.env_steps

    def _send_status(self, state: str, error: str | None = None) -> None:
        body: dict[str, Any] = {"session": self.session, "state": state,
                                "version": self.counters.version,
                                "update_step": self.counters.update_step,
                                "env_steps": self.counters.env_steps,
                                **self.utd.report().status_fields()}
        if self.cfg.fleet.robots:
            body["robots"] = self.fleet.report()
        if error is not None:
            body["error"] = error[:2000]
        with self._pub_lock:
            if not self._pub.closed:
                self._pub.publish("learner_status", body)

    def _heartbeat(self) -> None:
        """learner_status every STATUS_EVERY_S until close() or a failure."""
        while not self._status_stop.wait(STATUS_EVERY_S):
            state = ("pretraining" if self.pretraining else
                     "training" if self._last_weights is not None else "starting")
            self._send_status(state)

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
                self._observe_utd()
                if self.metrics_writer is not None:
                    self.metrics_writer.maybe_write(self.progress(), self._latest,
                                                    self.utd.report())
        finally:
            if self.failed is None:  # never checkpoint what diverged
                self.save_checkpoint()
            if self.metrics_writer is not None:
                self.metrics_writer.write(self.progress(), self._latest,
                                          self._observe_utd(force=True))

    def _observe_utd(self, force: bool = False) -> UtdReport:
        """Measure the UTD held; log once when the learner falls behind its target and once
        when it holds it again."""
        report = self.utd.observe(self.counters.update_step, self.steps_received,
                                  self.updates_owed(), self.ready(), force=force)
        now = time.monotonic()
        if report.behind and self._behind_since is None:
            self._behind_since = now
            log.warning("learner: cannot hold its target of %s updates per env step: %s. "
                        "It trains flat out; a smaller network or batch (learner.cqn."
                        "hidden_dim, batch_size, demo_batch_size), a GPU, or a lower "
                        "learner.utd would let it keep up", self.lcfg.utd, report.describe())
        elif (not report.behind and self._behind_since is not None
              and report.held is not None):
            log.info("learner: holds its UTD target again after %.0f s behind: %s",
                     now - self._behind_since, report.describe())
            self._behind_since = None
        return report

    # -- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Atomically write ckpt_<update>.pt (temp file + rename), then delete the oldest
        beyond learner.keep_checkpoints.

        Raises:
            TrainingDiverged: a loss or parameter is non-finite (nothing is written).
            StoreError: the file could not be written (disk full, permissions); no temp file
                is left and the earlier checkpoints are untouched.
        """
        self.check_finite("checkpoint")
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
        try:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            torch.save(state, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except (OSError, RuntimeError) as exc:  # torch.save wraps write errors in RuntimeError
            try:
                tmp.unlink(missing_ok=True)
            except OSError as cleanup:
                log.error("learner: could not remove the partial checkpoint %s: %s", tmp,
                          cleanup)
            raise StoreError(
                f"learner: could not write checkpoint {path} ({type(exc).__name__}: {exc}); "
                f"nothing was written and the earlier checkpoints are intact. Free space in "
                f"{self.ckpt_dir} or point learner.checkpoint_dir elsewhere") from exc
        self.last_checkpoint = path
        log.info("checkpoint %s (update %d, env steps %d)", path.name,
                 self.counters.update_step, self.counters.env_steps)
        self._register_checkpoint(path)
        self._prune_checkpoints(path)
        return path

    def _register_checkpoint(self, path: Path) -> None:
        """A row per checkpoint of a run, for its summary (the file is the checkpoint: a
        store that cannot take the row costs a warning, not the run)."""
        # The run it trains for: given, or the one its newest episode came from.
        run_id = self.metrics_writer.run_id if self.metrics_writer is not None else self.run_id
        if self._store is None or run_id is None:
            return
        try:
            relative = path.resolve().relative_to(Path(self.cfg.data_dir).resolve())
        except ValueError:  # learner.checkpoint_dir outside the data directory
            relative = path.resolve()
        try:
            with self._store.session() as db:
                add_checkpoint(db, run_id, str(relative), env_steps=self.counters.env_steps,
                               update_steps=self.counters.update_step,
                               episodes=self.counters.episodes)
                db.commit()
        except Exception as exc:  # any database failure: the file is written all the same
            log.warning("learner: checkpoint %s written, but not recorded in the store (%s)",
                        path.name, exc)

    def _prune_checkpoints(self, written: Path) -> None:
        """Keep the newest learner.keep_checkpoints files; never delete `written`."""
        found = sorted(self.ckpt_dir.glob(CHECKPOINT_GLOB))
        old = [p for p in found[:max(0, len(found) - self.lcfg.keep_checkpoints)]
               if p != written]
        for path in old:
            try:
                path.unlink()
            except OSError as exc:
                log.warning("learner: could not delete old checkpoint %s (%s); it stays",
                            path, exc)
        if old:
            log.debug("learner: deleted %d old checkpoint(s), keeping %d", len(old),
                      self.lcfg.keep_checkpoints)

    def load_checkpoint(self, path: Path) -> None:
        """Resume from `path`.

        Raises:
            StoreError: the file is damaged.
            ConfigError: it is of another observation layout.
        """
        try:
            state = read_checkpoint(path, self.spec, self.device)
        except _CheckpointUnreadable as exc:
            raise StoreError(f"learner: checkpoint {path} is damaged ({exc})") from exc
        self._apply_checkpoint(state, path)

    def _apply_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        self.agent.load_state_dict(state["agent"])
        self.counters = Counters(**state["counters"])
        self.online.load_state_dict(state["online"])
        self.demos.load_state_dict(state["demos"])
        self.last_checkpoint = path
        log.info("resumed from %s: update %d, env steps %d, version %d", path.name,
                 self.counters.update_step, self.counters.env_steps, self.counters.version)

    def close(self) -> None:
        self._status_stop.set()
        if self._status_thread is not None:
            self._status_thread.join(5.0)
        if self.failed is None and self._started:
            self._send_status("stopped")
        self._pull.close()
        with self._pub_lock:
            self._pub.close()
        if self.archive is not None:
            self.archive.close()  # what it received is on its disk before it exits
        if self.metrics_writer is not None:
            self.metrics_writer.close()  # trackers flush their last rows
        if self._store is not None:
            self._store.close()
            self._store = None

