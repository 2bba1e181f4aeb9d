"""Experiment tracking: the learner's metrics and the episodes it receives, written to
TensorBoard event files and, when configured, to Weights & Biases.

The names are the Learning page's: `learner/<name>` for every field of a learner metrics
row (updates_per_s, utd_held, utd_target, env_steps_per_s, utd_behind, replay sizes,
update_step, env_steps, ...) and the agent's scalars (critic_loss, bc_fosd_loss, ...),
against `learner/update_step`; `episode/<name>` for each episode the learner receives
(episode_return, success, success_rate, steps, intervention) against `episode/env_steps`,
the environment steps received with it.

A tracker never stops training: a backend that cannot open is left out with a warning, and
one that fails while writing is closed and dropped with a warning. `tensorboard` and `wandb`
are imported only when their backend is opened.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from robolearn.config.tracking import TrackingConfig, WandbConfig
from robolearn.store.learner_metrics import LearnerSample

if TYPE_CHECKING:
    from robolearn.config import RunConfig

log = logging.getLogger(__name__)

LEARNER = "learner"
EPISODE = "episode"
# The step each group is plotted against (also logged as a value of the group, so that W&B
# and TensorBoard hold the same keys).
STEP_KEYS = {LEARNER: "update_step", EPISODE: "env_steps"}
# success_rate is the mean over this many recent episodes, as on the Learning page.
SUCCESS_WINDOW = 20
# TensorBoard's writer flushes its queue this often, s: often enough to watch a run live,
# rarely enough to cost nothing.
TENSORBOARD_FLUSH_S = 10.0
# wandb.init gives up after this long, s (online mode with no route to the server): the
# learner starts this much later, then trains without W&B.
WANDB_INIT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class EpisodeOutcome:
    """One episode as the learner received it.

    Attributes:
        env_steps: environment steps the learner has received, this episode's included.
        steps: the episode's own steps.
        episode_return: sum of its rewards (the inline ones and late worker terms).
        success: it ended on the task's success (a terminated step).
        intervention: an operator took over for at least one step.
    """

    env_steps: int
    steps: int
    episode_return: float
    success: bool
    intervention: bool


class TrackingBackend(Protocol):
    """Where tracked values go. `log` and `close` may raise; the Tracker handles it."""

    name: str

    def log(self, group: str, values: Mapping[str, float], step: int) -> None:
        """Write `values` (keys without the group prefix) at `step`."""

    def close(self) -> None:
        """Flush and release everything."""


def learner_values(sample: LearnerSample) -> dict[str, float]:
    """A learner metrics row as tracked values: its counts, rates and UTD fields (those
    that are None left out), then the agent's scalars."""
    values: dict[str, float] = {
        "update_step": sample.update_step, "env_steps": sample.env_steps,
        "episodes": sample.episodes, "updates_per_s": sample.updates_per_s,
        "online_transitions": sample.online_transitions,
        "demo_transitions": sample.demo_transitions,
        "online_episodes": sample.online_episodes, "demo_episodes": sample.demo_episodes,
        "utd_behind": float(sample.utd_behind),
    }
    for name in ("utd_target", "utd_held", "env_steps_per_s"):
        value = getattr(sample, name)
        if value is not None:
            values[name] = value
    # The agent's scalars never shadow a count (the store row keeps them apart too).
    values |= {k: v for k, v in sample.scalars.items() if k not in values}
    return {k: float(v) for k, v in values.items()}


class Tracker:
    """Sends learner samples and episode outcomes to its backends.

    Args:
        backends: the opened backends (see `open_tracker`); may be empty.
    """

    def __init__(self, backends: Sequence[TrackingBackend]) -> None:
        self.backends = list(backends)
        self._recent_success: deque[bool] = deque(maxlen=SUCCESS_WINDOW)

    def learner(self, sample: LearnerSample) -> None:
        """Track one learner metrics row, at its update step."""
        self._send(LEARNER, learner_values(sample), sample.update_step)

    def episode(self, outcome: EpisodeOutcome) -> None:
        """Track one received episode, at the environment steps received with it."""
        values = {"env_steps": float(outcome.env_steps), "steps": float(outcome.steps),
                  "episode_return": float(outcome.episode_return),
                  "success": float(outcome.success),
                  "intervention": float(outcome.intervention)}
        # As on the Learning page, the rate is the policy's: a takeover is the operator's.
        if not outcome.intervention:
            self._recent_success.append(outcome.success)
        if self._recent_success:
            values["success_rate"] = sum(self._recent_success) / len(self._recent_success)
        self._send(EPISODE, values, outcome.env_steps)

    def _send(self, group: str, values: Mapping[str, float], step: int) -> None:
        for backend in list(self.backends):
            try:
                backend.log(group, values, step)
            except Exception as exc:  # a tracker's disk or service: never stop training
                log.warning("tracking: %s failed to write %s metrics (%s: %s); it is turned "
                            "off for this learner, training goes on", backend.name, group,
                            type(exc).__name__, exc)
                self.backends.remove(backend)
                self._close(backend)

    def close(self) -> None:
        """Flush and close every backend (each failure logged, none raised)."""
        backends, self.backends = self.backends, []
        for backend in backends:
            self._close(backend)

    @staticmethod
    def _close(backend: TrackingBackend) -> None:
        try:
            backend.close()
        except Exception as exc:  # logged, not swallowed: the files may be incomplete
            log.warning("tracking: closing %s failed (%s: %s); its last values may be "
                        "missing", backend.name, type(exc).__name__, exc)


