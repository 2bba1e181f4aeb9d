"""A takeover the learner asks for where its critic is uncertain (actor.ask_takeover).

`UncertaintyStreak` is the decision, pure and fed one step at a time: a policy step whose
uncertainty (the std of the critic's C51 return distribution at the chosen action) is above
the threshold extends a streak; `consecutive_steps` of them in a row ask, unless the last
answer is less than `cooldown_s` old. A step the policy did not drive (takeover, hold), an
e-stop, an evaluation episode or an episode end breaks the streak.

`TakeoverAsker` does the I/O around it for the actor: at the next step boundary it opens an
`uncertain_takeover` operator request for its robot (at most one open per robot) and holds the
arm (no motion commands, heartbeat "operator_request") until a person answers it in the store
(resolve or dismiss; polled, as reset-free requests are) or starts a takeover, whose teleop
then drives the episode on. The request is the person's to close: a takeover started from the
control page leaves it open until they resolve it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from robolearn.actor.control_server import OperatorState
from robolearn.actor.policies import ReportsUncertainty
from robolearn.actor.step import StepOutcome
from robolearn.config.models import AskTakeoverConfig
from robolearn.errors import ConfigError
from robolearn.store import Store
from robolearn.store.operator_requests import get_request, list_requests, open_request

log = logging.getLogger(__name__)

KIND = "uncertain_takeover"


@dataclass(frozen=True)
class Ask:
    """Why to ask: the streak that crossed the line."""

    steps: int
    mean: float  # mean uncertainty over the streak
    last: float
    threshold: float

    def reason(self) -> str:
        return (f"critic uncertain for {self.steps} policy steps in a row: return std "
                f"{self.mean:.3f} on average, {self.last:.3f} at the last step (threshold "
                f"{self.threshold:.3f}); please take over and show the way, or dismiss")


class UncertaintyStreak:
    """The decision: when a run of unsure policy steps should ask for a takeover.

    Args:
        cfg: threshold, consecutive_steps, cooldown_s.
    """

    def __init__(self, cfg: AskTakeoverConfig) -> None:
        self.cfg = cfg
        self._values: list[float] = []
        self._quiet_until_s = -math.inf

    @property
    def streak(self) -> int:
        return len(self._values)

    def observe(self, uncertainty: float | None, now_s: float, *, policy_drove: bool,
                estop: bool = False, evaluation: bool = False,
                episode_ends: bool = False) -> Ask | None:
        """Feed one step; returns an `Ask` when a request should open now.

        Args:
            uncertainty: the policy's last_uncertainty (None: its critic did not choose the
                action; that breaks the streak).
            now_s: a monotonic clock, s (for the cooldown).
            policy_drove: the policy's own action was sent (not an operator's, not a hold).
        """
        if (uncertainty is None or not policy_drove or estop or evaluation or episode_ends
                or not math.isfinite(uncertainty) or uncertainty <= self.cfg.threshold):
            self._values.clear()
            return None
        self._values.append(uncertainty)
        if len(self._values) < self.cfg.consecutive_steps or now_s < self._quiet_until_s:
            return None
        ask = Ask(len(self._values), sum(self._values) / len(self._values), uncertainty,
                  self.cfg.threshold)
        self._values.clear()
        return ask

    def answered(self, now_s: float) -> None:
        """The request was answered (or skipped) at `now_s`: the cooldown starts."""
        self._values.clear()
        self._quiet_until_s = now_s + self.cfg.cooldown_s


class TakeoverAsker:
    """The actor's side: feed it every step, and hold at the next step boundary when it asks.

    Args:
        cfg: actor.ask_takeover.
        policy: must report `last_uncertainty` (a cqn policy).
        store: where the request goes.
        robot: the fleet robot asking (cfg.robot_name; None for a run of one robot).
        operator: the control thread's state (a takeover started there ends the hold).
        heartbeat: publishes the actor's state while it holds.

    Raises:
        ConfigError: the policy has no critic to be unsure with, or there is no store.
    """

    def __init__(self, cfg: AskTakeoverConfig, policy: object, store: Store | None,
                 robot: str | None, operator: OperatorState,
                 heartbeat: Callable[[str], None]) -> None:
        if not isinstance(policy, ReportsUncertainty):
            raise ConfigError(
                f"actor.ask_takeover: policy {type(policy).__name__} has no critic to be "
                "uncertain with; use actor.policy.kind cqn or set actor.ask_takeover.enabled "
                "false")
        if store is None:
            raise ConfigError("actor.ask_takeover: the actor records nothing (actor.record "
                              "false), so no operator request can be opened; enable recording "
                              "or set actor.ask_takeover.enabled false")
        self.cfg, self.policy, self.store, self.robot = cfg, policy, store, robot
        self.operator, self._heartbeat = operator, heartbeat
        self.decision = UncertaintyStreak(cfg)
        self.pending: Ask | None = None  # asked; the actor holds before its next step
        self.open_request_id: int | None = None  # while holding

    def after_step(self, step: StepOutcome, evaluation: bool) -> None:
        """Feed the step just taken (its action came from the policy's last `act`)."""
        ends = step.terminated or step.truncated or step.stuck is not None
        self.pending = self.decision.observe(
            self.policy.last_uncertainty, time.monotonic(), policy_drove=step.acted_by == "policy",
            estop=step.estop, evaluation=evaluation, episode_ends=ends)

    def hold(self, run_id: int | None, stop: threading.Event) -> str | None:
        """Open the request and hold until it is answered, a takeover starts, or `stop`.
        The caller has stopped the arm and takes a fresh observation afterwards.

        Returns:
            The resolution ("takeover", "dismiss", ...), "takeover_started" when a takeover
            began while the request is still open, or None (stopped, or not asked: another
            request of this robot is still open, or no run).
        """
        ask, self.pending = self.pending, None
        if ask is None or run_id is None:
            return None
        try:
            return self._hold(ask, run_id, stop)
        finally:
            self.open_request_id = None
            self.decision.answered(time.monotonic())

    def _hold(self, ask: Ask, run_id: int, stop: threading.Event) -> str | None:
        with self.store.session() as db:
            mine = [r for r in list_requests(db, run_id=run_id, status="open")
                    if r.robot == self.robot]
            if mine:
                log.info("ask takeover: not asking, request %d of this robot is still open",
                         mine[0].id)
                return None
            rec = open_request(db, run_id, KIND, ask.reason(), robot=self.robot)
            db.commit()
        self.open_request_id = rec.id
        log.warning("ask takeover: holding the arm; operator request %d is open", rec.id)
        while not stop.is_set():
            if self.operator.takeover:
                log.info("ask takeover: an operator took over (request %d stays open until "
                         "they resolve it)", rec.id)
                return "takeover_started"
            with self.store.session() as db:
                current = get_request(db, rec.id)
            if current is None or current.status != "open":
                resolution = None if current is None else current.resolution
                log.info("ask takeover: request %d closed (%s); going on", rec.id, resolution)
                return resolution
            self._heartbeat("operator_request")  # its e-stop flag says if one is latched
            time.sleep(self.cfg.request_poll_s)
        return None
