"""Operator control of a running actor, actor side: a thread that serves `actor_command`s.

The thread owns two sockets: a ROUTER on `actor.control_address` for operators and a DEALER
of its own to the arm driver's command socket. An e-stop therefore never waits for a
control step, the database or the learner: the thread sets the actor's local latch (the
loop sends no motion from that instant) and forwards the e-stop to the driver at once,
answering only after the driver confirmed. The driver serves commands in arrival order and
refuses motion while latched, so no motion command runs after that confirmation.

Everything else (pause, takeover, teleop) only changes `OperatorState`, which the control
loop reads at its step boundaries.

Commands are attributed to the authenticated key that sent them (`Message.peer`): the
service vouches for the signed-in user it names in `operator` (it checked the role and
audits it), the local CLI is "operator". The `sender` field is never believed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import zmq

from robolearn.actor.control import ActorStatus
from robolearn.config import RunConfig
from robolearn.config.sockets import ACTOR, identity
from robolearn.errors import PeerTimeout
from robolearn.protocol import Message, Replier, Requester, RoutingId
from robolearn.protocol.messages import ActorCommand, Reply

log = logging.getLogger(__name__)


class OperatorState:
    """What operators asked of the actor; shared by the control thread and the loop.

    Args:
        action_dim: length of a policy action (teleop actions must match it).
        estop: the actor's local e-stop latch; the env consults it before every command.
    """

    def __init__(self, action_dim: int, estop: threading.Event) -> None:
        self.action_dim = action_dim
        self.estop = estop
        self._lock = threading.Lock()
        self._paused = False
        self._takeover = False
        self._teleop: np.ndarray | None = None
        self._teleop_ns = 0
        self._episode = -1
        self._step = 0
        self._driver_estop = False
        self._last_input_ns = 0  # the operator's newest sign of life during a takeover
        self.takeover_ended = ""  # why the last takeover ended by itself, for telemetry

    # -- written by the control thread ---------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused

    def set_takeover(self, active: bool, now_ns: int | None = None) -> None:
        with self._lock:
            self._takeover = active
            # A new takeover starts from "hold still", never from an old session's action.
            self._teleop = None
            self._last_input_ns = time.monotonic_ns() if now_ns is None else now_ns
            if active:
                self.takeover_ended = ""

    def set_teleop(self, action: np.ndarray, now_ns: int) -> None:
        with self._lock:
            self._teleop = np.array(action, dtype=np.float32)
            self._teleop_ns = now_ns
            self._last_input_ns = now_ns

    def end_takeover_if_silent(self, now_ns: int, timeout_ns: int) -> bool:
        """Deadman: end a takeover whose operator sent nothing for `timeout_ns` (a closed
        browser, a dead network, a crashed teleop program). Returns True when it ended now."""
        with self._lock:
            if not self._takeover or now_ns - self._last_input_ns <= timeout_ns:
                return False
            self._takeover = False
            self._teleop = None
            self.takeover_ended = (f"no operator input for {timeout_ns / 1e9:.1f} s: "
                                   "takeover ended, the policy drives again")
            return True

    # -- written by the loop -------------------------------------------------------------
    def set_progress(self, episode: int, step: int) -> None:
        with self._lock:
            self._episode, self._step = episode, step

    def set_driver_estop(self, latched: bool) -> None:
        """What the driver's newest state says (an e-stop from the CLI shows up here).

        The driver holds the one latch: when it is seen to go from latched to released
        (released there by an authenticated operator), the actor's own latch follows, so the
        actor, the service and the UI never disagree with the arm.
        """
        with self._lock:
            if self._driver_estop and not latched:
                self.estop.clear()
            self._driver_estop = latched

    # -- read by both --------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def takeover(self) -> bool:
        return self._takeover

    def status(self) -> ActorStatus:
        with self._lock:
            return ActorStatus(estop_latched=self.estop.is_set() or self._driver_estop,
                               paused=self._paused, takeover=self._takeover,
                               episode=self._episode, step=self._step)

    def teleop_action(self, now_ns: int, stale_ns: int, hold_gripper: float
                      ) -> tuple[np.ndarray, bool]:
        """The action to send for this step of a takeover.

        Args:
            now_ns: the step's time (time.monotonic_ns()).
            stale_ns: an operator action older than this no longer moves the arm.
            hold_gripper: the gripper value (policy space) to keep when nothing is fresh.

        Returns:
            (action, fresh): the newest operator action and True if it is fresh; otherwise
            zero motion with the gripper where the operator last put it (or at
            `hold_gripper`) and False: a step nobody steered, not an intervention.
        """
        with self._lock:
            action, stamp = self._teleop, self._teleop_ns
        if action is not None and now_ns - stamp <= stale_ns:
            return action.copy(), True
        hold = np.zeros(self.action_dim, dtype=np.float32)
        hold[-1] = action[-1] if action is not None else hold_gripper
        return hold, False


class ControlServer:
    """Serve operator commands for one actor on a dedicated thread.

    Args:
        cfg: the run config (control address, driver command address, timeouts).
        ctx: the process's ZeroMQ context.
        state: the shared operator state.
    """

    def __init__(self, cfg: RunConfig, ctx: zmq.Context[Any], state: OperatorState) -> None:
        self.cfg = cfg
        self.state = state
        self._ctx = ctx
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="actor-control", daemon=True)
        self.handled: dict[str, int] = {}

    def start(self) -> None:
        """Start the thread and wait until its sockets are bound.

        Raises:
            ConfigError: the control address cannot be bound (in use, bad address).
        """
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _run(self) -> None:
        cfg = self.cfg
        # This robot's actor: "actor" for a run of one robot, "actor-<robot>" in a fleet.
        me = identity(cfg, ACTOR)
        try:
            server = Replier(self._ctx, cfg.actor.control_address, me,
                             security=cfg.socket_security(cfg.actor.control_address, ACTOR))
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        driver = Requester(self._ctx, cfg.robot.command_address, f"{me}-control",
                           security=cfg.socket_security(cfg.robot.command_address, ACTOR))
        self._ready.set()
        log.info("actor control on %s", server.address)
        try:
            while not self._stop.is_set():
                req = server.poll(0.1)
                if req is not None:
                    self._handle(server, driver, *req)
        finally:
            server.close()
            driver.close()

    def _handle(self, server: Replier, driver: Requester, routing_id: RoutingId,
                msg: Message) -> None:
        if msg.type != "actor_command":
            self._answer(server, routing_id, msg, msg.type, attribute(msg), False,
                         "wrong_type", f"expected actor_command, got {msg.type}")
            return
        cmd = ActorCommand.from_message(msg)
        command = cmd.command
        self.handled[command] = self.handled.get(command, 0) + 1
        who = attribute(msg, cmd.operator)
        try:
            ok, reason, detail = self._dispatch(driver, cmd, who)
        except Exception as e:  # a bug here must reach the operator, not kill the thread
            log.exception("actor control: %s failed", command)
            ok, reason, detail = False, "internal_error", f"{type(e).__name__}: {e}"
        self._answer(server, routing_id, msg, command, who, ok, reason, detail)

    def _dispatch(self, driver: Requester, cmd: ActorCommand,
                  who: str) -> tuple[bool, str, str]:
        state = self.state
        command = cmd.command
        if command == "estop":
            state.estop.set()  # first: the loop sends no motion from this instant
            log.warning("E-STOP requested by %s (%s)", who, cmd.reason or "")
            return self._driver(driver, "estop", who)
        if command == "release_estop":
            ok, reason, detail = self._driver(driver, "estop_release", who)
            if ok:
                state.estop.clear()
                state.set_driver_estop(False)  # confirmed just now; the loop's view lags
                log.warning("e-stop released by %s", who)
            return ok, reason, detail
        if command == "status":
            return True, "", ""
        if command == "pause" or command == "resume":
            state.set_paused(command == "pause")
            log.info("%s by %s", "paused" if command == "pause" else "resumed", who)
            return True, "", ""
        if command == "takeover":
            if cmd.active is None:
                return False, "missing_field", "takeover needs active: true or false"
            state.set_takeover(cmd.active)
            log.info("takeover %s by %s", "started" if cmd.active else "ended", who)
            return True, "", ""
        if command == "teleop":
            return self._teleop(cmd)
        return False, "unsupported", f"command {command!r} is not served"  # pragma: no cover

    def _teleop(self, cmd: ActorCommand) -> tuple[bool, str, str]:
        state = self.state
        if not state.takeover:
            return False, "not_in_takeover", "start a takeover before sending teleop actions"
        if state.estop.is_set():
            return False, "estop_latched", "release the e-stop before teleoperating"
        action = cmd.action
        if action is None:
            return False, "missing_field", "teleop needs an action array"
        if action.shape != (state.action_dim,):
            return False, "bad_action", (f"teleop action has shape {action.shape}, expected "
                                         f"({state.action_dim},): xyz[, yaw], gripper")
        if np.abs(action).max() > 1.0:
            return False, "bad_action", "teleop action values must lie in [-1, 1]"
        state.set_teleop(action, time.monotonic_ns())
        return True, "", ""

    def _driver(self, driver: Requester, command: str, who: str) -> tuple[bool, str, str]:
        try:
            reply = Reply.from_message(driver.request(
                "arm_command", {"command": command, "reason": who},
                timeout_s=self.cfg.actor.estop_timeout_s))
        except PeerTimeout:
            log.error("driver did not confirm %s within %.2f s", command,
                      self.cfg.actor.estop_timeout_s)
            return False, "driver_timeout", (
                f"the arm driver at {self.cfg.robot.command_address} did not confirm "
                f"{command} within {self.cfg.actor.estop_timeout_s} s; the actor sends no "
                "motion, but use the hardware e-stop if the arm may be moving")
        if not reply.ok:
            return False, "driver_refused", f"driver refused {command}: {reply.reason}"
        return True, "", ""

    def _answer(self, server: Replier, routing_id: RoutingId, msg: Message, command: str,
                who: str, ok: bool, reason: str, detail: str) -> None:
        data: dict[str, Any] = self.state.status().to_wire()
        if detail:
            data["detail"] = detail
        if not ok:
            log.warning("actor control: refused %s from %s: %s %s", command, who, reason,
                        detail)
        server.reply(routing_id, msg, ok, reason, data)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)


def attribute(msg: Message, operator: str | None = None) -> str:
    """Who a control command comes from, for the log and the driver: the authenticated
    identity; for the service, the signed-in user it vouches for.

    Args:
        msg: the command as received (its authenticated peer and sender).
        operator: the command's `operator` field (ActorCommand.operator), if any.
    """
    named = operator or ""
    if msg.peer is None:
        return f"{named or msg.sender} (unauthenticated)"
    if msg.peer == "service":
        return f"{named} via the service" if named else "the service"
    return f"{msg.peer} ({named})" if named else msg.peer
