"""Background jobs of the service (reward-model training): one at a time, off the request
threads, with a status anyone logged in can poll."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

log = logging.getLogger(__name__)

MAX_KEPT = 100


@dataclass(frozen=True)
class JobState:
    id: str
    kind: str
    status: str  # queued | running | done | failed
    detail: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


class JobBoard:
    """Runs callables on one worker thread and remembers the last MAX_KEPT outcomes."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor
        self._jobs: dict[str, JobState] = {}
        self._lock = threading.Lock()

    def active(self, kind: str) -> JobState | None:
        with self._lock:
            return next((j for j in self._jobs.values()
                         if j.kind == kind and j.status in ("queued", "running")), None)

    def submit(self, kind: str, work: Callable[[Callable[[str], None]], dict[str, Any]]
               ) -> JobState:
        """Queue `work(report)`; it returns the job's result; `report(text)` sets progress."""
        state = JobState(id=uuid.uuid4().hex[:12], kind=kind, status="queued")
        with self._lock:
            self._jobs[state.id] = state
            for old in list(self._jobs)[:-MAX_KEPT]:
                del self._jobs[old]
        self._executor.submit(self._run, state.id, work)
        return state

    def get(self, job_id: str) -> JobState | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _set(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            if job_id in self._jobs:
                self._jobs[job_id] = replace(self._jobs[job_id], **changes)

    def _run(self, job_id: str, work: Callable[[Callable[[str], None]], dict[str, Any]]) -> None:
        self._set(job_id, status="running")
        try:
            result = work(lambda text: self._set(job_id, detail=text))
        except Exception as exc:
            log.warning("job %s failed: %s", job_id, exc)
            self._set(job_id, status="failed", detail=f"{type(exc).__name__}: {exc}")
            return
        self._set(job_id, status="done", detail="finished", result=result)
