"""The run's reward sources applied to every control step in the actor.

With the default `rewards.sparse: sim_success` and no shaping, the environment's own sparse
reward is used and nothing is loaded (`StepRewards.from_config` returns None), so the hot
path stays as it is. Otherwise the RewardService judges the observation each action led to:
its reward replaces the environment's, its success decides the episode's end and outcome,
and every source's value (the sim's ground truth too, for evaluation) is stored with the step.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from robolearn.config import RunConfig
from robolearn.store import Store

if TYPE_CHECKING:  # the reward models load torch; only runs that use them pay for it
    from robolearn.rewards.service import RewardService

log = logging.getLogger(__name__)


class StepRewards:
    """Scores one step (batch of 1) with the configured reward sources.

    Args:
        service: the loaded reward models.
        cameras: the env's camera names, in order.
        sim: the robot is the sim, so its ground-truth success exists.
    """

    def __init__(self, service: RewardService, cameras: tuple[str, ...], sim: bool) -> None:
        self.service = service
        self.cameras = cameras
        self.sim = sim
        # rewards.success_frames: success needs that many positive steps in a row.
        self.streak = service.new_streak()

    @classmethod
    def from_config(cls, cfg: RunConfig, cameras: tuple[str, ...], store: Store | None,
                    run_id: int | None) -> StepRewards | None:
        """None when the sim's sparse success, frame by frame, is the only source (nothing
        to load).

        Raises:
            RewardModelError: a configured source has no usable model.
        """
        if (cfg.rewards.sparse == "sim_success" and not cfg.rewards.shaping
                and cfg.rewards.success_frames == 1):
            return None
        import torch

        from robolearn.rewards.service import RewardService

        # Scoring a step is a batch of one frame per camera: a second thread only contends
        # with the learner and the drivers for the cores (measured on 2 busy cores: 45 ms for
        # both cameras on one thread, 1-4 s on two).
        torch.set_num_threads(1)
        service = RewardService.from_config(cfg, store, run_id)
        log.info("rewards: sparse from %s, shaping %s", cfg.rewards.sparse,
                 [f"{t.weight}*{t.source}" for t in cfg.rewards.shaping] or "none")
        return cls(service, cameras, sim=cfg.robot.kind == "sim")

    def start_episode(self) -> None:
        """Call at every episode start: a success streak never spans two episodes."""
        self.streak.start_episode()

    def apply(self, next_obs: dict[str, np.ndarray], info: dict[str, Any], task: str) -> float:
        """The step's reward; updates `info` in place.

        `info["success"]` becomes the sparse source's verdict (the sim's own is kept as
        `info["sim_success"]`; with rewards.success_frames > 1 it needs that many positive
        steps in a row since `start_episode`), `info["success_prob"]` the source's
        probability where it has one, and `info["reward_scalars"]` every source's value for
        the step row.
        """
        sim_success = bool(info["success"])
        step_inputs = {"proprio": next_obs["proprio"][None],
                       "action": np.asarray(info["action"], np.float32)[None]}
        if "state" in next_obs:
            step_inputs["state"] = next_obs["state"][None]
        out = self.service.score(
            {name: next_obs[name][None] for name in self.cameras}, task,
            step_inputs=step_inputs,
            sim_success=np.array([sim_success]) if self.sim else None,
            streak=self.streak,
        )
        info["sim_success"] = sim_success
        info["success"] = bool(out.success[0])
        if out.success_prob is not None:
            info["success_prob"] = float(out.success_prob[0])
        info["reward_scalars"] = out.scalars(0)
        return float(out.reward[0])
