"""The robot lock: one holder per arm, named to the next comer, released by the kernel when
its holder dies (a real second process, SIGKILLed)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from robolearn.runlock import LOCK_DIR_ENV, RobotBusy, RobotLock, describe_owner, lock_path


@pytest.fixture(autouse=True)
def private_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))


def test_a_second_holder_is_refused_with_the_first_named() -> None:
    with RobotLock.acquire("tcp://127.0.0.1:5552", describe_owner("first", run_id=3)):
        with pytest.raises(RobotBusy, match=r"in use by run 3 \('first'\)") as busy:
            RobotLock.acquire("tcp://localhost:5552", describe_owner("second"))  # same arm
        assert busy.value.holder is not None and busy.value.holder.run_name == "first"
        # Another arm is another lock.
        RobotLock.acquire("tcp://127.0.0.1:6552", describe_owner("other")).release()
    with RobotLock.acquire("tcp://127.0.0.1:5552", describe_owner("second")) as lock:
        assert lock.previous is None  # the first let go cleanly


def test_the_lock_dies_with_a_sigkilled_holder_and_its_owner_is_remembered(
        tmp_path: Path) -> None:
    address = f"ipc://{tmp_path}/cmd"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from robolearn.runlock import RobotLock, describe_owner\n"
         f"lock = RobotLock.acquire({address!r}, describe_owner('doomed', run_id=8))\n"
         "print('held', flush=True)\n"
         "time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RobotBusy, match="doomed"):
            RobotLock.acquire(address, describe_owner("mine"))
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        with RobotLock.acquire(address, describe_owner("mine")) as lock:
            assert lock.previous is not None and lock.previous.pid == holder.pid
            assert lock.previous.run_id == 8 and not lock.previous.alive()
    finally:
        holder.kill()
        holder.wait()
    assert lock_path(address).exists()  # kept: unlinking would race with the next opener
