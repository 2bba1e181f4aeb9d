"""The run's reward sources applied to every control step in the actor.

With the default `rewards.sparse: sim_success` and no shaping, the environment's own sparse
reward is used and nothing is loaded (`StepRewards.from_config` returns None), so the hot
path stays as it is. Otherwise the RewardService judges the observation each action led to:
its reward replaces the environment's, its success decides the episode's end and outcome,
and every source's value (the sim's ground truth too, for evaluation) is stored with the step.

Shaping terms with `process: worker` (or `auto` when too slow for the control period) run in
their own process (robolearn.rewards.worker): `apply` queues the step there and returns the
inline part of the reward; the worker's values arrive later (`apply` collects what has come
without waiting), and once an episode ended and all its values are in, `collect` merges them
into the episode's stored step rows and returns what the learner must add to its rewards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq

from robolearn.config import RunConfig
from robolearn.config.rewards import RewardsConfig, ShapingTerm
from robolearn.errors import RewardModelError, StoreError
from robolearn.store import Store

if TYPE_CHECKING:  # the reward models load torch; only runs that use them pay for it
    from robolearn.rewards.late_values import CompletedEpisode, LateValues
    from robolearn.rewards.service import RewardService
    from robolearn.rewards.worker import RewardWorker

log = logging.getLogger(__name__)


class StepRewards:
    """Scores one step (batch of 1) with the configured reward sources.

    Args:
        service: the loaded reward models.
        cameras: the env's camera names, in order.
        sim: the robot is the sim, so its ground-truth success exists.
    """

    def __init__(self, service: RewardService, cameras: tuple[str, ...], sim: bool, *,
                 workers: Sequence[RewardWorker] = (), late: LateValues | None = None,
                 store: Store | None = None, owned_ctx: zmq.Context[Any] | None = None,
                 worker_rewards: RewardsConfig | None = None,
                 ctx: zmq.Context[Any] | None = None) -> None:
        self.service = service
        self.cameras = cameras
        self.sim = sim
        # rewards.success_frames: success needs that many positive steps in a row.
        self.streak = service.new_streak()
        self.workers = list(workers)
        # What a dead worker is restarted with (the resolved rewards section, the context).
        self._worker_rewards, self._ctx = worker_rewards, ctx
        self.restarts = {w.source: 0 for w in self.workers}
        # Not None when the config has a non-inline term: then every episode ends with an
        # episode_rewards message to the learner (zeros when `auto` chose inline), which
        # is what the learner waits for.
        self.late = late
        self.store = store
        self._owned_ctx = owned_ctx
        self._episode: str | None = None
        self._dead: set[str] = set()

    @classmethod
    def from_config(cls, cfg: RunConfig, cameras: tuple[str, ...], store: Store | None,
                    run_id: int | None, ctx: zmq.Context[Any] | None = None) -> StepRewards | None:
        """None when the sim's sparse success, frame by frame, is the only source (nothing
        to load). Starts a worker process per shaping term that runs out of process.

        Raises:
            RewardModelError: a configured source has no usable model, or a worker failed
                to start.
        """
        rewards = cfg.rewards
        if (rewards.sparse == "sim_success" and not rewards.shaping
                and rewards.success_frames == 1):
            return None
        import torch

        from robolearn.rewards.late_values import LateValues
        from robolearn.rewards.service import RewardService
        from robolearn.rewards.worker import RewardWorker

        # Scoring a step is a batch of one frame per camera: a second thread only contends
        # with the learner and the drivers for the cores (on 2 busy cores two threads were
        # slower by orders of magnitude than one).
        torch.set_num_threads(1)
        period_s = 1.0 / cfg.actor.control_hz
        out_terms = [t for t in rewards.shaping if t.process == "worker" or (
            t.process == "auto" and _too_slow(cfg, t, store, run_id, period_s))]
        out_names = {t.source for t in out_terms}
        inline_cfg = rewards.model_copy(update={
            "shaping": tuple(t for t in rewards.shaping if t.source not in out_names)})
        service = RewardService(inline_cfg, store=store, run_id=run_id)
        log.info("rewards: sparse from %s, shaping inline %s, in workers %s", rewards.sparse,
                 [f"{t.weight}*{t.source}" for t in inline_cfg.shaping] or "none",
                 [f"{t.weight}*{t.source}" for t in out_terms] or "none")
        late = None
        if any(t.process != "inline" for t in rewards.shaping):
            late = LateValues({t.source: t.weight for t in out_terms})
        owned = None
        workers: list[RewardWorker] = []
        try:
            if out_terms and ctx is None:
                ctx = owned = zmq.Context()
            resolved = _resolve_model_paths(rewards, out_names, store, run_id)
            for term in out_terms:
                assert ctx is not None
                workers.append(RewardWorker(resolved, term.source, ctx))
        except BaseException:
            for w in workers:
                w.close()
            if owned is not None:
                owned.term()
            raise
        return cls(service, cameras, sim=cfg.robot.kind == "sim", workers=workers, late=late,
                   store=store, owned_ctx=owned, worker_rewards=resolved, ctx=ctx)

    def start_episode(self, key: str | None = None) -> None:
        """Call at every episode start: a success streak never spans two episodes. `key`
        (the actor's episode key) names the episode that worker values are filed under."""
        self.streak.start_episode()
        self._episode = key
        if self.late is not None and key is not None:
            self.late.start(key)

    def apply(self, next_obs: dict[str, np.ndarray], info: dict[str, Any], task: str,
              *, step: int | None = None) -> float:
        """The step's reward; updates `info` in place.

        `info["success"]` becomes the sparse source's verdict (the sim's own is kept as
        `info["sim_success"]`; with rewards.success_frames > 1 it needs that many positive
        steps in a row since `start_episode`), `info["success_prob"]` the source's
        probability where it has one, and `info["reward_scalars"]` every source's value for
        the step row (the inline sources'; worker values come later, see `collect`).
        With `step` (the action's 0-based index) given after `start_episode(key)`, the step
        is queued for the workers, and `info["reward_telemetry"]` says how they are doing.
        """
        sim_success = bool(info["success"])
        step_inputs = {"proprio": next_obs["proprio"][None],
                       "action": np.asarray(info["action"], np.float32)[None]}
        if "state" in next_obs:
            step_inputs["state"] = next_obs["state"][None]
        out = self.service.score(
            {name: next_obs[name][None] for name in self.cameras}, task,
            step_inputs=step_inputs,
            sim_success=np.array([sim_success]) if self.sim else None,
            streak=self.streak,
        )
        info["sim_success"] = sim_success
        info["success"] = bool(out.success[0])
        if out.success_prob is not None:
            info["success_prob"] = float(out.success_prob[0])
        info["reward_scalars"] = out.scalars(0)
        if self.workers:
            if step is not None and self._episode is not None:
                self._submit(self._episode, step, task, next_obs, step_inputs)
            self.poll()
            info["reward_telemetry"] = self.telemetry()
        return float(out.reward[0])

    def _submit(self, key: str, step: int, task: str, next_obs: dict[str, np.ndarray],
                step_inputs: dict[str, np.ndarray]) -> None:
        assert self.late is not None
        frames = {name: next_obs[name] for name in self.cameras}
        inputs = {k: v[0] for k, v in step_inputs.items()}
        for worker in self.workers:
            if worker.submit(key, step, task, frames, inputs):
                self.late.expect(key, step, worker.source)
            else:
                self.late.lost(key, step, worker.source)

    def poll(self) -> None:
        """File the worker values that have arrived; notice dead workers. Never waits."""
        if self.late is None:
            return
        for worker in self.workers:
            for v in worker.poll():
                if v.episode is not None and v.step is not None and v.value is not None:
                    self.late.add(v.episode, worker.source, v.step, v.value)
            if worker.failed is not None and worker.source not in self._dead:
                self._dead.add(worker.source)
                self.late.worker_died(worker.source)

    def restart_dead_workers(self) -> None:
        """Call between episodes, before the next one observes: start a new process for
        each worker that died, up to rewards.worker_restarts times per source (a model that
        fails to load, or a worker that keeps dying, is then left off). Blocks while the
        model loads."""
        if not self.workers or self._worker_rewards is None or self._ctx is None:
            return
        self.poll()
        limit = self._worker_rewards.worker_restarts
        for i, worker in enumerate(self.workers):
            source = worker.source
            if worker.failed is None or self.restarts[source] >= limit:
                continue
            self.restarts[source] += 1
            worker.close()
            from robolearn.rewards.worker import RewardWorker

            try:
                new = RewardWorker(self._worker_rewards, source, self._ctx)
            except RewardModelError as exc:
                log.error("reward worker %s: restart %d of %d failed: %s", source,
                          self.restarts[source], limit, exc)
                continue
            self.workers[i] = new
            self._dead.discard(source)
            if self.late is not None:
                self.late.worker_restarted(source)
            log.warning("reward worker %s restarted (%d of %d) after: %s", source,
                        self.restarts[source], limit, worker.failed)

    def telemetry(self) -> dict[str, str | int]:
        """Each worker's state ("ok" or "failed: <reason>"), its restarts and the values
        still awaited."""
        out: dict[str, str | int] = {
            f"reward_worker_{w.source}": "ok" if w.failed is None else f"failed: {w.failed}"
            for w in self.workers}
        out |= {f"reward_worker_{s}_restarts": n for s, n in self.restarts.items()}
        out["reward_values_awaited"] = self.late.awaited if self.late is not None else 0
        return out

    def end_episode(self, key: str, steps: int, episode_id: int | None,
                    to_learner: bool) -> None:
        """The episode `key` ended after `steps` steps, stored as `episode_id` (None: not
        recorded), its transitions sent to the learner or not."""
        if self.late is not None and key == self._episode:
            self.late.end(key, steps, episode_id, to_learner)
        self._episode = None

    def discard_episode(self, key: str) -> None:
        """Forget an episode that failed to record (its late values have nowhere to go)."""
        if self.late is not None:
            self.late.discard(key)
        if key == self._episode:
            self._episode = None

    def collect(self) -> list[CompletedEpisode]:
        """Episodes whose worker values are all in: their values are merged into their
        stored step rows here; the caller sends each `reward_delta` to the learner.
        Call between episodes (it writes to the database)."""
        if self.late is None:
            return []
        self.poll()
        done = self.late.completed()
        for episode in done:
            if episode.missing:
                log.warning("episode %s: %d worker reward values are missing (worker failed "
                            "or fell behind); those steps keep only their inline reward",
                            episode.key, episode.missing)
            if episode.episode_id is None or self.store is None:
                continue
            from robolearn.rewards.late_values import store_late_values

            try:
                store_late_values(self.store, episode.episode_id, episode.values)
            except StoreError as exc:
                log.error("%s", exc)
        return done

    def drain(self, timeout_s: float) -> list[CompletedEpisode]:
        """Wait up to `timeout_s` for the values still in flight (end of a run), then
        `collect`; what has not come by then is missing."""
        if self.late is None:
            return []
        deadline = time.monotonic() + timeout_s
        while self.late.awaited and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.02)
        if self.late.awaited:
            log.warning("rewards: %d worker values did not come within %.0f s; stored "
                        "without them", self.late.awaited, timeout_s)
            self.late.give_up()
        return self.collect()

    def close(self) -> None:
        """Stop the workers."""
        for worker in self.workers:
            worker.close()
        if self._owned_ctx is not None:
            self._owned_ctx.term()
            self._owned_ctx = None


