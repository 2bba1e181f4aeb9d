"""`robolearn estop` on a fleet config, against every robot's real driver process: it
latches every arm (each robot's own arm_state says so), `--robot` picks one, a release
frees one robot only, and a robot whose driver does not answer fails the command."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
import zmq

from robolearn.config import RunConfig, load_config
from robolearn.config.fleet import robot_views
from robolearn.processes import ProcessGroup
from robolearn.protocol import Subscriber
from tests.cli.test_run_processes import CLI, spawn, stop, wait_for


def write_fleet(write_config, robots: tuple[str, ...] = ("left", "right")) -> Path:
    path = write_config()
    raw = yaml.safe_load(path.read_text())
    raw["fleet"] = {"robots": [{"name": n} for n in robots]}
    path.write_text(yaml.safe_dump(raw))
    return path


def estop(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "estop", str(path), *args], capture_output=True, text=True,
                          timeout=60)


def latched(view: RunConfig) -> bool:
    """The e-stop flag of the robot's newest arm_state, as its driver publishes it."""
    address = view.robot.state_address
    ctx = zmq.Context()
    sub = Subscriber(ctx, address, types=("arm_state",),
                     security=view.socket_security(address, "operator"))
    try:
        msg = sub.wait_new("arm_state", timeout_s=10)
        assert msg is not None, f"no arm_state from {view.robot_name}"
        return bool(msg.body["estop"])
    finally:
        sub.close()
        ctx.term()


def test_estop_cli_latches_every_robot_of_a_fleet(write_config) -> None:
    path = write_fleet(write_config)
    cfg = load_config(path)
    group = ProcessGroup(cfg, log_level="warning")
    left, right = robot_views(cfg)
    try:
        group.start_drivers()
        answers: list[subprocess.CompletedProcess[str]] = []

        def both_latch() -> bool:
            answers.append(estop(path))
            return answers[-1].returncode == 0

        wait_for(both_latch, 60, "both drivers to answer", poll_s=0.2)
        out = answers[-1].stdout
        assert "left: e-stop LATCHED" in out and "right: e-stop LATCHED" in out
        assert latched(left) and latched(right)

        # A release needs a robot, and frees that one only.
        refused = estop(path, "--release")
        assert refused.returncode != 0 and "left, right" in refused.stdout
        assert latched(left) and latched(right)
        done = estop(path, "--release", "--robot", "left")
        assert done.returncode == 0, done.stdout
        assert "left: e-stop released" in done.stdout and "right" not in done.stdout
        assert not latched(left) and latched(right)

        # --robot latches one; an unknown robot is refused with the list.
        done = estop(path, "--robot", "left")
        assert done.returncode == 0 and "left: e-stop LATCHED" in done.stdout
        assert latched(left)
        unknown = estop(path, "--robot", "middle")
        assert unknown.returncode != 0 and "left, right" in unknown.stdout
    finally:
        group.stop()


def test_estop_cli_fails_when_one_robot_does_not_answer(write_config) -> None:
    path = write_fleet(write_config)
    cfg = load_config(path)
    group = ProcessGroup(cfg, log_level="warning")  # makes both robots' keys
    left, left_path = group.robots[0]
    proc = spawn("driver", str(left_path))  # only the left robot's driver runs
    try:
        answers: list[subprocess.CompletedProcess[str]] = []

        def left_latches() -> bool:
            answers.append(estop(path, "--timeout", "0.5"))
            return "left: e-stop LATCHED" in answers[-1].stdout

        wait_for(left_latches, 60, "the left driver to answer", poll_s=0.2)
        assert answers[-1].returncode == 2
        assert "right: no answer from the driver" in answers[-1].stdout
        assert latched(left)
    finally:
        assert stop(proc) == 0
        group.stop()