class TensorBoardBackend:
    """TensorBoard event files in `logdir` (created), through torch's SummaryWriter.

    Raises:
        OSError: the directory cannot be created or written.
        ImportError: the `tensorboard` package is missing.
    """

    name = "TensorBoard"

    def __init__(self, logdir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.logdir = logdir
        logdir.mkdir(parents=True, exist_ok=True)
        self._writer = SummaryWriter(log_dir=str(logdir), flush_secs=TENSORBOARD_FLUSH_S)

    def log(self, group: str, values: Mapping[str, float], step: int) -> None:
        for key, value in values.items():
            self._writer.add_scalar(f"{group}/{key}", value, global_step=step)

    def close(self) -> None:
        self._writer.close()


class WandbBackend:
    """A Weights & Biases run (online or offline, per `cfg.mode`).

    Args:
        cfg: learner.tracking.wandb.
        directory: where W&B keeps its local files (it adds `wandb/`).
        group: the run name (every learner process of a run joins this group).
        name: this learner process's W&B run name.
        run_config: the run config, stored as the W&B run's config.
    Raises:
        Exception: whatever wandb.init raises (no API key online, no route to the server
            within WANDB_INIT_TIMEOUT_S, ...).
    """

    name = "W&B"

    def __init__(self, cfg: WandbConfig, directory: Path, group: str, name: str,
                 run_config: Mapping[str, Any] | None = None) -> None:
        import wandb

        directory.mkdir(parents=True, exist_ok=True)
        # console off: the learner's stdout/stderr stay its own (W&B would wrap them).
        settings = wandb.Settings(console="off", silent=True,
                                  init_timeout=WANDB_INIT_TIMEOUT_S)
        self._run = wandb.init(project=cfg.project, entity=cfg.entity, mode=cfg.mode,
                               dir=str(directory), group=group, name=name,
                               job_type="learner", config=dict(run_config or {}),
                               settings=settings)
        for group_name, step_key in STEP_KEYS.items():
            # Each group against its own step: the update step and the env steps do not
            # advance together (pretraining makes updates with no env step).
            self._run.define_metric(f"{group_name}/{step_key}")
            self._run.define_metric(f"{group_name}/*", step_metric=f"{group_name}/{step_key}")

    def log(self, group: str, values: Mapping[str, float], step: int) -> None:
        self._run.log({f"{group}/{k}": v for k, v in values.items()}
                      | {f"{group}/{STEP_KEYS[group]}": step})

    def close(self) -> None:
        self._run.finish()


def tensorboard_dir(cfg: TrackingConfig, data_dir: Path, run_name: str) -> Path:
    """The run's TensorBoard log directory (each learner process writes a subdirectory)."""
    return cfg.tensorboard.directory or data_dir / "tensorboard" / run_name


def shareable_config(run_cfg: RunConfig) -> dict[str, Any]:
    """The run config as plain data for a tracker's run page, without the database
    password (an online tracker uploads it; the service's secret is never in a config)."""
    data = run_cfg.model_dump(mode="json")
    if run_cfg.database_url is not None:
        from sqlalchemy.engine import make_url

        try:
            data["database_url"] = make_url(run_cfg.database_url).render_as_string(
                hide_password=True)
        except Exception:  # not a URL SQLAlchemy parses: share nothing of it
            data["database_url"] = "***"
    return data


def open_tracker(run_cfg: RunConfig, session: str) -> Tracker:
    """Open the backends of run_cfg.learner.tracking; one that cannot open is left out
    with a warning.

    Args:
        run_cfg: the run config (its name and data_dir place the files; W&B stores it,
            see `shareable_config`).
        session: the learner process's id.
    Returns:
        A Tracker with the backends that opened.
    """
    cfg, data_dir, run_name = run_cfg.learner.tracking, run_cfg.data_dir, run_cfg.name
    started = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    process = f"{started}-{session}"
    backends: list[TrackingBackend] = []
    if cfg.tensorboard.enabled:
        logdir = tensorboard_dir(cfg, data_dir, run_name) / process
        try:
            backends.append(TensorBoardBackend(logdir))
            log.info("tracking: TensorBoard event files in %s", logdir)
        except Exception as exc:  # unwritable dir, missing package: the run goes on
            log.warning("tracking: TensorBoard event files cannot be written to %s (%s: %s); "
                        "training goes on without them. Set learner.tracking.tensorboard."
                        "directory to a writable folder, or enabled: false", logdir,
                        type(exc).__name__, exc)
    if cfg.wandb.enabled:
        directory = cfg.wandb.directory or data_dir
        try:
            backends.append(WandbBackend(cfg.wandb, directory, group=run_name,
                                         name=f"{run_name}-{session}",
                                         run_config=shareable_config(run_cfg)))
            log.info("tracking: W&B run %s-%s in project %s (%s)", run_name, session,
                     cfg.wandb.project, cfg.wandb.mode)
        except Exception as exc:  # no key, no network, a bad entity: the run goes on
            log.warning("tracking: W&B (project %s, mode %s) did not start (%s: %s); "
                        "training goes on without it. Online mode needs `wandb login` or "
                        "WANDB_API_KEY and the network; mode: offline needs neither",
                        cfg.wandb.project, cfg.wandb.mode, type(exc).__name__, exc)
    return Tracker(backends)
