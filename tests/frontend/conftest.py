"""The stack the browser tests drive: the sim driver and the actor as real processes
recording into a real SQLite store, the operator service under real uvicorn serving the
built UI, and accounts of every role. One stack per module (starting it costs seconds);
the browser runs through `npm run e2e` (vitest + playwright-core + Debian's Chromium)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import update

from robolearn.actor.control import ActorControlClient
from robolearn.calibration.handeye import HandEyeResult, MethodResult
from robolearn.calibration.intrinsics import IntrinsicsResult
from robolearn.calibration.results import save_calibration
from robolearn.calibration.workspace import teach_box
from robolearn.config import RunConfig, parse_config
from robolearn.config.rewards import PreferenceConfig
from robolearn.processes import ProcessGroup
from robolearn.rewards.queries import create_queries
from robolearn.runlock import RobotLock, describe_owner
from robolearn.server.users import create_user
from robolearn.store import Store
from robolearn.store.learner_metrics import LearnerSample, add_learner_metrics
from robolearn.store.models import LearnerMetrics
from robolearn.store.runs import create_owned_run
from tests.conftest import free_port, run_config_dict

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "e2e password 1234"
ROLES = ("viewer", "operator", "admin")
EPISODES = 3
QUERIES = 10


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (FRONTEND / "node_modules" / ".bin" / "vitest").exists():
        return "frontend dependencies are not installed: run `npm ci` in frontend/"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}"
    return None




def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def _build() -> Path:
    """The built UI (in the server package, server/ui); rebuilt here when missing or older
    than a source (make test builds it first, so this normally finds it current)."""
    dist = ROOT / "server" / "ui"
    index = dist / "index.html"
    sources = [FRONTEND / "index.html", *(FRONTEND / "src").rglob("*")]
    if not index.exists() or max(p.stat().st_mtime for p in sources) > index.stat().st_mtime:
        subprocess.run(["npm", "run", "build"], cwd=FRONTEND, check=True,
                       stdout=subprocess.DEVNULL)
    return dist


@dataclass
class Stack:
    cfg: RunConfig
    url: str
    artifacts: Path
    episode_id: int
    run_id: int

    def store(self) -> Store:
        return Store.open(self.cfg.data_dir, self.cfg.database_url)

    def control(self) -> ActorControlClient:
        return ActorControlClient(self.cfg.actor.control_address,
                                  self.cfg.socket_security(self.cfg.actor.control_address,
                                                           "operator"), timeout_s=2.0)

    def browser(self, spec: str, **env: str) -> None:
        """Run one e2e spec in Chromium; fails with the spec's output."""
        result = subprocess.run(
            ["node_modules/.bin/vitest", "run", "--config", "vitest.e2e.config.ts",
             f"e2e/{spec}.e2e.ts"],
            cwd=FRONTEND, capture_output=True, text=True, timeout=420,
            env={**os.environ, "E2E_URL": self.url, "E2E_PASSWORD": PASSWORD,
                 "E2E_ARTIFACTS": str(self.artifacts), "E2E_EPISODE": str(self.episode_id),
                 "E2E_CHROMIUM": str(CHROMIUM), "NO_COLOR": "1", **env},
        )
        assert result.returncode == 0, (
            f"browser test {spec} failed:\n{result.stdout}\n{result.stderr}")


