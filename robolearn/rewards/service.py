"""RewardService: the run's reward sources combined into the reward the learner sees.

reward = sparse + sum(weight_i * shaping_i), where sparse is 1.0 on success as judged by
`rewards.sparse` (sim ground truth, the classifier's thresholded probability, or CLIP's
softmax variant) and the shaping terms are dense sources. Every value of every source comes
back in `RewardOutput.values`, so the actor can log them all with the step (the sim's
ground-truth success too, for evaluation, even when it does not reach the learner).

How the actor calls it, once per control step (B = 1) or per batch of steps::

    service = RewardService.from_config(run_cfg, store)        # loads models once
    out = service.score(
        {"front": front[None], "wrist": wrist[None]},           # uint8 [B, H, W, 3]
        task="pick up the red cube and lift it",
        step_inputs={"proprio": next_proprio[None], "state": next_state[None],
                     "action": action[None]},                   # preference inputs
        sim_success=np.array([sim_success]),                    # when the sim reports it
    )
    reward, success = float(out.reward[0]), bool(out.success[0])
    scalars = out.scalars(0)   # {"classifier_prob": ..., "preference": ..., ...} for add_step

Within an episode, pass the episode's `streak=service.new_streak()` (reset it with
`streak.start_episode()`): success then needs `rewards.success_frames` consecutive positive
steps, so one misjudged frame cannot end an episode. Without it each step is judged alone.

Frames are the observation AFTER the action (the result being judged). Inference is
batched: all cameras of a step go through the encoder in one call each. On a 10 Hz CPU loop
the EfficientNet-Lite0 classifier at 64 px fits the period (see benchmarks/
bench_rewards_latency.py); larger models belong on the learner's GPU.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import numpy as np

from robolearn.config.models import RunConfig
from robolearn.config.rewards import RewardsConfig
from robolearn.errors import RewardModelError
from robolearn.rewards import records
from robolearn.rewards.classifier import SuccessClassifier
from robolearn.rewards.clip_reward import ClipReward
from robolearn.rewards.frame_mean import FrameMean
from robolearn.rewards.preference import PreferenceModel
from robolearn.rewards.streak import SuccessStreak
from robolearn.store import Store

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RewardOutput:
    """Rewards of a batch of B steps."""

    reward: np.ndarray  # [B] float32, what the learner gets
    success: np.ndarray  # [B] bool, from the sparse source (ends the episode)
    success_prob: np.ndarray | None  # [B], when the sparse source has a probability
    values: dict[str, np.ndarray]  # every source's raw value, [B] each

    def scalars(self, index: int) -> dict[str, float]:
        """Step `index`'s values as plain floats (for EpisodeWriter.add_step scalars)."""
        out = {name: float(v[index]) for name, v in self.values.items()}
        if self.success_prob is not None:
            out["success_prob"] = float(self.success_prob[index])
        return out


