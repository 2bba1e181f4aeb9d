"""Reward model settings: the success classifier, the preference model, zero-shot CLIP, and
how the reward service combines them into the reward the learner sees.

Example (YAML, under `rewards:` in a run config)::

    rewards:
      sparse: classifier            # success comes from the trained classifier
      success_frames: 2             # ... on two consecutive frames
      shaping: [{source: preference, weight: 0.1}]
      classifier: {cameras: [front, wrist], source: labels, target_fpr: 0.02}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from robolearn.config.base import Frozen

RewardSourceName = Literal["sim_success", "classifier", "preference", "clip"]
# Sparse sources that are learned detectors, as on a real rig: the learner judges stored
# episodes again with them (robolearn.learn.judge) instead of trusting stored outcomes.
LEARNED_SUCCESS: tuple[str, ...] = ("classifier", "clip")


class ClipModelConfig(Frozen):
    """An open_clip model loaded from a local checkpoint file (nothing is downloaded)."""

    model_name: str = Field(
        "ViT-B-32",
        description="open_clip architecture name (open_clip.list_models()); must match the "
        "checkpoint, or loading fails with a shape mismatch.",
    )
    checkpoint: Path | None = Field(
        None,
        description="Local CLIP checkpoint file (.pt/.bin/.safetensors as open_clip saves "
        "them). Download it once on a machine with internet and copy it here; None disables "
        "every CLIP feature.",
    )


class ClassifierConfig(Frozen):
    """Success classifier: frozen pretrained encoder per camera + a small trainable head."""

    cameras: tuple[str, ...] | None = Field(
        None, description="Cameras the classifier looks at, in order; None: every camera of "
        "the training episodes (they must all have the same ones)."
    )
    source: Literal["labels", "outcomes", "sim_success"] = Field(
        "labels",
        description="Training labels. labels: operators' success/failure marks (labels "
        "table). outcomes: failed episodes give negatives on every frame, successful ones "
        "positives on their last `outcome_positive_frames` frames. sim_success: the sim's "
        "per-step success (sim runs and tests only).",
    )
    unmarked: Literal["ignore", "failure"] = Field(
        "ignore",
        description="labels: frames without a mark in an episode that has at least one. "
        "ignore: they are not training data. failure: they are negatives, as when an "
        "operator holds L over the success frames while the whole episode plays (the UI's "
        "labelling) and every frame left unmarked was seen not to be a success.",
    )
    outcome_positive_frames: int = Field(
        3, ge=1, description="outcomes: how many final frames of a successful episode are "
        "positives. Too many marks frames before the success as success."
    )
    encoder: Literal["efficientnet_lite0", "clip"] = Field(
        "efficientnet_lite0",
        description="Frozen image encoder: ImageNet EfficientNet-Lite0 (ships with its "
        "package) or the open_clip image tower of `clip` (needs a local checkpoint).",
    )
    clip: ClipModelConfig = Field(default_factory=ClipModelConfig,
                                  description="The CLIP model when encoder is clip.")
    image_size: int = Field(
        64, ge=32, le=256,
        description="Frames are resized to this square size, px, before the encoder. "
        "Larger sees more detail but costs quadratically more CPU time per frame.",
    )
    crop_pad_px: int = Field(
        4, ge=0, le=32,
        description="Random-crop augmentation: pad by this many px (edge pixels) and crop "
        "back at a random offset. 0 disables augmentation.",
    )
    augment_copies: int = Field(
        2, ge=0, le=16,
        description="Randomly cropped copies per training frame whose encoder features are "
        "computed once and cached (the encoder is frozen, so this is where CPU time goes).",
    )
    spatial_features: int = Field(
        8, ge=1, le=64, description="Learned spatial embeddings per channel (pooling)."
    )
    bottleneck: int = Field(
        64, ge=4, le=1024, description="Channels the encoder map is projected to before the "
        "spatial pooling, per camera."
    )
    hidden: int = Field(256, ge=8, le=4096, description="Width of the MLP hidden layer.")
    dropout: float = Field(0.3, ge=0, lt=1, description="Dropout rate in the head.")
    steps: int = Field(400, ge=1, description="Gradient steps of head training.")
    batch_size: int = Field(
        64, ge=2, description="Frames per step, half positives and half negatives."
    )
    lr: float = Field(3e-4, gt=0, description="Adam learning rate of the head.")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay of the head.")
    holdout_fraction: float = Field(
        0.25, gt=0, lt=1,
        description="Fraction of episodes (not frames: neighbouring frames are near copies) "
        "held out to pick the threshold and report the metrics.",
    )
    target_fpr: float = Field(
        0.05, ge=0, le=1,
        description="The threshold is the lowest whose false-positive rate on the held-out "
        "negatives is at most this. A false success ends an episode early and rewards "
        "the wrong behaviour, so keep it small.",
    )
    min_threshold: float = Field(
        0.5, ge=0, le=1,
        description="The threshold is never below this success probability, whatever the "
        "held-out frames allow: they are the labelled frames, not the states a learning "
        "policy visits, and a threshold far below 0.5 calls success where the classifier "
        "itself says failure is likelier. 0: the held-out frames alone decide.",
    )
    task: str | None = Field(None, description="Only episodes of this task; None: all.")
    seed: int = Field(0, description="Seed of the split, the crops, the batches and the init.")
    model_path: Path | None = Field(
        None, description="Reward service: this classifier file; None: the newest ready "
        "classifier in the database."
    )

    @model_validator(mode="after")
    def _clip_needs_checkpoint(self) -> ClassifierConfig:
        if self.encoder == "clip" and self.clip.checkpoint is None:
            raise ValueError("classifier.encoder: clip needs classifier.clip.checkpoint, a "
                             "local open_clip checkpoint file")
        return self


class PreferenceConfig(Frozen):
    """Bradley-Terry preference reward model on segments of logged episodes."""

    inputs: tuple[str, ...] = Field(
        ("proprio", "state", "action"),
        description="Per-step arrays concatenated into the model's input (episode arrays "
        "such as proprio, state, action). Must exist in every episode used.",
    )
    segment_steps: int = Field(
        15, ge=1, description="Steps per compared segment (shorter episodes are skipped)."
    )
    ensemble: int = Field(3, ge=1, le=32, description="M members, each on a bootstrap resample.")
    hidden: int = Field(128, ge=4, description="Width of each member's two hidden layers.")
    label_noise: float = Field(
        0.1, ge=0, lt=1,
        description="eps: probability a teacher answers at random; P = eps/2 + (1-eps) * "
        "sigmoid(R_a - R_b). Too low lets a few wrong answers dominate.",
    )
    steps: int = Field(300, ge=1, description="Gradient steps per member per update.")
    batch_size: int = Field(64, ge=1, description="Pairs per gradient step.")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    selection: Literal["uniform", "disagreement", "entropy"] = Field(
        "disagreement", description="Query selection after the warm-up."
    )
    warmup_labels: int = Field(
        20, ge=0, description="Answered queries before active selection starts (uniform "
        "until then: an untrained ensemble's disagreement means nothing)."
    )
    candidates_per_query: int = Field(
        10, ge=1, description="Random candidate pairs scored per query selected actively."
    )
    seed: int = Field(0, description="Seed of segment cutting, bootstraps and init.")
    model_path: Path | None = Field(
        None, description="Reward service: this model file; None: newest ready in the database."
    )
    # While training: the operator service makes queries and retrains the model for the
    # active training run (robolearn.rewards.preference_loop), reading these from the run's
    # own config.
    queries_per_episode: float = Field(
        1.0, ge=0, le=100,
        description="While the run trains with preference shaping, pending queries created "
        "per recorded training episode (evaluation and replay episodes do not count). 0 "
        "turns automatic queries off; too high asks about near-identical clips.",
    )
    max_pending: int = Field(
        20, ge=1, le=10_000,
        description="No new queries while this many of the run's queries wait unanswered "
        "(leased ones included): queries nobody answers would only be cut from old policy "
        "behaviour.",
    )
    recent_episodes: int = Field(
        50, ge=2,
        description="Queries compare segments of the run's newest this-many training "
        "episodes, so they show what the current policy does.",
    )
    retrain_every: int = Field(
        10, ge=0,
        description="Retrain the model after this many new answers of the run (undone and "
        "skipped ones not counted). 0: only `robolearn prefs train` trains.",
    )
    holdout_fraction: float = Field(
        0.2, ge=0, lt=1,
        description="Share of queries whose answers are held out of training to measure the "
        "model's agreement with people (picked by query id, so the same queries stay held "
        "out across versions). 0: no agreement is reported.",
    )
    collect_without_shaping: bool = Field(
        False,
        description="Also make queries and retrain while the run does not use preference "
        "shaping: collects the answers for a first model (a run cannot start with preference "
        "shaping before a model exists).",
    )
    loop_interval_s: float = Field(
        5.0, gt=0, le=3600,
        description="How often the operator service checks the active training run for new "
        "episodes and answers (the service's own config is read). Longer delays queries.",
    )


class ClipRewardConfig(Frozen):
    """Zero-shot VLM-RM reward: R = 1 - 1/2 |(s - g) P|^2 with P = a dd^T/|d|^2 + (1-a) I."""

    model: ClipModelConfig = Field(default_factory=ClipModelConfig,
                                   description="The CLIP model.")
    goal: str | None = Field(None, description="Goal prompt; None: the task's description.")
    baseline: str = Field(
        "a robot arm on a table", description="Baseline prompt b; d = g - b is the direction "
        "the reward attends to."
    )
    alpha: float = Field(
        0.5, ge=0, le=1, description="Projection strength: 0 is plain cosine similarity to "
        "the goal, 1 only the component along g - b."
    )
    variant: Literal["projection", "softmax"] = Field(
        "projection",
        description="projection: the VLM-RM formula. softmax: reward 1 when the softmax "
        "over goal_texts + baseline_texts puts at least `threshold` on the goal texts.",
    )
    goal_texts: tuple[str, ...] = Field((), description="softmax: extra goal phrasings.")
    baseline_texts: tuple[str, ...] = Field(
        ("a robot arm on a table",), description="softmax: texts that are not the goal."
    )
    temperature: float = Field(0.01, gt=0, description="softmax: temperature of the logits.")
    threshold: float = Field(0.5, gt=0, lt=1, description="softmax: goal probability for 1.")
    camera: str | None = Field(None, description="Camera scored; None: the first one.")


class FrameMeanConfig(Frozen):
    """Diagnostic dense source: a camera's mean brightness in [0, 1], computed after a fixed
    delay per call. It stands in for a slow model (tests and benchmarks of the worker path)
    and says nothing about the task: never use it to train a real policy."""

    camera: str | None = Field(None, description="Camera scored; None: the first one.")
    delay_ms: float = Field(
        0.0, ge=0, le=60_000,
        description="Sleep this long once per scoring call, whatever the batch size (a "
        "model whose cost is a fixed per-call latency). Larger than the control period "
        "breaks the loop's rate unless the term runs in a worker.",
    )


ShapingSourceName = Literal["classifier", "preference", "clip", "frame_mean"]


class ShapingTerm(Frozen):
    """One dense term of the reward: weight * the source's value for the step."""

    source: ShapingSourceName = Field(description="Dense source added to the reward.")
    weight: float = Field(1.0, description="Multiplier of the source's value.")
    process: Literal["inline", "worker", "auto"] = Field(
        "inline",
        description="Where the source runs. inline: in the actor's control loop, every "
        "step (it must fit the control period, or the loop misses its rate). worker: in "
        "its own process, fed without waiting; its values reach the store and the learner "
        "late (the learner holds the episode until they arrive). auto: measure one batch-1 "
        "inference at start-up and use the worker when it exceeds "
        "rewards.auto_budget_fraction of the control period.",
    )


