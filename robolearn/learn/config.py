"""CQN hyperparameters. Defaults follow the reference RLBench configuration (Seo et al. 2024);
see ../shared/notes/cqn-reference.md."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CQNConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    levels: int = Field(3, ge=1, le=8, description="Coarse-to-fine levels L.")
    bins: int = Field(5, ge=2, le=64, description="Bins per level per action dimension B.")
    atoms: int = Field(51, ge=2, description="C51 atoms.")
    v_min: float = Field(-2.0, description="Lowest return on the C51 support.")
    v_max: float = Field(2.0, description="Highest return on the C51 support.")
    discount: float = Field(0.99, gt=0, le=1, description="γ.")
    nstep: int = Field(1, ge=1, le=20, description="n of the n-step return.")
    lr: float = Field(5e-5, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay.")
    critic_lambda: float = Field(0.1, ge=0, description="Weight of the C51 critic loss.")
    bc_lambda: float = Field(1.0, ge=0, description="Weight of the demo losses (FOSD+margin).")
    bc_margin: float = Field(0.01, ge=0, description="Margin of the demo margin loss.")
    tau: float = Field(0.02, gt=0, le=1, description="Polyak rate of the target critic.")
    batch_size: int = Field(256, ge=1, description="Online samples per update.")
    demo_batch_size: int = Field(256, ge=0, description="Demo samples per update.")
    frame_stack: int = Field(8, ge=1, description="Frames stacked per observation S.")
    feature_dim: int = Field(64, ge=1, description="Feature bottleneck size.")
    hidden_dim: int = Field(512, ge=1, description="Critic MLP width.")
    stddev: float = Field(0.01, ge=0, description="Exploration noise std (truncated Gaussian).")
    num_expl_steps: int = Field(0, ge=0, description="Uniform random actions at the start.")
    random_shift_pad: int = Field(4, ge=0, description="Random-shift augmentation pad, px.")
    action_sequence: int = Field(
        1, ge=1, description="K > 1 turns on CQN-AS (action-sequence critic with a GRU)."
    )
    gru_layers: int = Field(
        1, ge=1, description="CQN-AS: GRU layers across the action sequence (unused when K = 1)."
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="Network matmuls and convolutions in fp32, or in bfloat16 under "
        "autocast (weights, optimiser, losses and C51 targets stay fp32). bf16 made the "
        "state-based update 1.7x faster on an AVX512-BF16 CPU; whether it learns as well is not "
        "shown (the reset-free drawer runs in bf16 were poor, but so were most fp32 runs there, "
        "and C51 logits and small Q gaps between bins lose precision in bf16); fp32 is what "
        "the reference runs. Measure before use."
    )
    temporal_ensemble_decay: float = Field(
        0.01, ge=0, description="CQN-AS execution: weight exp(-decay·age) per prediction."
    )

    @model_validator(mode="after")
    def _check(self) -> CQNConfig:
        if self.v_min >= self.v_max:
            raise ValueError(f"v_min {self.v_min} must be below v_max {self.v_max}")
        return self