class RewardService:
    """Loads the configured reward models once and scores batches of steps.

    Args:
        cfg: the run's rewards section.
        store: where the newest ready models are looked up when no model_path is set.
        run_id: prefer models of this run.
        classifier, preference, clip: already loaded models (override the lookup).

    Raises:
        RewardModelError: a configured source has no model (train one first) or its file
            is missing or corrupt.
    """

    def __init__(self, cfg: RewardsConfig, *, store: Store | None = None,
                 run_id: int | None = None, classifier: SuccessClassifier | None = None,
                 preference: PreferenceModel | None = None, clip: ClipReward | None = None,
                 ) -> None:
        self.cfg = cfg
        used = {cfg.sparse, *(t.source for t in cfg.shaping)}
        self.classifier = classifier
        if "classifier" in used and classifier is None:
            path = self._model_path("classifier", cfg.classifier.model_path, store, run_id)
            self.classifier = SuccessClassifier.load(path)
        self.preference = preference
        if "preference" in used and preference is None:
            path = self._model_path("preference", cfg.preference.model_path, store, run_id)
            self.preference = PreferenceModel.load(path)
        self._clip_by_task: dict[str, ClipReward] = {}
        self._clip_model = clip
        self.uses_clip = "clip" in used
        self.frame_mean = FrameMean(cfg.frame_mean) if "frame_mean" in used else None

    @classmethod
    def from_config(cls, run_cfg: RunConfig, store: Store | None = None,
                    run_id: int | None = None) -> RewardService:
        return cls(run_cfg.rewards, store=store, run_id=run_id)

    @staticmethod
    def _model_path(kind: str, configured, store: Store | None, run_id: int | None):
        if configured is not None:
            return configured
        if store is None:
            raise RewardModelError(f"reward source {kind}: no model_path configured and no "
                                   "store to look one up in")
        row = (run_id is not None and records.latest_ready(store, kind, run_id)) or \
            records.latest_ready(store, kind)
        if not row:
            raise RewardModelError(
                f"reward source {kind}: no ready {kind} model in the database; train one "
                f"(`robolearn reward train-classifier` / `robolearn prefs train`) or set "
                f"rewards.{kind}.model_path"
            )
        return store.data_dir / row.path

    def new_streak(self) -> SuccessStreak:
        """A success streak for one episode stream, with the configured success_frames."""
        return SuccessStreak(self.cfg.success_frames)

    def _clip(self, task: str) -> ClipReward:
        if self._clip_model is not None:
            return self._clip_model
        if task not in self._clip_by_task:
            self._clip_by_task[task] = ClipReward(self.cfg.clip, task)
        return self._clip_by_task[task]

    def score(
        self,
        frames: Mapping[str, np.ndarray],
        task: str,
        *,
        step_inputs: Mapping[str, np.ndarray] | None = None,
        sim_success: np.ndarray | None = None,
        streak: SuccessStreak | None = None,
    ) -> RewardOutput:
        """Reward of B steps.

        Args:
            frames: camera -> uint8 [B, H, W, 3], the observation each step led to.
            task: the task's text (CLIP's goal prompt unless rewards.clip.goal is set).
            step_inputs: the preference model's inputs by name, [B, ...] each (next
                observation arrays and the action); needed when preference is used.
            sim_success: [B] ground-truth success where the sim provides it.
            streak: the episode's success streak (`new_streak()`): the B steps are its
                next consecutive steps, and a step succeeds only once the sparse source
                was positive on `success_frames` steps in a row. None: each step alone.

        Raises:
            RewardModelError: an input a configured source needs is missing or malformed.
        """
        batch = _batch_size(frames, step_inputs, sim_success)
        values: dict[str, np.ndarray] = {}
        clip_prob = None
        if sim_success is not None:
            values["sim_success"] = np.asarray(sim_success, np.float32).reshape(batch)
        if self.classifier is not None:
            prob = self.classifier.predict(dict(frames))
            values["classifier_prob"] = prob.astype(np.float32)
            values["classifier"] = (prob >= self.classifier.threshold).astype(np.float32)
        if self.preference is not None:
            values["preference"] = self._preference(step_inputs, batch)
        if self.uses_clip:
            clip = self._clip(task)
            camera = self.cfg.clip.camera or next(iter(frames))
            if camera not in frames:
                raise RewardModelError(f"CLIP reward: no frames of camera {camera!r}")
            values["clip"], clip_prob = clip.score(frames[camera])
        if self.frame_mean is not None:
            values["frame_mean"] = self.frame_mean.score(dict(frames))

        success_prob = None
        if self.cfg.sparse == "none":
            success = np.zeros(batch, bool)
        elif self.cfg.sparse == "sim_success":
            if sim_success is None:
                raise RewardModelError("rewards.sparse is sim_success but no sim_success was "
                                       "given (a real robot needs sparse: classifier)")
            success = values["sim_success"] > 0.5
        elif self.cfg.sparse == "classifier":
            success, success_prob = values["classifier"] > 0.5, values["classifier_prob"]
        elif self.cfg.sparse == "clip":
            success, success_prob = values["clip"] > 0.5, clip_prob
        else:  # the preference model gives no success signal (the config refuses it)
            raise RewardModelError(f"rewards.sparse {self.cfg.sparse!r} cannot signal success")
        if streak is not None:
            # The raw verdict stays in `values` (logged); success is the debounced one.
            success = streak.update_batch(success)
        reward = success.astype(np.float32)
        for term in self.cfg.shaping:
            reward = reward + term.weight * values[term.source]
        return RewardOutput(reward.astype(np.float32), success, success_prob, values)

    def _preference(self, step_inputs: Mapping[str, np.ndarray] | None, batch: int) -> np.ndarray:
        assert self.preference is not None
        inputs = self.preference.cfg.inputs
        missing = [k for k in inputs if step_inputs is None or k not in step_inputs]
        if missing:
            raise RewardModelError(f"preference reward needs step_inputs {list(inputs)}, "
                                   f"missing {missing}")
        assert step_inputs is not None
        features = np.concatenate(
            [np.asarray(step_inputs[k], np.float32).reshape(batch, -1) for k in inputs], axis=1)
        return self.preference.rewards(features).astype(np.float32)


def _batch_size(frames: Mapping[str, np.ndarray], step_inputs: Mapping | None,
                sim_success: np.ndarray | None) -> int:
    sizes = {np.asarray(f).shape[0] for f in frames.values()}
    sizes |= {np.asarray(v).shape[0] for v in (step_inputs or {}).values()}
    if sim_success is not None:
        sizes.add(np.asarray(sim_success).reshape(-1).shape[0])
    if len(sizes) != 1:
        raise RewardModelError(f"RewardService.score: inputs disagree on the batch size {sizes}")
    return sizes.pop()