class RewardsConfig(Frozen):
    """Which reward sources a run uses and how they combine: reward = sparse + sum(shaping)."""

    sparse: RewardSourceName | Literal["none"] = Field(
        "sim_success",
        description="Source of the success signal (reward 1 on success, episode end): "
        "sim_success (sim ground truth), classifier (success_prob >= its threshold), "
        "clip (softmax variant), or none.",
    )
    shaping: tuple[ShapingTerm, ...] = Field(
        (), description="Dense terms added every step, e.g. the preference reward."
    )
    success_frames: int = Field(
        1, ge=1, le=50,
        description="Consecutive steps the sparse source must judge successful before the "
        "step counts as a success (reward 1, episode end). 1 trusts every single frame; 2-3 "
        "stop one misjudged frame of a learned detector (classifier, clip) from ending an "
        "episode as a false success, and delay each true success by k - 1 control periods. "
        "Applies to the actor's episodes; offline scoring judges each step alone.",
    )
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig,
                                         description="Success classifier settings.")
    preference: PreferenceConfig = Field(default_factory=PreferenceConfig,
                                         description="Preference model settings.")
    clip: ClipRewardConfig = Field(default_factory=ClipRewardConfig,
                                   description="Zero-shot CLIP reward settings.")
    frame_mean: FrameMeanConfig = Field(default_factory=FrameMeanConfig,
                                        description="Diagnostic frame_mean source settings.")
    auto_budget_fraction: float = Field(
        0.3, gt=0, le=1,
        description="process: auto moves a shaping term to a worker when one batch-1 "
        "inference takes longer than this fraction of the control period (the rest is "
        "for observing, the policy, the command and the other sources).",
    )
    worker_queue: int = Field(
        1000, ge=1, le=100_000,
        description="Steps queued for a reward worker before the actor drops new ones (a "
        "dropped step's value is missing: stored without it, learner delta 0). Each holds "
        "one frame per camera.",
    )
    worker_batch: int = Field(
        32, ge=1, le=1024,
        description="Most queued steps a reward worker scores in one inference call.",
    )
    worker_restarts: int = Field(
        3, ge=0, description="Times a reward worker that died is restarted, each before the next "
        "episode (the arm waits while the model loads), before its shaping term stays "
        "off for the rest of the run."
    )
    worker_start_timeout_s: float = Field(
        120.0, gt=0, description="How long the actor waits for a reward worker to load its "
        "model at start-up before failing with the worker's error."
    )
    late_wait_s: float = Field(
        600.0, gt=0,
        description="How long the learner holds a finished episode for its worker values "
        "(episode_rewards) before adding it with the inline rewards only (logged). Too "
        "short trains on rewards without their worker terms.",
    )
    late_drain_s: float = Field(
        30.0, ge=0, description="At the end of a run, how long the actor waits for the "
        "worker values still in flight before storing the episodes without them."
    )
    evaluate_sim_success: bool = Field(
        True, description="Still log the sim's ground-truth success beside the learned "
        "reward (evaluation only; it never reaches the learner unless sparse is sim_success)."
    )

    @model_validator(mode="after")
    def _check(self) -> RewardsConfig:
        names = [t.source for t in self.shaping]
        if len(set(names)) != len(names):
            raise ValueError(f"rewards.shaping lists a source twice: {names}")
        slow = [t.source for t in self.shaping if t.process != "inline"]
        if self.sparse in slow:
            # Success ends the episode at that very step: its source must answer inline.
            raise ValueError(
                f"rewards.sparse: {self.sparse} decides success and ends episodes, so it "
                f"runs inline; rewards.shaping asks to run {self.sparse} with process: "
                "worker/auto. Make that shaping term inline, or choose a sparse source that "
                "fits the control period (sim_success, classifier)"
            )
        if self.sparse == "clip" and self.clip.variant != "softmax":
            raise ValueError("rewards.sparse: clip needs rewards.clip.variant: softmax "
                             "(the projection reward is dense, use it as shaping)")
        return self
