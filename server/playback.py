"""Service side of "replay in sim" (`robolearn.playback`): the checks made before a replay
is queued, and the replay itself run as a `robolearn replay` child process.

The replay runs in its own process, not on the service's job thread, because:
- MuJoCo's offscreen renderer is bound to the thread that first rendered in a process, and a
  crash in EGL or the physics would otherwise take the whole service (and its e-stop) down;
- stepping, rendering and H.264 encoding would compete with request handling for the GIL.
The child opens the same store (SQLite in WAL mode, or the PostgreSQL URL) and stores the
replay exactly as the CLI does; its one-line JSON summary is the job's result.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.config import RunConfig
from robolearn.errors import ReplayError, StoreError
from robolearn.store import Store
from robolearn.store.models import Episode

log = logging.getLogger(__name__)

# Far longer than any replay takes (a replay runs faster than the robot recorded it, and
# episodes are minutes long): a child still running after this is stuck (e.g. a hung GPU
# driver) and is killed, so the job board is free again.
REPLAY_TIMEOUT_S = 1800.0
# The CLI's tqdm bar writes "... 4/10 [" on every refresh; the latest one is the progress.
_PROGRESS = re.compile(rb"(\d+)/(\d+) \[")
_STDERR_TAIL = 8192
# Read by `python -m robolearn.cli.replay` (its CHILD_DATABASE_URL_ENV): the service runs the
# replay CLI as a process and never imports the CLI, the composition root.
_DATABASE_URL_ENV = "ROBOLEARN_REPLAY_DATABASE_URL"


def preflight(store: Store, episode: Episode, mode: str) -> None:
    """Refuse, before anything is queued, what the replay would refuse only once the sim
    started: the operator gets a 4xx at once instead of a failed job. Reads only the
    episode's row and its npz's member list, never its images.

    Raises:
        StoreError: the episode is not complete (still recording, aborted) or its file is
            unreadable.
        ReplayError: its task is not a sim task, or joint mode without a joint log.
    """
    from robolearn.sim import TASKS

    if episode.status != "complete":
        raise StoreError(f"episode {episode.id} is {episode.status}: only complete episodes "
                         "can be replayed")
    if episode.task not in TASKS:
        raise ReplayError(f"episode {episode.id}: task {episode.task!r} is not a sim task "
                          f"({list(TASKS)}); replay it from the CLI on a sim task with "
                          "`robolearn replay EPISODE --task TASK`")
    if mode != "joints":
        return
    path = store.episode_file(store.get_episode(episode.id))
    try:
        with np.load(path, allow_pickle=False) as npz:
            has_joints = "joint_pos" in npz.files
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise StoreError(f"episode {episode.id}: file {path} is unreadable ({exc})") from exc
    if not has_joints:
        raise ReplayError(f"episode {episode.id} logged no joint positions (recorded before "
                          "joint logging, or imported without them); replay it with mode "
                          "'actions'")


def replay_command(config: RunConfig, episode_id: int, mode: str) -> list[str]:
    """The `robolearn replay` command line for one of this run store's episodes, run through
    the replay CLI's own entry point (`robolearn.cli.replay.child_main`)."""
    return [sys.executable, "-m", "robolearn.cli.replay", str(episode_id),
            "--data-dir", str(Path(config.data_dir).resolve()), "--mode", mode]


def _child_env(config: RunConfig) -> dict[str, str]:
    # A database URL may hold a password: the environment is private to the user, a command
    # line is readable by everyone on the machine (ps).
    env = dict(os.environ)
    env.pop(_DATABASE_URL_ENV, None)
    if config.database_url:
        env[_DATABASE_URL_ENV] = config.database_url
    return env


def run_replay(config: RunConfig, episode_id: int, mode: str,
               report: Callable[[str], None], *,
               timeout_s: float = REPLAY_TIMEOUT_S) -> dict[str, Any]:
    """Replay one episode in a child process and return its summary.

    Args:
        report: called with "step k/n" as the child's progress bar moves.
        timeout_s: the child is killed after this long (a stored replay is written
            atomically, so a killed one leaves no half episode that looks whole).

    Returns:
        The CLI's JSON summary: replay_episode_id, steps, tracking_error_mean_m/max_m,
        source_success, replay_success, ...

    Raises:
        ReplayError: the child refused the episode, failed, or ran past REPLAY_TIMEOUT_S;
            the message is the child's own error line.
    """
    cmd = replay_command(config, episode_id, mode)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_child_env(config))
    log.info("replay of episode %d (%s): started process %d", episode_id, mode, proc.pid)
    try:
        out, tail = _collect(proc, report, time.monotonic() + timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise ReplayError(f"replay of episode {episode_id} ran for more than {timeout_s:g} s "
                          "and was stopped") from exc
    finally:
        if proc.poll() is None:  # timed out, or an error in this thread: no orphan child
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise ReplayError(f"replay of episode {episode_id} failed (exit {proc.returncode}): "
                          f"{_last_error(tail)}")
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        return dict(json.loads(lines[-1]))
    except (IndexError, ValueError, TypeError) as exc:
        raise ReplayError(f"replay of episode {episode_id}: the replay process printed no "
                          f"summary ({_last_error(tail)})") from exc


def _collect(proc: subprocess.Popen[bytes], report: Callable[[str], None],
             deadline: float) -> tuple[bytes, bytes]:
    """Read the child's stdout and stderr until both close and it exits, reporting its
    progress; returns (stdout, the last bytes of stderr).

    Raises:
        subprocess.TimeoutExpired: the deadline (time.monotonic) passed first.
    """
    assert proc.stdout is not None and proc.stderr is not None
    out, tail, last = b"", b"", None
    open_fds = {proc.stdout.fileno(), proc.stderr.fileno()}
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise subprocess.TimeoutExpired(proc.args, 0.0)
        ready, _, _ = select.select(list(open_fds), [], [], remaining)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.discard(fd)
            elif fd == proc.stdout.fileno():
                out += chunk
            else:
                tail = (tail + chunk)[-_STDERR_TAIL:]
                matches = _PROGRESS.findall(chunk)
                if matches and matches[-1] != last:
                    last = matches[-1]
                    report(f"step {int(last[0])}/{int(last[1])}")
    proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    return out, tail


def _last_error(stderr_tail: bytes) -> str:
    """The child's last log line at ERROR (the CLI logs a refused replay there), else its
    last line of output."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", stderr_tail.decode(errors="replace"))
             if line.strip()]
    errors = [line for line in lines if " ERROR " in line]
    if errors:
        return errors[-1].split(": ", 1)[-1]
    return lines[-1] if lines else "no output"