@contextlib.contextmanager
def running_stack(
    tmp_path_factory: pytest.TempPathFactory,
    label: str,
    *,
    episodes: int,
    config: dict[str, Any] | None = None,
    prepare: Callable[[Store, RunConfig], None] | None = None,
    seed: Callable[[Store, int], None] | None = None,
) -> Iterator[Stack]:
    """A browser test's stack, as `robolearn up` runs it: the sim driver and the actor as
    processes recording a run the stack owns (it holds the robot, so a run started from the
    UI is refused instead of spawning a second driver on the same sockets), accounts of
    every role, and the service serving the built UI.

    Args:
        label: names the data folder and the robot lock's owner.
        episodes: complete episodes of the run to wait for before the service starts.
        config: run config sections merged over the stack's (e.g. rewards).
        prepare: called with the store before the actor starts (models it needs).
        seed: called with the store and the run id once the episodes are in.
    """
    missing = _missing()
    if missing:
        pytest.skip(f"browser tests need the web toolchain: {missing}")
    dist = _build()
    sock_dir = Path(tempfile.mkdtemp(prefix="rl-"))
    data = tmp_path_factory.mktemp(label) / "data"
    artifacts = Path(os.environ.get("E2E_ARTIFACTS", ROOT / "frontend" / "test-results"))
    raw = run_config_dict(sock_dir, data, actor={"episode_steps": 20,
                                                 "policy": {"kind": "random"}},
                          **(config or {}))
    # The one config the Runs page may start: the stack's own (its robot is held below).
    allowed = data.parent / "configs" / f"{label}.yaml"
    allowed.parent.mkdir(parents=True, exist_ok=True)
    allowed.write_text(yaml.safe_dump(raw))
    raw["server"] = {"port": free_port(), "development": True, "frontend_dir": str(dist),
                     "allowed_configs": [str(allowed)]}
    cfg = parse_config(raw)
    robot = RobotLock.acquire(cfg.robot.command_address, describe_owner(f"{label} stack"))
    group = ProcessGroup(cfg, log_level="warning")
    try:
        with Store.open(cfg.data_dir, cfg.database_url) as store:
            with store.session() as db:
                for role in ROLES:
                    create_user(db, role, PASSWORD, role)
                db.commit()
            if prepare is not None:
                prepare(store, cfg)
        group.start_drivers()
        with Store.open(cfg.data_dir, cfg.database_url) as store:  # owned, as `up` owns it
            run_id = create_owned_run(store, cfg.name, cfg.model_dump(mode="json"),
                                      cfg.robot.kind, robot.owner)
        group.start_actor(run_id=run_id)
        with Store.open(cfg.data_dir, cfg.database_url) as store:
            _wait(lambda: len(store.list_episodes(run_id=run_id, status="complete"))
                  >= episodes, 180, f"{episodes} recorded sim episodes")
            first = store.list_episodes(run_id=run_id, status="complete")[0].id
            if seed is not None:
                seed(store, run_id)
        group.start_server()
        _wait(lambda: _up(cfg.server.url), 60, f"the operator service at {cfg.server.url}")
        yield Stack(cfg, cfg.server.url, artifacts, first, run_id)
    finally:
        group.stop()
        robot.release()
        shutil.rmtree(sock_dir, ignore_errors=True)


def seed_console(store: Store, run_id: int) -> None:
    """What the console's pages show beyond the recorded episodes: a first admin who must
    change a one-time password, preference queries, calibrations and learner curves."""
    with store.session() as db:
        create_user(db, "fresh", PASSWORD, "admin").must_change_password = True
        db.commit()
    create_queries(store, run_id, QUERIES, "uniform", cfg=PreferenceConfig(segment_steps=5),
                   seed=0)
    seed_calibrations(store)
    seed_learner_metrics(store, run_id)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory, "e2e_sim", episodes=EPISODES,
                       seed=seed_console) as s:
        yield s


def seed_calibrations(store: Store) -> None:
    """One stored result of each kind, as `robolearn calibrate` writes them, for the
    calibration page (two intrinsics versions, so it has a version to choose)."""
    views = [0.21, 0.18, None, 0.25, 0.3, 0.19, 0.22, 0.2, 0.24]
    for fx in (88.0, 88.4):
        save_calibration(store, "intrinsics", "wrist", IntrinsicsResult(
            image_width=64, image_height=64,
            camera_matrix=[[fx, 0.0, 32.0], [0.0, fx, 32.0], [0.0, 0.0, 1.0]],
            dist_coeffs=[0.0, 0.0, 0.0, 0.0, 0.0], rms_px=0.22, focal_std_px=0.3,
            per_view_error_px=views, rejected={2: "6 corners (need 8)"}, coverage=0.7))
    pose = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.06],
            [0.0, 0.0, 0.0, 1.0]]
    save_calibration(store, "hand_eye", "wrist", HandEyeResult(
        mode="eye_in_hand", method="park", transform=pose, residual_mm=0.7, residual_deg=0.1,
        views=10, methods={m: MethodResult(transform=pose, residual_mm=r, residual_deg=r / 7)
                           for m, r in (("tsai", 0.9), ("park", 0.7), ("horaud", 1.2))}))
    save_calibration(store, "workspace", "sim_arm",
                     teach_box([[0.3, -0.25, 0.02], [0.7, 0.25, 0.45]]))


def seed_learner_metrics(store: Store, run_id: int, rows: int = 12) -> None:
    """Learner samples one minute apart, as `robolearn learner` writes them (the stack runs
    a random policy and no learner), so the Learning page has curves to draw."""
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=rows)
    with store.session() as db:
        for k in range(rows):
            record = add_learner_metrics(db, run_id, LearnerSample(
                session="e2e", update_step=600 * k, env_steps=500 * k, episodes=25 * k,
                updates_per_s=10.0 + (k % 3), online_transitions=500 * k,
                demo_transitions=200 + 20 * k, online_episodes=25 * k, demo_episodes=10,
                scalars={"critic_loss": 2.0 / (1 + k), "loss": 2.5 / (1 + k)}))
            db.execute(update(LearnerMetrics).where(LearnerMetrics.id == record.id)
                       .values(created_at=t0 + dt.timedelta(minutes=k)))
        db.commit()


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/api/auth/me", timeout=1).status_code == 401
    except httpx.TransportError:
        return False

