"""End to end with real processes: the sim driver and the actor as separate OS processes,
talking over real ZeroMQ sockets, recording into a real SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml
import zmq

from robolearn.config import parse_config
from robolearn.protocol import SocketSecurity, Subscriber
from robolearn.store import Store

CLI = [sys.executable, "-m", "robolearn.cli.main", "--log-level", "warning"]


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CLI, *args])


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def data_dir(cfg_path: Path) -> Path:
    return Path(yaml.safe_load(cfg_path.read_text())["data_dir"])


def count_complete(cfg_path: Path) -> int:
    d = data_dir(cfg_path)
    if not (d / "robolearn.db").exists():
        return 0
    with Store.open(d) as store:
        return len(store.list_episodes())


def test_sigkill_of_actor_mid_motion_stops_the_arm_within_two_periods(write_config) -> None:
    cfg = write_config(actor={"policy": {"kind": "random"}, "episode_steps": 10_000,
                              "record": False})
    raw = yaml.safe_load(cfg.read_text())
    period_ns = int(1e9 / raw.get("actor", {}).get("control_hz", 10.0))
    driver = spawn("driver", str(cfg))
    actor = spawn("actor", str(cfg))
    ctx = zmq.Context()
    sub = Subscriber(ctx, raw["robot"]["state_address"], types=("arm_state",),
                     security=operator_security(raw, raw["robot"]["state_address"]))
    try:
        speeds: list[float] = []

        def moving() -> bool:
            msg = sub.wait_new("arm_state", timeout_s=0.5)
            if msg is None:
                return False
            speeds.append(float(np.abs(msg.arrays["joint_vel_rad_s"]).max()))
            return len(speeds) > 50 and max(speeds[-20:]) > 0.2

        wait_for(moving, 60, "the actor to move the arm")
        assert actor.poll() is None
        killed_ns = time.monotonic_ns()
        actor.send_signal(signal.SIGKILL)
        samples: list[tuple[int, float]] = []
        while time.monotonic_ns() - killed_ns < 1.0e9:
            msg = sub.wait_new("arm_state", timeout_s=0.5)
            if msg is not None:
                samples.append((msg.body["stamp_ns"],
                                float(np.abs(msg.arrays["joint_vel_rad_s"]).max())))
        # The arm has stopped when every later sample is still: find the first such time.
        still = 0.01  # rad/s on every joint
        stopped_at = None
        for i, (stamp, _) in enumerate(samples):
            if all(v < still for _, v in samples[i:]):
                stopped_at = stamp
                break
        assert stopped_at is not None, f"arm never stopped: {samples[-5:]}"
        assert stopped_at - killed_ns <= 2 * period_ns, (
            f"arm stopped {(stopped_at - killed_ns) / 1e6:.0f} ms after the kill")
    finally:
        sub.close()
        ctx.term()
        stop(actor, signal.SIGKILL)
        assert stop(driver) == 0


def test_sigkill_of_recording_actor_leaves_the_store_consistent(write_config) -> None:
    cfg = write_config(actor={"policy": {"kind": "expert"}, "episode_steps": 12,
                              "end_on_success": False})
    driver = spawn("driver", str(cfg))
    rng = np.random.default_rng(0)
    try:
        for attempt in range(3):
            actor = spawn("actor", str(cfg))
            wait_for(lambda a=attempt: count_complete(cfg) > a, 90, "an episode to be stored")
            time.sleep(float(rng.uniform(0.0, 1.3)))  # land anywhere: mid-episode or mid-write
            actor.send_signal(signal.SIGKILL)
            actor.wait(10)
    finally:
        assert stop(driver) == 0
    with Store.open(data_dir(cfg)) as store:
        complete = store.list_episodes()
        assert len(complete) >= 3
        assert store.list_episodes(status="recording") == []
        for rec in complete:
            data = store.load_episode(rec.id)
            assert data.num_steps == rec.num_steps == store.count_steps(rec.id)
            for cam in ("front", "wrist"):
                assert data.images(cam).shape[0] == rec.num_steps + 1
                assert store.video_path(rec.id, cam).stat().st_size > 0


def test_up_records_and_stops_cleanly_on_sigterm(write_config) -> None:
    cfg = write_config(actor={"policy": {"kind": "expert"}, "episode_steps": 40})
    up = spawn("up", str(cfg))
    try:
        wait_for(lambda: count_complete(cfg) >= 1, 120, "the first episode")
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 2  # the sim driver and the actor
        time.sleep(0.5)  # land mid-episode
    finally:
        rc = stop(up)
    assert rc == 0
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [], f"orphans left running: {alive}"
    with Store.open(data_dir(cfg)) as store:
        assert store.list_episodes(status="recording") == []
        runs = store.list_runs()
        assert len(runs) == 1 and runs[0].status == "stopped"
        eps = store.list_episodes()
        assert eps and all(e.task == "reach" for e in eps)


def test_demos_collect_stores_successful_expert_demos(tmp_path: Path) -> None:
    out = tmp_path / "demos"
    proc = subprocess.run([*CLI, "demos", "collect", "--task", "reach", "-n", "2",
                           "--data-dir", str(out), "--set", "cameras.0.width=48",
                           "--set", "cameras.0.height=48", "--set", "cameras.1.width=48",
                           "--set", "cameras.1.height=48"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2/2 demonstrations" in proc.stdout
    with Store.open(out) as store:
        demos = [e for e in store.list_episodes(is_demo=True) if e.outcome == "success"]
        assert len(demos) >= 2
    again = subprocess.run([*CLI, "demos", "collect", "--task", "reach", "-n", "2",
                            "--data-dir", str(out), "--if-missing"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to collect" in again.stdout
    listing = subprocess.run([*CLI, "episodes", "list", "--data-dir", str(out), "--demos"],
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0
    assert "reach" in listing.stdout and "episode(s)" in listing.stdout


@pytest.mark.parametrize("argv", [
    [], ["up"], ["driver"], ["actor"], ["learner"], ["eval"], ["demos", "collect"],
    ["episodes", "list"], ["db", "upgrade"], ["estop"],
])
def test_every_command_has_help(argv: list[str]) -> None:
    proc = subprocess.run([*CLI, *argv, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: robolearn" in proc.stdout


def test_bad_config_is_a_clear_error_and_starts_nothing(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nactor: {control_hz: -3}\n")
    proc = subprocess.run([*CLI, "up", str(p)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "control_hz" in proc.stderr
    assert not (tmp_path / "data").exists()


def test_estop_cli_latches_the_driver(write_config) -> None:
    cfg = write_config()
    driver = spawn("driver", str(cfg))
    try:
        latch = None
        for _ in range(50):
            latch = subprocess.run([*CLI, "estop", str(cfg)], capture_output=True, text=True,
                                   timeout=30)
            if latch.returncode == 0:
                break
            time.sleep(0.2)
        assert latch is not None and latch.returncode == 0, latch.stdout
        assert "LATCHED" in latch.stdout
        raw = yaml.safe_load(cfg.read_text())
        ctx = zmq.Context()
        sub = Subscriber(ctx, raw["robot"]["state_address"], types=("arm_state",),
                     security=operator_security(raw, raw["robot"]["state_address"]))
        try:
            msg = sub.wait_new("arm_state", timeout_s=5)
            assert msg is not None and msg.body["estop"]
        finally:
            sub.close()
            ctx.term()
        release = subprocess.run([*CLI, "estop", str(cfg), "--release"], capture_output=True,
                                 text=True, timeout=30)
        assert release.returncode == 0
    finally:
        assert stop(driver) == 0


def test_estop_cli_without_driver_says_so(write_config) -> None:
    cfg = write_config()
    proc = subprocess.run([*CLI, "estop", str(cfg), "--timeout", "0.3"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2
    assert "no answer from the driver" in proc.stdout
    assert os.path.exists(cfg)


def operator_security(raw: dict, address: str) -> SocketSecurity:
    """The local CLI's keys for one of the run's sockets (the run's processes made them)."""
    return parse_config(raw).socket_security(address, "operator")


def runs_of(cfg_path: Path) -> list:
    d = data_dir(cfg_path)
    if not (d / "robolearn.db").exists():
        return []
    with Store.open(d) as store:
        return store.list_runs()


def test_up_refuses_a_robot_another_run_holds_and_starts_nothing(write_config) -> None:
    from robolearn.config import load_config
    from robolearn.runlock import RobotLock, describe_owner

    cfg = write_config(server={"enabled": False})
    address = load_config(cfg).robot.command_address
    with RobotLock.acquire(address, describe_owner("calibration_run", run_id=5, via="serve")):
        done = subprocess.run([*CLI, "up", str(cfg)], capture_output=True, text=True,
                              timeout=120)
    assert done.returncode == 2, done.stderr
    assert "run 5 ('calibration_run')" in done.stderr and "robolearn serve" in done.stderr
    assert "stop that run first" in done.stderr
    assert runs_of(cfg) == []  # no row, and no process was spawned to make one


def test_up_after_a_sigkill_marks_the_dead_run_and_removes_its_config(write_config) -> None:
    cfg = write_config(server={"enabled": False}, actor={"policy": {"kind": "random"}})
    run_files = data_dir(cfg) / "run"
    up = spawn("up", str(cfg))
    try:
        wait_for(lambda: [r.status for r in runs_of(cfg)] == ["running"], 120,
                 "the first run to be marked running")
        # Its resolved config lives under the run's data dir, not in the shared /tmp.
        (left,) = run_files.glob(f"config-{up.pid}-*.yaml")
        # A power cut: the supervisor and every child die at once, nobody cleans up.
        everyone = [psutil.Process(up.pid), *psutil.Process(up.pid).children(recursive=True)]
        for proc in everyone:
            proc.kill()
        psutil.wait_procs(everyone, timeout=10)
    finally:
        stop(up, signal.SIGKILL)
    (first,) = runs_of(cfg)
    assert first.status == "running" and left.exists()

    again = spawn("up", str(cfg))
    try:
        wait_for(lambda: len(runs_of(cfg)) == 2 and runs_of(cfg)[1].status == "running", 120,
                 "the second run to be marked running")
        assert not left.exists()
        assert len(list(run_files.glob(f"config-{again.pid}-*.yaml"))) == 1
    finally:
        assert stop(again) == 0
    with Store.open(data_dir(cfg)) as store, store.session() as db:
        from robolearn.store.models import Run

        died = db.get(Run, first.id)
        assert died.status == "died" and died.ended_at is not None
        assert f"pid {up.pid}" in died.end_reason
        assert db.get(Run, first.id + 1).status == "stopped"
    assert list(run_files.glob("config-*.yaml")) == []  # a clean stop removes its own


def test_up_prints_the_service_url_once_the_service_answers(write_config) -> None:
    import urllib.error
    import urllib.request

    cfg = write_config(actor={"policy": {"kind": "zero"}, "episode_steps": 20})
    up = subprocess.Popen([*CLI, "up", str(cfg)], stdout=subprocess.PIPE, text=True)
    try:
        assert up.stdout is not None
        for line in up.stdout:  # blocks until up prints; ends if it exits
            if line.startswith("operator service: "):
                url = line.split(": ", 1)[1].strip()
                break
        else:
            raise AssertionError(f"up exited ({up.wait()}) without printing the URL")
        # Right after the line (as a user's curl would be): an answer, not a refusal.
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(url + "/api/auth/me", timeout=5)
        assert answer.value.code == 401
    finally:
        assert stop(up) == 0


def test_stopping_a_group_again_does_not_report_old_exits(write_config, caplog) -> None:
    import logging

    from robolearn.config import load_config
    from robolearn.processes import Child, ProcessGroup

    group = ProcessGroup(load_config(write_config()))
    failed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(2)"])
    failed.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    group.children += [Child("actor", failed), Child("driver:arm", running)]
    with caplog.at_level(logging.INFO, logger="robolearn.processes"):
        group.stop()
    reported = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert reported == [f"driver:arm exited ({running.returncode})"]
    assert running.returncode == -signal.SIGTERM


def test_the_service_port_check_refuses_a_listener_but_not_a_closed_services_leftovers() -> None:
    import socket as sk

    from robolearn.cli.up import check_port_free
    from robolearn.errors import ConfigError

    listener = sk.socket()
    listener.setsockopt(sk.SOL_SOCKET, sk.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with pytest.raises(ConfigError, match="cannot bind"):
        check_port_free("127.0.0.1", port)
    # A service that answered a request and stopped leaves that connection in TIME_WAIT
    # on its port (it closed first): the next start may bind there.
    client = sk.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()
    listener.close()
    client.close()
    check_port_free("127.0.0.1", port)
