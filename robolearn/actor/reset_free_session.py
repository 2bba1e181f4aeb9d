"""The actor's reset-free side: start episodes without a reset, check every step for a stuck
robot, decide the next direction, and get help when stuck.

The decisions are `robolearn.actor.reset_free`'s pure logic; this module does the I/O around
them: driver commands (`continue_task` instead of `reset`), operator requests in the store,
and the wait for their resolution.

Resolution path: the actor polls the store for its open request (every
`reset_free.request_poll_s`) instead of being told over the control socket. The request and
its resolution are rows anyway, so a resolution made while the actor or the service restarts
is not lost, and the service needs no route to the actor for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from robolearn.actor.env import DriverError, RobotEnv
from robolearn.actor.reset_free import (
    BACKWARD,
    FORWARD,
    Decision,
    DirectionScheduler,
    ProgressMonitor,
    ResetFreeStats,
    direction_features,
)
from robolearn.config import RunConfig
from robolearn.store import Store
from robolearn.store.operator_requests import get_request, open_request

log = logging.getLogger(__name__)

# Episode ends that say nothing about the policy (an operator or the system stopped it):
# the same direction runs again and no failure is counted.
_NOT_A_TRY = ("estop", "shutdown", "stale_observation")


class ResetFreeSession:
    """Args:
        cfg: the run config (reset_free.enabled).
        env: the actor's environment.
        store: where operator requests go; None falls back to scripted resets.
        heartbeat: publishes the actor's state while it waits (e.g. "operator_request").
    """

    def __init__(self, cfg: RunConfig, env: RobotEnv, store: Store | None,
                 heartbeat: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.rf = cfg.reset_free
        self.env = env
        self.store = store
        self._heartbeat = heartbeat
        start = (BACKWARD if cfg.robot.kind == "sim" and cfg.robot.task == self.rf.backward_task
                 else FORWARD)
        self.scheduler = DirectionScheduler(self.rf, start)
        self.monitor = ProgressMonitor(self.rf, cfg.safety.workspace_min_m,
                                       cfg.safety.workspace_max_m)
        self.stats = ResetFreeStats(cfg.actor.control_hz)
        self.run_id: int | None = None
        self.last_decision: Decision | None = None
        self.open_request_id: int | None = None
        self._needs_reset = True  # the very first episode sets the scene up

    @property
    def direction(self) -> str:
        return self.scheduler.direction

    @property
    def task(self) -> str:
        return self.scheduler.task

    def begin(self, seed: int) -> dict[str, np.ndarray]:
        """Start an episode of the current direction: a reset only for the first episode
        (and after a scripted or emulated human reset), else a task switch that leaves the
        world as it is.

        Raises:
            DriverError: the driver refused the switch (e.g. not a reset-free task pair).
            StaleFrame: no fresh data after the switch.
        """
        if self._needs_reset:
            self._set_direction_input()
            obs, _ = self.env.reset(seed=seed)
            self._needs_reset = False
            self.monitor.reset()
            return obs
        obs = self._continue()
        if self.env.task_success:
            # Nothing to practise: this direction is done already (the other one failed to
            # undo it). Running it would record a free success and hide the failures.
            done = self.task
            decision = self.scheduler.skip_done()
            log.info("reset-free: %s is already done; running %s", done, decision.task)
            obs = self._continue()
        return obs

    def _set_direction_input(self) -> None:
        # The policy's direction input, part of every observation from the first on.
        self.env.state_suffix = (direction_features(self.direction)
                                 if self.cfg.actor.observe_state else None)

    def _continue(self) -> dict[str, np.ndarray]:
        self._set_direction_input()
        reply = self.env.request("continue_task", {"task": self.task},
                                 timeout_s=max(self.cfg.actor.command_timeout_s, 1.0))
        if not reply.body["ok"]:
            raise DriverError(f"driver refused continue_task {self.task!r}: "
                              f"{reply.body['reason']} {reply.body.get('data', {})}")
        self.env.description = str(reply.body.get("data", {}).get("description", ""))
        return self.env.start_from(reply.sent_ns)

    def check_step(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> str | None:
        """Feed one step to the stuck tests; returns an end reason when stuck."""
        prob = float(info.get("success_prob", float(bool(info["success"]))))
        state = self.env.latest_state()
        objects = None if state is None else state.arrays.get("object_state")
        return self.monitor.update(prob, obs["proprio"][:3], objects)

    def end(self, success: bool, end_reason: str, steps: int, intervention_steps: int,
            stop: threading.Event) -> Decision | None:
        """Record an episode, decide the next direction, and escalate when stuck (blocks
        while an operator request is open). Returns the decision (None: not a try)."""
        if end_reason in _NOT_A_TRY:
            return None
        self.stats.record_episode(self.direction, success, steps, intervention_steps)
        if success:
            self.monitor.reset()  # progress: the no-progress window starts afresh
        decision = self.scheduler.after_episode(success, end_reason)
        self.last_decision = decision
        log.info("reset-free: %s episode %s (%s) -> next %s (%s)%s", decision.reason,
                 "succeeded" if success else "failed", end_reason, decision.direction,
                 decision.task, ", escalating" if decision.escalate else "")
        if decision.escalate:
            self._escalate(decision, stop)
        return decision

    def _escalate(self, decision: Decision, stop: threading.Event) -> None:
        self.stats.escalations += 1
        if self.rf.on_stuck == "operator" and (self.store is None or self.run_id is None):
            log.warning("reset-free: stuck (%s) but the actor records nothing, so no operator "
                        "request can be raised; running a scripted reset instead",
                        decision.reason)
        if self.rf.on_stuck == "scripted_reset" or self.store is None or self.run_id is None:
            self.stats.scripted_resets += 1
            self._needs_reset = True
        else:
            resolution = self._ask_operator(decision, stop)
            if resolution == "human_reset":
                self.stats.human_resets += 1
                # In the sim nobody can put the scene back: the driver's reset stands in for
                # the person. On a real rig the person did it; nothing is sent.
                self._needs_reset = self.cfg.robot.kind == "sim"
        self.scheduler.resolved()
        self.monitor.reset()

    def _ask_operator(self, decision: Decision, stop: threading.Event) -> str | None:
        """Open a request and wait for its resolution; None if the actor was stopped."""
        assert self.store is not None and self.run_id is not None
        text = (f"{decision.reason} during {decision.direction} ({decision.task}); "
                f"{self.scheduler.failures_in_row} failed episode(s) in a row")
        with self.store.session() as db:
            rec = open_request(db, self.run_id, decision.reason, text)
            db.commit()
        self.open_request_id = rec.id
        log.warning("reset-free: paused; operator request %d is open: %s", rec.id, text)
        try:
            while not stop.is_set():
                with self.store.session() as db:
                    current = get_request(db, rec.id)
                if current is None or current.status != "open":
                    resolution = None if current is None else current.resolution
                    log.info("reset-free: operator request %d closed (%s); resuming",
                             rec.id, resolution)
                    return resolution
                self._heartbeat("operator_request")
                time.sleep(self.rf.request_poll_s)
            return None
        finally:
            self.open_request_id = None
