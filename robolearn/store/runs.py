"""Run rows: create, read, start and end them; who owns a run, and runs whose owner died.

A run's processes are started by one owner process (`robolearn up`, or the operator
service's supervisor); the children die with it (PR_SET_PDEATHSIG). The owner is recorded
in the run row, so that after a SIGKILL or a power cut, which leaves the row saying
"running", the next start on that host marks the run "died" with a reason instead of
showing it as running forever.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from robolearn.errors import StoreError
from robolearn.runlock import LockOwner, process_alive
from robolearn.store.models import Episode, Run, utcnow

if TYPE_CHECKING:
    from robolearn.store.store import Store

log = logging.getLogger(__name__)

LIVE_STATUSES = ("started", "running")
"""Statuses under which a run's processes should be alive."""
DIED = "died"


def add_run(session: Session, name: str, config: dict[str, Any], kind: str,
            status: str) -> Run:
    """Insert a run with `status` and flush it (its id exists on return; the caller commits)."""
    run = Run(name=name, config=config, kind=kind, status=status)
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, run_id: int) -> Run | None:
    return session.get(Run, run_id)


def require_run(session: Session, run_id: int, hint: str = "") -> Run:
    """The run `run_id`.

    Raises:
        StoreError: no run has this id (`hint` says what to do).
    """
    run = session.get(Run, run_id)
    if run is None:
        raise StoreError(f"run {run_id}: no such run{'; ' + hint if hint else ''}")
    return run


def list_runs(session: Session, *, newest_first: bool = False) -> list[Run]:
    """Every run, oldest first unless `newest_first`."""
    return list(session.scalars(select(Run).order_by(Run.id.desc() if newest_first
                                                     else Run.id)))


def mark_running(run: Run) -> None:
    """The run's actor started recording under it (not committed)."""
    run.status = "running"
    run.ended_at = None


def end_run(run: Run, status: str) -> None:
    """Give the run its final status and end time (not committed)."""
    run.status = status
    run.ended_at = utcnow()


def set_owner(run: Run, owner: LockOwner) -> None:
    """Record `owner` as the process starting `run` (status \"started\"; not committed)."""
    run.owner_pid = owner.pid
    run.owner_host = owner.host
    run.owner_started_at = owner.process_started_at
    run.status = "started"
    run.ended_at = None
    run.end_reason = ""


def create_owned_run(store: Store, name: str, config: dict[str, Any], kind: str,
                     owner: LockOwner) -> int:
    """Insert a run with status "started" owned by `owner`; the actor marks it running.

    Returns:
        The new run's id.
    """
    with store.session() as db:
        run = Run(name=name, config=config, kind=kind)
        set_owner(run, owner)
        db.add(run)
        db.commit()
        return run.id


def claim_run(store: Store, run_id: int, owner: LockOwner) -> None:
    """Record `owner` as the process starting the existing run `run_id` (status "started").

    Raises:
        StoreError: no run has this id.
    """
    with store.session() as db:
        run = db.get(Run, run_id)
        if run is None:
            raise StoreError(f"run {run_id} does not exist in the store at {store.data_dir}; "
                             "create it first (the service's Runs page) or leave --run-id out")
        set_owner(run, owner)
        db.commit()


def reap_dead_runs(store: Store) -> list[int]:
    """Mark "died" every run still marked started/running whose owner process is gone.

    Only owners on this host are judged (a process elsewhere cannot be checked from here),
    and rows without an owner (an actor started on its own) are left alone.

    Returns:
        The ids of the runs marked died.
    """
    reaped: list[int] = []
    with store.session() as db:
        rows = db.scalars(select(Run).where(Run.status.in_(LIVE_STATUSES),
                                            Run.owner_pid.is_not(None)))
        for run in rows:
            if process_alive(run.owner_host or "", run.owner_pid or 0,
                             run.owner_started_at or 0.0):
                continue
            run.status = DIED
            run.ended_at = utcnow()
            run.end_reason = (
                f"died: its owner process (pid {run.owner_pid} on {run.owner_host}) was gone "
                "when the next run started on this machine (killed, crashed or power lost); "
                "its last episode may be incomplete")
            reaped.append(run.id)
        db.commit()
    for run_id in reaped:
        log.warning("run %d was still marked running but its processes are gone: marked %s",
                    run_id, DIED)
    return reaped


def end_if_live(store: Store, run_id: int, status: str, reason: str) -> bool:
    """End a run its actor never ended (it failed to start, or died): set `status` and
    `reason` if the row still says started/running. Returns whether it did."""
    with store.session() as db:
        run = db.get(Run, run_id)
        if run is None or run.status not in LIVE_STATUSES:
            return False
        run.status = status
        run.ended_at = utcnow()
        run.end_reason = reason
        db.commit()
    return True


def next_episode_seed(store: Store, run_id: int, first: int, robot: str | None = None) -> int:
    """The seed after the highest one the run's episodes (of fleet robot `robot`) used
    (`first` if none is higher)."""
    with store.session() as db:
        highest = db.scalar(select(func.max(Episode.seed)).where(
            Episode.run_id == run_id,
            Episode.robot.is_(None) if robot is None else Episode.robot == robot))
    return first if highest is None else max(first, int(highest) + 1)


def run_to_continue(store: Store, name: str, config: dict[str, Any]) -> tuple[int | None, str]:
    """The newest earlier run named `name` that a new start of `config` may continue.

    Returns:
        (its id, what will be continued) or (None, why a new run starts instead). A run is
        continued only if it is not live and its learner, task and cameras are the same as
        `config`'s (its checkpoint and episodes fit the new processes).
    """
    with store.session() as db:
        run = db.scalar(select(Run).where(Run.name == name).order_by(Run.id.desc()).limit(1))
        if run is None:
            return None, f"no earlier run named {name!r} in this store"
        if run.status in LIVE_STATUSES:
            return None, f"run {run.id} ({name!r}) is still {run.status}"
        for key in ("learner", "robot.task", "cameras", "actor.observe_state"):
            before, now = _field(run.config, key), _field(config, key)
            if before != now:
                return None, (f"run {run.id} ({name!r}) was made with another {key}; its "
                              "checkpoint and episodes would not fit")
        episodes = db.scalar(select(func.count()).select_from(Episode)
                             .where(Episode.run_id == run.id))
        return run.id, f"run {run.id} ({name!r}, {run.status}, {episodes} episodes)"


def _field(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
