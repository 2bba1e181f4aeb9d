"""Experiment tracking: where the learner's metrics go besides the run's store.

TensorBoard event files are written by default (no account, no network); Weights & Biases
only when turned on. Either one that fails costs a warning, never the learner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TensorBoardConfig(BaseModel):
    """`learner.tracking.tensorboard:` TensorBoard event files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True,
        description="Write the learner's metrics and the episodes it receives as TensorBoard "
        "event files (`tensorboard --logdir <data_dir>/tensorboard`).",
    )
    directory: Path | None = Field(
        None,
        description="Log directory of this run; None = <data_dir>/tensorboard/<run name>. "
        "Each learner process writes into its own subdirectory (<UTC start time>-<learner "
        "session>), so a fresh learner whose counters start again at 0 never hides an "
        "earlier one's curves. A directory that cannot be created costs a warning and "
        "the event files, not the run.",
    )


class WandbConfig(BaseModel):
    """`learner.tracking.wandb:` Weights & Biases (the `wandb` package)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        False,
        description="Log the same metrics to a W&B run, one per learner process, grouped by "
        "the run name. Online mode needs an API key (`wandb login` or WANDB_API_KEY); "
        "without one, or without the network, the learner warns and goes on without W&B.",
    )
    project: str = Field(
        "robolearn", min_length=1, max_length=128, description="W&B project name."
    )
    entity: str | None = Field(
        None, max_length=128,
        description="W&B team or user that owns the project; None = the API key's default.",
    )
    mode: Literal["online", "offline"] = Field(
        "online",
        description="online: stream to the W&B server as it trains. offline: write the run "
        "only to local files (no network needed); upload them later with `wandb sync "
        "<directory>/wandb/offline-run-...`.",
    )
    directory: Path | None = Field(
        None,
        description="Where W&B keeps its local files (it adds a `wandb/` folder); None = "
        "<data_dir>.",
    )


class TrackingConfig(BaseModel):
    """`learner.tracking:` experiment trackers that receive the Learning page's metrics.

    Learner metrics (updates_per_s, utd_held, utd_target, env_steps_per_s, utd_behind,
    replay sizes, update_step, env_steps, critic_loss and the agent's other losses) go out
    under `learner/<name>` against the update step, every learner.metrics_every_s; each
    episode the learner receives goes out under `episode/<name>` (episode_return, success,
    success_rate over the last 20 episodes without an operator's takeover, steps,
    intervention) against the environment steps received.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tensorboard: TensorBoardConfig = Field(default_factory=TensorBoardConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)