def _resolve_model_paths(rewards: RewardsConfig, sources: AbstractSet[str], store: Store | None,
                         run_id: int | None) -> RewardsConfig:
    """The rewards section with the model file of every worker source filled in: a worker
    has no store to look the newest ready model up in."""
    from robolearn.rewards.service import RewardService

    update: dict[str, Any] = {}
    for kind in ("classifier", "preference"):
        if kind in sources:
            section = getattr(rewards, kind)
            path = RewardService._model_path(kind, section.model_path, store, run_id)
            update[kind] = section.model_copy(update={"model_path": path})
    return rewards.model_copy(update=update)


def _too_slow(cfg: RunConfig, term: ShapingTerm, store: Store | None, run_id: int | None,
              period_s: float) -> bool:
    """process: auto. Time one batch-1 inference of the term on a blank observation (after
    one warm-up call: first calls build caches and text embeddings) against the budget."""
    from robolearn.rewards.service import RewardService

    one = cfg.rewards.model_copy(update={
        "sparse": "none", "success_frames": 1,
        "shaping": (term.model_copy(update={"process": "inline"}),)})
    service = RewardService(one, store=store, run_id=run_id)
    frames = {c.name: np.zeros((1, *c.image_hw, 3), np.uint8) for c in cfg.cameras}
    inputs = None
    if service.preference is not None:
        names = service.preference.cfg.inputs
        width = service.preference.num_features
        # One input carries the model's whole width; the service concatenates them all.
        inputs = {n: np.zeros((1, width if i == 0 else 0), np.float32)
                  for i, n in enumerate(names)}
    task = cfg.robot.task or "task"
    service.score(frames, task, step_inputs=inputs)
    start = time.perf_counter()
    service.score(frames, task, step_inputs=inputs)
    took_s = time.perf_counter() - start
    budget_s = cfg.rewards.auto_budget_fraction * period_s
    slow = took_s > budget_s
    log.info("rewards: %s takes %.1f ms per step, budget %.1f ms (%.0f%% of the %.0f ms "
             "period): runs %s", term.source, took_s * 1e3, budget_s * 1e3,
             cfg.rewards.auto_budget_fraction * 100, period_s * 1e3,
             "in a worker process" if slow else "inline")
    return slow
