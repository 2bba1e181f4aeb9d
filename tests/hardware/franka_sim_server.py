"""The franka-sim protocol server as a test peer for the Franka driver.

franka-sim speaks the libfranka network protocol on fixed ports (TCP 1337 arm, 1338 gripper,
all interfaces), and `pylibfranka.Robot(ip)` takes no port, so only one server can run per host
(network namespace). Every server started here holds an exclusive file lock for its whole life,
so test processes running side by side take turns instead of talking to each other's arm.

The server lives in its own virtual environment (`make franka-sim` builds it): it pins numpy
1.26 and mujoco < 3.3. The driver under test runs in robolearn's interpreter, where
pylibfranka goes (it needs only numpy >= 1.19).
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SIM_VENV = REPO / ".venvs" / "franka-sim"
SERVER_EXE = SIM_VENV / "bin" / "run-franka-sim-server"
SIM_PYTHON = SIM_VENV / "bin" / "python"
SIM_MODEL = SIM_VENV / "fr3.xml"
MODEL_SCRIPT = REPO / "hardware" / "franka" / "sim_model.py"
LOCK_PATH = Path(tempfile.gettempdir()) / "robolearn-franka-sim.lock"
READY_LINE = "Server ready for new client connection"
HOST = "127.0.0.1"
# Start-up is about 0.3 s idle; a loaded CI machine gets a wide margin.
_READY_TIMEOUT_S = 60.0
_LOCK_TIMEOUT_S = 300.0
_STOP_TIMEOUT_S = 20.0  # the server's own shutdown watchdog forces an exit after 15 s
# A real-robot-like server: motion limits enforced (an arm rejects what the FCI would), and a
# 30 mm object between the fingers so a grasp has something to close on.
GRIPPER_OBJECT_WIDTH_M = 0.03
DEFAULT_ARGS = ("--enforce-motion-limits", "--gripper-object-width",
                str(GRIPPER_OBJECT_WIDTH_M))


def missing_reason() -> str | None:
    """Why the protocol-peer tests cannot run here, or None when they can."""
    if not SERVER_EXE.is_file():
        return (f"franka-sim server venv not found at {SIM_VENV}; build it with "
                "`make franka-sim` (make test does)")
    if importlib.util.find_spec("pylibfranka") is None:
        return ("pylibfranka is not installed in this interpreter; install it with "
                "`make franka-sim` (make test does)")
    return None


def ensure_model(tmp_dir: Path) -> Path:
    """The FR3 MJCF the server loads: the one `make franka-sim` wrote, else built now."""
    if SIM_MODEL.is_file():
        return SIM_MODEL
    out = tmp_dir / "fr3.xml"
    subprocess.run([str(SIM_PYTHON), str(MODEL_SCRIPT), str(out)], check=True,
                   capture_output=True, text=True, timeout=120)
    return out


class _HostLock:
    """An exclusive flock on LOCK_PATH: one franka-sim server per host at a time."""

    def __init__(self) -> None:
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + _LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise TimeoutError(
                        f"another process held {LOCK_PATH} (a franka-sim server on ports "
                        f"1337/1338) for over {_LOCK_TIMEOUT_S:.0f} s") from None
                time.sleep(0.1)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class FrankaSimServer:
    """One franka-sim server process: start, kill, restart; its output is kept.

    Args:
        model: the FR3 MJCF ($FR3_MJCF).
        args: extra server flags (e.g. --enforce-motion-limits).
    """

    def __init__(self, model: Path, args: tuple[str, ...] = ()) -> None:
        self.model = model
        self.args = args
        self.lines: list[str] = []
        self.starts = 0
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._lines_lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def output(self) -> str:
        with self._lines_lock:
            return "".join(self.lines)

    def violations(self) -> list[str]:
        """The server's log lines about limits it saw broken (enforced or not)."""
        with self._lines_lock:
            return [line.strip() for line in self.lines if "limit violated" in line]

    def start(self) -> None:
        """Start the server and wait for its ready line.

        Raises:
            RuntimeError: it exited or stayed silent past the timeout (output attached).
        """
        if self.running:
            raise RuntimeError("franka-sim server already running; stop() it first")
        env = dict(os.environ, FR3_MJCF=str(self.model), PYTHONUNBUFFERED="1")
        self._ready.clear()
        self._proc = subprocess.Popen(
            [str(SERVER_EXE), *self.args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, env=env, cwd=REPO,
        )
        self.starts += 1
        # A reader thread drains the pipe for the whole life of the process: the server logs
        # continuously and would block on a full pipe.
        self._reader = threading.Thread(target=self._read, args=(self._proc,),
                                        name="franka-sim-stdout", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"franka-sim server did not print {READY_LINE!r} (exit code "
                    f"{self._proc.returncode}); is another server on ports 1337/1338? "
                    f"Output:\n{self.output()[-4000:]}")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._lines_lock:
                self.lines.append(line)
            if READY_LINE in line:
                self._ready.set()

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop the server (SIGTERM: clean; SIGKILL: a crash or a pulled cable) and wait.

        Returns:
            The exit code, or None when it was not running.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("franka-sim server ignored signal %s for %.0f s; killing it", sig,
                          _STOP_TIMEOUT_S)
                proc.kill()
                proc.wait(timeout=_STOP_TIMEOUT_S)
        if self._reader is not None:
            self._reader.join(timeout=5.0)
        self._proc = None
        return proc.returncode


@pytest.fixture
def franka_sim_args() -> tuple[str, ...]:
    """Server flags; a test overrides them with
    `@pytest.mark.parametrize("franka_sim_args", [(...)])`."""
    return DEFAULT_ARGS


@pytest.fixture
def franka_sim(franka_sim_args: tuple[str, ...],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrankaSimServer]:
    """A fresh franka-sim server (the arm's pose carries over between client sessions, so
    every test gets its own), with the host lock held until it is stopped."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    server = FrankaSimServer(ensure_model(tmp_path_factory.mktemp("franka-sim")),
                             franka_sim_args)
    lock = _HostLock()
    lock.acquire()
    # libfranka makes the thread that connects a real-time (SCHED_FIFO) thread where it may
    # (root here), as a driver process wants. In the test process every later subprocess
    # would inherit that and starve the rest of the machine: restore the policy afterwards.
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            lock.release()
            os.sched_setscheduler(0, policy, param)


