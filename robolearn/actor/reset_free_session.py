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
from robolearn.protocol.messages import Reply
from robolearn.store import Store
from robolearn.store.operator_requests import get_request, open_request

log = logging.getLogger(__name__)

# Episode ends that say nothing about the policy (an operator or the system stopped it):
# the same direction runs again and no failure is counted.
_NOT_A_TRY = ("estop", "shutdown", "stale_observation")
HOME_TOL_RAD = 0.02  # joint position (rad) and speed (rad/s) that count as home and still
STILL_M = 0.001  # finger or hand travel over three control periods that counts as still
LIFT_STEP_M = 0.02  # hand lift per control period while letting go


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
        self._home_q: np.ndarray | None = None  # joint pose after the first reset

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
            self.monitor.start_episode()
            if self._home_q is None and "joint_pos" in obs:
                # The pose a reset starts from is where homing brings the arm back to.
                self._home_q = np.asarray(obs["joint_pos"], dtype=np.float64).copy()
            return obs
        self.monitor.start_episode()
        obs = self._continue()
        if self.env.task_success:
            # Nothing to practise: this direction is done already (the other one failed to
            # undo it). Running it would record a free success and hide the failures.
            done = self.task
            decision = self.scheduler.skip_done()
            log.info("reset-free: %s is already done; running %s", done, decision.task)
            obs = self._continue(home=False)  # homed a moment ago
        return obs

    def _set_direction_input(self) -> None:
        # The policy's direction input, part of every observation from the first on.
        self.env.state_suffix = (direction_features(self.direction)
                                 if self.cfg.actor.observe_state else None)

    def _continue(self, home: bool = True) -> dict[str, np.ndarray]:
        self._set_direction_input()
        if home and self.rf.home_between_episodes:
            self._go_home()
        msg = self.env.request("continue_task", {"task": self.task},
                               timeout_s=max(self.cfg.actor.command_timeout_s, 1.0))
        reply = Reply.from_message(msg)
        data = reply.data or {}
        if not reply.ok:
            raise DriverError(f"driver refused continue_task {self.task!r}: "
                              f"{reply.reason} {data}")
        self.env.description = str(data.get("description", ""))
        return self.env.start_from(msg.sent_ns)

    def _go_home(self) -> None:
        """Open the gripper and move the arm home; objects stay where they are. Returns once
        the arm is still at the pose the first reset started from. An e-stop meanwhile is
        waited out (heartbeat "estop") and the homing starts again after its release.

        Raises:
            DriverError: the driver refused, or the arm was not home within home_timeout_s.
        """
        while True:
            self._wait_estop_release()
            if not self._let_go():
                continue
            msg = self.env.request("home", {},
                                   timeout_s=max(self.cfg.actor.command_timeout_s, 1.0))
            reply = Reply.from_message(msg)
            if not reply.ok and reply.reason == "estop_latched":
                continue
            if not reply.ok:
                raise DriverError(f"driver refused home: {reply.reason} {reply.data or {}}")
            if self._wait_home(msg.sent_ns):
                return

    def _let_go(self) -> bool:
        """Open the gripper, then lift the hand `home_lift_m` straight up, streaming
        end-effector actions at the control rate through the actor's safety filter (the same
        path as the policy's actions): a joint-space move home straight from a grasp would drag
        what the fingers still surround (a half-closed drawer). False when an e-stop
        interrupted it.

        Raises:
            DriverError: the driver refused, or this took longer than home_timeout_s.
        """
        deadline = time.monotonic() + self.rf.home_timeout_s
        period = 1.0 / self.cfg.actor.control_hz
        scale = self.env.scale
        widths: list[float] = []
        heights: list[float] = []
        lift_to: float | None = None
        sent = False  # stillness counts only once the open command has gone out
        while time.monotonic() < deadline:
            state = self.env.latest_state()
            if state is None:
                time.sleep(period)
                continue
            if sent:
                widths.append(float(state.gripper_width_m))
                heights.append(float(state.ee_pos_m[2]))
            if lift_to is None:
                if len(widths) >= 3 and max(widths[-3:]) - min(widths[-3:]) < STILL_M:
                    lift_to = heights[-1] + self.rf.home_lift_m
                    heights = heights[-1:]  # a stall is judged on lift-phase readings only
            elif (heights[-1] >= lift_to - STILL_M
                  or (len(heights) >= 3 and max(heights[-3:]) - min(heights[-3:]) < STILL_M)):
                return True  # lifted, or at the top of the workspace
            action = np.zeros(scale.action_dim, dtype=np.float32)
            action[-1] = -1.0  # gripper open
            if lift_to is not None:
                action[2] = np.clip(lift_to - heights[-1], 0.0, LIFT_STEP_M) / scale.xyz_m
            result, reply = self.env.send(action, state=state)
            sent = True
            if result.command is None:
                return False  # e-stop: the filter sent nothing
            if reply is not None and not reply.ok:
                if reply.reason == "estop_latched":
                    return False
                raise DriverError(f"driver refused to let go before homing: "
                                  f"{reply.reason} {reply.data or {}}")
            time.sleep(period)
        raise DriverError(f"reset-free: opening the gripper and lifting took longer than "
                          f"{self.rf.home_timeout_s:.0f} s")

    def _wait_estop_release(self) -> None:
        while self.env.estop_latched:
            self._heartbeat("estop")
            time.sleep(0.05)

    def _wait_home(self, sent_ns: int) -> bool:
        """True once home and still; False when an e-stop interrupted the motion."""
        deadline = time.monotonic() + self.rf.home_timeout_s
        error, beat = float("nan"), 0.0
        while time.monotonic() < deadline:
            state = self.env.latest_state()
            if state is not None and state.stamp_ns > sent_ns:
                if state.estop:
                    return False
                q = np.asarray(state.joint_pos_rad, dtype=np.float64)
                qd = np.asarray(state.joint_vel_rad_s, dtype=np.float64)
                error = (float(np.max(np.abs(q - self._home_q)))
                         if self._home_q is not None and self._home_q.shape == q.shape else 0.0)
                if error < HOME_TOL_RAD and float(np.max(np.abs(qd))) < HOME_TOL_RAD:
                    return True
            if time.monotonic() - beat > 0.2:
                self._heartbeat("homing")
                beat = time.monotonic()
            time.sleep(0.02)
        raise DriverError(f"reset-free: the arm did not reach home within "
                          f"{self.rf.home_timeout_s:.0f} s (joint error {error:.3f} rad); is "
                          "it blocked?")

    def check_step(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> str | None:
        """Feed one step to the stuck tests; returns an end reason when stuck."""
        prob = float(info.get("success_prob", float(bool(info["success"]))))
        state = self.env.latest_state()
        objects = None if state is None else state.object_state
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
        decision = self.scheduler.after_episode(success, end_reason,
                                                self.monitor.moved_objects)
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
            rec = open_request(db, self.run_id, decision.reason, text, robot=self.cfg.robot_name)
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
