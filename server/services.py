"""The long-lived objects one app instance shares between requests (held in app.state)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from robolearn.config import RunConfig
from robolearn.server.auth import Clock, LoginLimiter, SessionStore, TokenSigner
from robolearn.server.jobs import JobBoard
from robolearn.server.supervisor import RunSupervisor
from robolearn.store import Store

log = logging.getLogger(__name__)


@dataclass
class Services:
    config: RunConfig
    store: Store
    sessions: SessionStore
    tokens: TokenSigner
    limiter: LoginLimiter
    clock: Clock
    # Long jobs (reward-model training) run here, one at a time, never on a request thread.
    jobs: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="job")
    )
    job_board: JobBoard = field(init=False)
    supervisor: RunSupervisor = field(default_factory=RunSupervisor)
    # Other helpers hang their clients here (e.g. the actor control client), keyed by name.
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.job_board = JobBoard(self.jobs)

    def close(self) -> None:
        """Stop API-started runs, wait for running jobs, then release the database."""
        self.supervisor.close()
        self.jobs.shutdown(wait=True, cancel_futures=True)
        for name, extra in self.extras.items():
            close = getattr(extra, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing %s failed", name)
        self.store.close()
