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
    encoder: Literal["scratch", "pretrained"] = Field(
        "scratch", description="Pixel encoder. 'scratch': the reference 4-layer CNN, trained "
        "with the critic on random-shifted images (conv-bound: about 1 update/s at batch 256 "
        "and two 84x84 cameras on a 2-core CPU). 'pretrained' (HIL-SERL's recipe): a frozen "
        "ImageNet EfficientNet-Lite0 cut at pretrained_stride encodes each camera frame once "
        "(the learner as frames enter the replay, the actor as they arrive); the replay keeps "
        "the feature maps, not the pixels, and only a small learned pooling (1x1 conv, "
        "spatial learned embeddings) trains with the critic. Checkpoints and weights load "
        "only into the encoder that wrote them."
    )
    pretrained_stride: Literal[8, 16] = Field(
        16, description="'pretrained': where the frozen network is cut, as its output stride: "
        "16 (112 channels, 8x8 at 128 px input) or 8 (40 channels, 16x16, less ImageNet "
        "semantics, 1.4x the bytes per frame). A coarser map keeps less of where things are."
    )
    pretrained_input_size: int = Field(
        128, ge=32, le=512, description="'pretrained': frames are resized to this square, px, "
        "before the frozen network (HIL-SERL: 128). The encode cost per frame grows with its "
        "square (bench_cqn_update reports ms per frame); a different size is a different "
        "feature map, so checkpoints do not carry over."
    )
    feature_dtype: Literal["uint8", "fp16"] = Field(
        "uint8", description="'pretrained': how the replay and the actor keep features: uint8 "
        "with a fixed per-channel scale from the network's batch norms (rounding error at "
        "most half a step: 4 % of a typical channel's std, 2.4 % RMS), or float16 (twice "
        "the bytes)."
    )
    feature_shift_pad: int = Field(
        1, ge=0, description="'pretrained': augmentation, a random shift of each (sample, "
        "camera) feature map by up to this many cells with replicate padding (random "
        "shift in feature space, since the frames are encoded once; one cell is 1/8 of the "
        "image at stride 16 and 128 px). 0: no augmentation."
    )
    pooling: Literal["embeddings", "keypoints"] = Field(
        "embeddings", description="'pretrained': how each camera's feature map is pooled "
        "after the 1x1 conv. 'embeddings': HIL-SERL's learned spatial embeddings "
        "(spatial_embeddings weight maps per channel). 'keypoints': a spatial soft-argmax, "
        "the expected (x, y) of each channel's softmax over the map (2 numbers per channel): "
        "where a small object is, which the embeddings must learn anew for every place it "
        "was seen. A checkpoint loads only into the pooling that wrote it."
    )
    pooling_channels: int = Field(
        32, ge=1, description="'pretrained': per camera, the 1x1 conv's output channels "
        "(bottleneck before the pooling; 'keypoints': one keypoint per channel)."
    )
    spatial_embeddings: int = Field(
        8, ge=1, description="'pretrained', pooling 'embeddings': learned spatial maps per channel "
        "(HIL-SERL's num_spatial_blocks); a camera gives pooling_channels x this features."
    )
    action_sequence: int = Field(
        1, ge=1, description="K > 1 turns on CQN-AS (action-sequence critic with a GRU)."
    )
    gru_layers: int = Field(
        1, ge=1, description="CQN-AS: GRU layers across the action sequence (unused when K = 1)."
    )
    critic_streams: Literal["separate", "shared"] = Field(
        "separate", description="Critic layout. 'separate' is the reference's dueling critic: "
        "a value stream and an advantage stream, each with its own feature bottlenecks, "
        "LayerNorm+SiLU MLP (and, for CQN-AS, GRU) and head, combined on logits as "
        "V + A − mean_bins(A). 'shared' is robolearn's earlier layout, one bottleneck and MLP "
        "trunk feeding both heads (half the critic MLP's compute), kept for comparison. "
        "Checkpoints and published weights load only into the layout that wrote them; "
        "changing it means training anew."
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="Network matmuls and convolutions in fp32, or in bfloat16 under "
        "autocast (weights, optimiser, losses and C51 targets stay fp32). bf16 speeds the "
        "update up on CPUs with bf16 matmul units (benchmarks: cqn_update --precision); "
        "whether it learns as well is not shown (the reset-free drawer runs in bf16 were "
        "poor, but so were most fp32 runs there, and C51 logits and small Q gaps between bins "
        "lose precision in bf16); fp32 is what the reference runs. Measure before use."
    )
    temporal_ensemble_decay: float = Field(
        0.01, ge=0, description="CQN-AS execution: weight exp(-decay·age) per prediction."
    )

    @model_validator(mode="after")
    def _check(self) -> CQNConfig:
        if self.v_min >= self.v_max:
            raise ValueError(f"v_min {self.v_min} must be below v_max {self.v_max}")
        return self
