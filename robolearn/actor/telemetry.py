"""What the actor publishes each step on its telemetry socket (the Live page's numbers), as
a type: the service exports it in its OpenAPI document, so the browser's type is generated.

The actor publishes plain dicts (no validation on the control loop's hot path); a test
checks that every key it sends is declared here with the right type. Keys of the reward
workers (`reward_worker_<source>`, ..._restarts) and reward scalars vary with the config
and ride along as extra keys.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Telemetry(BaseModel):
    """One control step, as the actor saw it."""

    model_config = ConfigDict(extra="allow")

    step: int = Field(description="Steps since the actor started.")
    episode: int = Field(description="Episode index of this actor (0-based).")
    episode_step: int = Field(description="Step within the episode.")
    reward: float | None = Field(description="This step's reward; None where it was not a "
                                 "finite number.")
    success: bool
    success_prob: float | None = Field(description="A reward model's success probability, "
                                       "else the sparse success as 0/1; None where it was "
                                       "not a finite number (a failing reward model).")
    q_value: float | None = Field(None, description="The CQN policy's Q of its action; None "
                                  "also where it was not finite (the policy then faults).")
    q_uncertainty: float | None = Field(
        None, description="How unsure the CQN critic is of its action: the std of its return "
        "distribution (actor.ask_takeover asks an operator when it stays high); None when the "
        "policy has no critic or did not choose the action.")
    intervention: bool = Field(description="An operator drove this step (takeover).")
    estop: bool
    paused: bool
    takeover: bool
    takeover_ended: str | None = Field(None, description="Why the last takeover ended.")
    state: str = Field(description="running, estop or policy_fault.")
    policy_fault: str | None = Field(None, description="Why the arm is held (NaN Q, ...).")
    direction: str | None = Field(None, description="Reset-free: forward or backward.")
    filtered: str = Field(description="Safety filter reasons, comma-separated ('' none).")
    action_dim: int = Field(description="Action length teleop must send (4: no yaw).")
    period_ms: float
    jitter_ms: float
    latency_ms: float
    frame_age_ms: float
    policy_version: int | None = None
    weights_version: int | None = None
    policy_updates: int | None = None
    weights_age_s: float | None = None
    learner_alive: bool | None = None
    learner_silent_s: float | None = None
    learner_error: str | None = None
    learner_utd_target: float | None = None
    learner_utd_held: float | None = None
    learner_updates_per_s: float | None = None
    learner_env_steps_per_s: float | None = None
    learner_behind: bool | None = None
    reward_values_awaited: int | None = Field(None, description="Reward-worker values "
                                              "still owed to stored steps.")
