"""What the actor's loop knows about an episode and each of its steps, as types.

`EpisodeStart` is decided before the first step (seed, task, whether it is an evaluation),
`StepOutcome` is one control step as it happened (what was observed, what was sent and who
chose it, what the reward sources said, why the episode ends there if it does), and
`EpisodeEnd` / `EpisodeResult` is how it ended. Episode sinks (robolearn.actor.sinks) read
these and nothing else of the actor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from robolearn.actor.env import StepTiming

Obs = dict[str, np.ndarray]  # camera images by name, "proprio", and optionally "state"

# Who chose the action that was sent: the policy; an operator during a takeover (an
# intervention); or nobody, so the arm held still (the policy faulted, or the operator's
# input went stale during a takeover).
ActedBy = Literal["policy", "operator", "held"]


@dataclass(frozen=True)
class EpisodeStart:
    """An episode about to take its first step.

    Args:
        index: the actor's episode counter (0-based).
        seed: the scene seed (the sim re-randomises from it).
        key: unique name the learner and the reward workers file its steps under.
        task: the task text the reward sources and the learner are told.
        record_task: the store's task column: the task name in the sim, "" on a real rig.
        evaluation: a greedy evaluation: stored and measured, never learned from.
        policy: the policy's name as stored (e.g. "cqn-eval").
        direction: reset-free runs: "forward" or "backward"; else None.
        run_id: the store's run, None when nothing is recorded.
    """

    index: int
    seed: int
    key: str
    task: str
    record_task: str
    evaluation: bool
    policy: str
    direction: str | None = None
    run_id: int | None = None


@dataclass(frozen=True)
class StepOutcome:
    """One control step: from the observation acted on to the one the action led to.

    Args:
        index: the action's index in the episode (0-based; index + 1 steps are done).
        obs: what the action was chosen on.
        action: what was sent, after the safety filter (policy space).
        acted_by: who chose it (see ActedBy).
        next_obs: the observation the action led to (the reward judges this one).
        reward: the reward sources' reward (the sim's sparse one by default).
        success: this step's success verdict (the sparse source's, debounced).
        success_prob: a reward model's success probability, else `success` as 0/1.
        terminated: the task ended here (success with actor.end_on_success).
        truncated: the episode ends here for another reason (step limit, e-stop, stuck,
            stop request); what the learner bootstraps through.
        estop: an e-stop was latched when the step ended.
        stuck: reset-free: why the robot counts as stuck (ends a failing episode), or None.
        filter_reasons: why the safety filter changed the action (empty: unchanged).
        policy_fault: why the policy could not act (the arm was held), or None.
        timing: the step's period, jitter, latency and frame age.
        reward_scalars: every reward source's value for the stored step row.
        reward_telemetry: the reward workers' state, for telemetry.
    """

    index: int
    obs: Obs
    action: np.ndarray
    acted_by: ActedBy
    next_obs: Obs
    reward: float
    success: bool
    success_prob: float
    terminated: bool
    truncated: bool
    estop: bool
    stuck: str | None
    filter_reasons: tuple[str, ...]
    policy_fault: str | None
    timing: StepTiming
    reward_scalars: Mapping[str, float]
    reward_telemetry: Mapping[str, str | int]

    @property
    def intervention(self) -> bool:
        """An operator steered this step: it is recorded, and learned from, as such."""
        return self.acted_by == "operator"

    def scalars(self) -> dict[str, float]:
        """The per-step numbers stored with the step row and shown live."""
        t = self.timing
        return {"jitter_ms": t.jitter_ns / 1e6, "latency_ms": t.latency_ns / 1e6,
                "frame_age_ms": t.max_frame_age_ns / 1e6, **self.reward_scalars}


@dataclass
class EpisodeResult:
    index: int
    seed: int
    steps: int
    success: bool
    outcome: str
    end_reason: str
    episode_id: int | None
    evaluation: bool = False
    intervention_steps: int = 0
    direction: str | None = None  # reset-free runs: "forward" or "backward"


@dataclass(frozen=True)
class EpisodeEnd:
    """An episode that ended, as the sinks' `end` hooks see it.

    Args:
        episode: how it started.
        steps: steps taken (0: nothing happened, e.g. stopped before the first).
        success: a step succeeded.
        outcome: "success", "timeout", "failure" or "aborted".
        end_reason: why it ended ("success", "step_limit", "estop", "shutdown",
            "stale_observation", or a reset-free stuck reason).
        intervention_steps: steps an operator steered.
        last_obs: the final observation (the stored episode's last frame).
        episode_id: the stored episode, once the recorder stored it; None if not stored.
    """

    episode: EpisodeStart
    steps: int
    success: bool
    outcome: str
    end_reason: str
    intervention_steps: int
    last_obs: Obs
    episode_id: int | None = None

    def result(self) -> EpisodeResult:
        e = self.episode
        return EpisodeResult(index=e.index, seed=e.seed, steps=self.steps,
                             success=self.success, outcome=self.outcome,
                             end_reason=self.end_reason, episode_id=self.episode_id,
                             evaluation=e.evaluation, intervention_steps=self.intervention_steps,
                             direction=e.direction)
