"""Reset-free training: a forward/backward task pair, the retry policy, stuck detection and
what happens when the robot is stuck.

Nothing here is sim-specific beyond the task names: on a real rig the two directions are the
run's two tasks (each with its own success classifier) and the world is never reset by the
software; in the sim the driver switches its task without resetting the world.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ResetFreeConfig(BaseModel):
    """`reset_free:` in a run config. Disabled by default (every episode starts with a reset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        False,
        description="Run reset-free: after the first episode nothing resets the world; each "
        "episode starts where the last one ended, alternating forward and backward.",
    )
    forward_task: str = Field(
        "drawer_open",
        min_length=1, max_length=64,
        description="Task of the forward direction (a sim task name, or the task text of a "
        "real rig). Stored as the episode's task with direction 'forward'.",
    )
    backward_task: str = Field(
        "drawer_close",
        min_length=1, max_length=64,
        description="Task of the backward direction, which undoes the forward one (sim pairs: "
        "drawer_open/drawer_close, bin_a_to_b/bin_b_to_a).",
    )
    home_between_episodes: bool = Field(
        True,
        description="Before each reset-free episode, open the gripper and move the arm to its "
        "home pose (the pose of the first episode's start): a scripted arm motion that leaves "
        "every object where it is, so each episode starts from the arm pose the "
        "demonstrations start from. Off: the arm starts where the last episode left it.",
    )
    home_lift_m: float = Field(
        0.08, ge=0.0, le=0.3,
        description="Before homing, after the gripper opened, lift the hand this far straight "
        "up (capped by the safety box), so the move home does not drag what the open fingers "
        "still surround, m.",
    )
    home_timeout_s: float = Field(
        15.0, gt=0.0, le=120.0,
        description="Longest wait for the arm to reach home before the episode start fails "
        "(a blocked arm), s.",
    )
    max_retries: int = Field(
        3, ge=0, le=1000,
        description="After a failed episode the same direction is retried up to this many "
        "times; then the other direction runs (it may undo what blocks this one). 0 switches "
        "after every episode.",
    )
    escalate_after_failures: int = Field(
        25, ge=1, le=10_000,
        description="This many failed episodes in a row (either direction) that moved no task "
        "object count as stuck (a failure that moved something is practice; without object "
        "tracking every failure counts). Too small escalates on ordinary early-training "
        "failures; too large leaves a stuck robot practising nothing for a long time.",
    )
    stuck_steps: int = Field(
        600, ge=2, le=100_000,
        description="No progress for this many steps in a row means stuck: the success "
        "probability stayed within `flat_success_prob` and no task object moved more than "
        "`still_object_m`. Counted within one episode when the arm is homed between episodes "
        "(across episodes, `escalate_after_failures` counts), across episodes otherwise (the "
        "arm carries on where it was). Too small escalates while an untrained policy is "
        "still exploring.",
    )
    flat_success_prob: float = Field(
        0.02, ge=0.0, le=1.0,
        description="Success probability range (max - min) over the stuck window that counts "
        "as flat.",
    )
    still_object_m: float = Field(
        0.005, ge=0.0, le=1.0,
        description="Largest displacement of any task object over the stuck window that "
        "counts as no motion, m. Real rigs without object tracking skip the motion test and "
        "rely on the success probability alone.",
    )
    workspace_limit_steps: int = Field(
        50, ge=1, le=100_000,
        description="The end effector pressed against the safety box this many steps in a row "
        "ends the episode and counts as stuck (a policy pushing against a wall).",
    )
    workspace_margin_m: float = Field(
        0.005, ge=0.0, le=0.1,
        description="Within this distance of a face of safety.workspace_*_m counts as at the "
        "limit, m.",
    )
    on_stuck: Literal["operator", "scripted_reset"] = Field(
        "operator",
        description="operator: pause and raise an operator request (resolved in the service by "
        "a human reset, a takeover, or dismiss); scripted_reset: send the driver's reset (the "
        "sim re-randomises, a real arm goes home) and carry on.",
    )
    request_poll_s: float = Field(
        0.2, gt=0.0, le=10.0,
        description="While paused on an operator request, how often the actor checks the "
        "database for its resolution, s.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> ResetFreeConfig:
        if self.forward_task == self.backward_task:
            raise ValueError(
                f"reset_free: forward_task and backward_task are both {self.forward_task!r}; "
                "they must be two tasks that undo each other"
            )
        return self
