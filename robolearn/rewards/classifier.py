"""Success classifier: frozen pretrained encoder per camera + a small trainable head.

The head follows the SERL/HIL-SERL reward classifier: per camera a 1x1 projection of the
encoder map, learned spatial embeddings (every channel is pooled with F learned weightings
over the spatial grid, so "where" survives the pooling), dropout, a linear layer with
LayerNorm; the cameras' embeddings are concatenated into an MLP with dropout and LayerNorm
that outputs one success logit.

Training is built for the CPU: the encoder is frozen, so the features of every training
frame (plus `augment_copies` randomly cropped copies) are computed once and cached; each
step draws a class-balanced batch of cached features. The decision threshold is chosen on
held-out EPISODES (neighbouring frames of one episode are near copies) as the one that
best separates the classes with a false-positive rate of at most `target_fpr`.

Example::

    report = train_classifier(store, cfg.rewards.classifier, run_id=run_id)
    clf = SuccessClassifier.load(store.data_dir / report.path)
    probs = clf.predict({"front": frames})          # [B] success probabilities
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import rankdata
from torch import nn

from robolearn.config.rewards import ClassifierConfig, ClipModelConfig
from robolearn.errors import RewardModelError
from robolearn.rewards import records
from robolearn.rewards.encoders import ImageEncoder, encode_frames, make_encoder
from robolearn.rewards.labels import LabelledFrames, gather_frames
from robolearn.store import Store

log = logging.getLogger(__name__)

FORMAT = 1
CAMERA_EMBED = 64  # per-camera embedding width after the spatial pooling
Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): stages "encode" (frames) and "train" (steps)."""


class PrecisionRecallCurve(BaseModel):
    """Held-out precision and recall at descending thresholds (one point per distinct score,
    thinned to at most PR_CURVE_POINTS), for the UI's curve with the threshold marked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: list[float] = Field(description="Success probability cut-offs, descending.")
    precision: list[float] = Field(description="Precision when predicting success at or above "
                                   "each threshold.")
    recall: list[float] = Field(description="Recall at each threshold (non-decreasing).")


class RocCurve(BaseModel):
    """Held-out ROC curve: false- and true-positive rates at descending thresholds, from
    (0, 0) (nothing admitted) to (1, 1), thinned like the precision-recall curve."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: list[float] = Field(description="Success probability cut-offs, descending "
                                    "(the first admits nothing).")
    fpr: list[float] = Field(description="False-positive rate at each threshold "
                             "(non-decreasing).")
    tpr: list[float] = Field(description="True-positive rate (recall) at each threshold.")


class ClassifierReport(BaseModel):
    """Held-out metrics of a trained classifier at its chosen threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_id: int = Field(description="reward_models row id.")
    path: str = Field(description="Model file, relative to the data directory.")
    version: int = Field(description="Version of the classifier kind.")
    accuracy: float = Field(description="Held-out accuracy at the threshold.")
    auroc: float = Field(description="Held-out area under the ROC curve.")
    precision: float = Field(description="Held-out precision at the threshold.")
    recall: float = Field(description="Held-out recall (true-positive rate) at the threshold.")
    threshold: float = Field(description="Success probability at or above which is success.")
    false_positive_rate: float = Field(description="Held-out FPR at the threshold.")
    n_pos: int = Field(description="Positive frames used (train + held out).")
    n_neg: int = Field(description="Negative frames used (train + held out).")
    n_holdout: int = Field(description="Held-out frames.")
    train_loss: float = Field(description="Mean loss over the last 10% of steps.")
    pr_curve: PrecisionRecallCurve = Field(description="Held-out precision-recall curve.")
    roc_curve: RocCurve | None = Field(None, description="Held-out ROC curve (None in reports "
                                       "written before it was stored).")
    target_fpr: float | None = Field(None, description="The false-positive rate the threshold "
                                     "was chosen for (rewards.classifier.target_fpr).")


class SpatialEmbedding(nn.Module):
    """[B, C, h, w] -> [B, C·F]: each channel pooled with F learned spatial weightings."""

    def __init__(self, channels: int, height: int, width: int, features: int) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(channels, height, width, features))
        nn.init.kaiming_normal_(self.kernel.view(channels, -1, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("bchw,chwf->bcf", x, self.kernel)  # [B, C, F]
        return out.flatten(1)  # [B, C·F]


class CameraHead(nn.Module):
    def __init__(self, feature_shape: tuple[int, int, int], cfg: ClassifierConfig) -> None:
        super().__init__()
        channels, height, width = feature_shape
        self.project = nn.Conv2d(channels, cfg.bottleneck, kernel_size=1)
        self.pool = SpatialEmbedding(cfg.bottleneck, height, width, cfg.spatial_features)
        self.out = nn.Sequential(
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.bottleneck * cfg.spatial_features, CAMERA_EMBED),
            nn.LayerNorm(CAMERA_EMBED),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.pool(self.project(x)))  # [B, CAMERA_EMBED]


class ClassifierHead(nn.Module):
    """Per-camera heads -> concatenated -> MLP -> one success logit per frame."""

    def __init__(self, num_cameras: int, feature_shape: tuple[int, int, int],
                 cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cameras = nn.ModuleList(CameraHead(feature_shape, cfg) for _ in range(num_cameras))
        self.mlp = nn.Sequential(
            nn.Linear(num_cameras * CAMERA_EMBED, cfg.hidden),
            nn.Dropout(cfg.dropout),
            nn.LayerNorm(cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, 1),
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """features: per camera [B, C, h, w] -> logits [B]."""
        embeds = [head(f) for head, f in zip(self.cameras, features, strict=True)]
        return self.mlp(torch.cat(embeds, dim=1)).squeeze(1)  # [B]


# ------------------------------------------------------------------------------ metrics
def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tie-averaged ranks)."""
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pick_threshold(probs: np.ndarray, labels: np.ndarray, target_fpr: float,
                   min_threshold: float = 0.0) -> float:
    """The threshold with the best TPR - FPR among those with FPR <= target_fpr, and at
    least `min_threshold`.

    Candidates are midpoints between neighbouring distinct scores (a margin on both sides),
    plus one above the highest score (FPR 0 always exists), plus `min_threshold` itself.
    The floor is there because the held-out negatives are the labelled ones, not the states
    a learning policy will visit: a threshold of 0.005 that is perfect on them calls success
    wherever the classifier is 99.5 % sure of failure.
    """
    values = np.unique(probs)
    candidates = np.concatenate([(values[:-1] + values[1:]) / 2, [np.nextafter(values[-1], 2)]])
    candidates = np.unique(np.append(candidates[candidates >= min_threshold], min_threshold))
    neg, pos = probs[~labels], probs[labels]
    fpr = (neg[None, :] >= candidates[:, None]).mean(1)
    tpr = (pos[None, :] >= candidates[:, None]).mean(1) if pos.size else np.zeros_like(fpr)
    feasible = fpr <= target_fpr + 1e-12
    score = np.where(feasible, tpr - fpr, -np.inf)
    # Separable classes tie over a whole range of thresholds: take the middle of the best
    # range rather than its edge, so the margin to both classes is as large as it can be.
    best = np.flatnonzero(score == score.max())
    return float(candidates[best[len(best) // 2]])


def binary_metrics(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = probs >= threshold
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    return {
        "accuracy": float((predicted == labels).mean()),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / n_pos if n_pos else 0.0,
        "false_positive_rate": fp / n_neg if n_neg else 0.0,
        "auroc": auroc(probs, labels),
    }


# Enough points for a smooth curve on screen, few enough to keep the metrics row small.
PR_CURVE_POINTS = 200


def precision_recall_curve(probs: np.ndarray, labels: np.ndarray, *,
                           threshold: float | None = None,
                           max_points: int = PR_CURVE_POINTS) -> PrecisionRecallCurve:
    """Precision and recall of "success if prob >= t" for every distinct score t, highest
    first; thinned evenly (first and last kept) when there are more than `max_points`. The
    operating point of `threshold` (its lowest admitted score) survives the thinning, so the
    curve passes through the report's precision and recall."""
    order = np.argsort(-probs, kind="stable")
    sorted_probs, sorted_labels = probs[order], labels[order]
    tp = np.cumsum(sorted_labels)  # [N]: positives among the k+1 highest scores
    predicted = np.arange(1, sorted_probs.size + 1)
    # The last index of each run of equal scores: a threshold admits every tie at once.
    last = np.flatnonzero(np.append(sorted_probs[1:] != sorted_probs[:-1], True))
    if last.size > max_points:
        kept = last[np.unique(np.linspace(0, last.size - 1, max_points).round().astype(int))]
        admitted = last[sorted_probs[last] >= threshold] if threshold is not None else last[:0]
        last = np.union1d(kept, admitted[-1:])
    n_pos = int(labels.sum())
    return PrecisionRecallCurve(
        thresholds=sorted_probs[last].astype(float).tolist(),
        precision=(tp[last] / predicted[last]).astype(float).tolist(),
        recall=(tp[last] / n_pos if n_pos else np.zeros(last.size)).astype(float).tolist(),
    )


def roc_curve(probs: np.ndarray, labels: np.ndarray, *, threshold: float | None = None,
              max_points: int = PR_CURVE_POINTS) -> RocCurve:
    """FPR and TPR of "success if prob >= t" for every distinct score t, highest first, after
    a first point that admits nothing; thinned like `precision_recall_curve`, keeping the
    operating point of `threshold`."""
    order = np.argsort(-probs, kind="stable")
    sorted_probs, sorted_labels = probs[order], labels[order]
    tp = np.cumsum(sorted_labels)  # [N]: positives among the k+1 highest scores
    fp = np.cumsum(~sorted_labels)  # [N]: negatives among them
    last = np.flatnonzero(np.append(sorted_probs[1:] != sorted_probs[:-1], True))
    if last.size > max_points:
        kept = last[np.unique(np.linspace(0, last.size - 1, max_points).round().astype(int))]
        admitted = last[sorted_probs[last] >= threshold] if threshold is not None else last[:0]
        last = np.union1d(kept, admitted[-1:])
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    tpr = tp[last] / n_pos if n_pos else np.zeros(last.size)
    fpr = fp[last] / n_neg if n_neg else np.zeros(last.size)
    top = float(np.nextafter(sorted_probs[0], 2)) if probs.size else 1.0
    return RocCurve(thresholds=[top, *sorted_probs[last].astype(float).tolist()],
                    fpr=[0.0, *np.asarray(fpr, float).tolist()],
                    tpr=[0.0, *np.asarray(tpr, float).tolist()])


# ------------------------------------------------------------------------------ training
def split_episodes(data: LabelledFrames, fraction: float, seed: int) -> np.ndarray:
    """Boolean [N] mask of held-out frames: whole episodes, both classes on both sides.

    Raises:
        RewardModelError: too few episodes to hold some out with both classes each side.
    """
    episodes = np.unique(data.episode_ids)
    n_hold = max(1, round(fraction * episodes.size))
    rng = np.random.default_rng(seed)
    for _ in range(50):
        held = rng.permutation(episodes)[:n_hold]
        mask = np.isin(data.episode_ids, held)
        if all(np.any(data.labels[m]) and np.any(~data.labels[m]) for m in (mask, ~mask)):
            return mask
    raise RewardModelError(
        f"classifier training data: {episodes.size} episodes cannot be split into a training "
        f"and a held-out part ({fraction:.0%} of episodes) that both contain success and "
        "failure frames; label more episodes"
    )


def _encode_cameras(encoder: ImageEncoder, data: LabelledFrames, crop_pad: int,
                    generator: torch.Generator | None, progress: Progress | None,
                    done: list[int], total: int) -> list[torch.Tensor]:
    out = []
    for camera in data.cameras:
        frames = data.frames[camera]
        parts = []
        for start in range(0, len(frames), 64):
            parts.append(encode_frames(encoder, frames[start : start + 64], crop_pad=crop_pad,
                                       generator=generator))
            done[0] += min(64, len(frames) - start)
            if progress is not None:
                progress("encode", done[0], total)
        out.append(torch.cat(parts))  # [N, C, h, w]
    return out


def _predict(head: ClassifierHead, features: list[torch.Tensor]) -> np.ndarray:
    head.eval()
    with torch.inference_mode():
        logits = torch.cat([
            head([f[i : i + 256] for f in features])
            for i in range(0, features[0].shape[0], 256)
        ])
    return torch.sigmoid(logits).numpy()


def _fit(head: ClassifierHead, copies: list[list[torch.Tensor]], labels: np.ndarray,
         cfg: ClassifierConfig, progress: Progress | None) -> float:
    """Class-balanced minibatch training on cached features; returns the final loss."""
    gen = torch.Generator().manual_seed(cfg.seed)
    pos = torch.from_numpy(np.flatnonzero(labels))
    neg = torch.from_numpy(np.flatnonzero(~labels))
    target = torch.cat([torch.ones(cfg.batch_size // 2), torch.zeros(cfg.batch_size // 2)])
    optimiser = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # Per camera [K+1, N, C, h, w]: copy k of frame i is stacked[v][k, i].
    stacked = [torch.stack([c[v] for c in copies]) for v in range(len(copies[0]))]
    losses = []
    head.train()
    for step in range(cfg.steps):
        half = cfg.batch_size // 2
        index = torch.cat([pos[torch.randint(0, pos.numel(), (half,), generator=gen)],
                           neg[torch.randint(0, neg.numel(), (half,), generator=gen)]])
        # Each row takes one of the cached copies (copy 0 uncropped, the rest random crops).
        copy = torch.randint(0, len(copies), (index.numel(),), generator=gen)
        features = [cached[copy, index] for cached in stacked]  # per camera [B, C, h, w]
        loss = nn.functional.binary_cross_entropy_with_logits(head(features), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.detach())
        if progress is not None and (step + 1) % 10 == 0:
            progress("train", step + 1, cfg.steps)
    tail = losses[-max(1, len(losses) // 10):]
    return float(torch.stack(tail).mean())


def train_classifier(
    store: Store,
    cfg: ClassifierConfig,
    *,
    run_id: int | None = None,
    progress: Progress | None = None,
    encoder: ImageEncoder | None = None,
) -> ClassifierReport:
    """Train a success classifier on the store's labelled frames; save it and its report.

    Args:
        run_id: only this run's episodes (and the model row points at it); None: all runs.
        progress: called as progress(stage, done, total) during encoding and training.
        encoder: an already built frozen encoder of `cfg.encoder` (saves loading it again).

    Returns:
        The held-out report; the model file is `store.data_dir / report.path`.

    Raises:
        RewardModelError: bad or insufficient labels (nothing is written), or training
            failed (the reward_models row is marked failed with the error).
    """
    data = gather_frames(store, cfg, run_id)
    holdout = split_episodes(data, cfg.holdout_fraction, cfg.seed)
    if encoder is None:
        encoder = make_encoder(cfg.encoder, cfg.image_size, cfg.clip)
    record = records.begin_model(store, "classifier", run_id)
    try:
        report, payload = _train(data, holdout, cfg, encoder, record, progress)
        records.save_atomic(payload, store.data_dir / record.path)
    except Exception as exc:
        records.finish_model(store, record.id, "failed", error=f"{type(exc).__name__}: {exc}")
        if isinstance(exc, RewardModelError):
            raise
        raise RewardModelError(f"classifier v{record.version}: training failed ({exc})") from exc
    records.finish_model(store, record.id, "ready", metrics=report.model_dump())
    log.info("classifier v%d: accuracy %.3f, AUROC %.3f, threshold %.3f (held-out FPR %.3f)",
             record.version, report.accuracy, report.auroc, report.threshold,
             report.false_positive_rate)
    return report


def _train(data: LabelledFrames, holdout: np.ndarray, cfg: ClassifierConfig,
           encoder: ImageEncoder, record: records.RewardModelRecord,
           progress: Progress | None) -> tuple[ClassifierReport, dict[str, Any]]:
    torch.manual_seed(cfg.seed)
    train, held = data.subset(~holdout), data.subset(holdout)
    copies_n = cfg.augment_copies if cfg.crop_pad_px else 0
    total = (len(train) * (1 + copies_n) + len(held)) * len(data.cameras)
    done = [0]
    gen = torch.Generator().manual_seed(cfg.seed)
    copies = [_encode_cameras(encoder, train, 0, None, progress, done, total)]
    for _ in range(copies_n):
        copies.append(_encode_cameras(encoder, train, cfg.crop_pad_px, gen, progress, done,
                                      total))
    held_features = _encode_cameras(encoder, held, 0, None, progress, done, total)
    feature_shape = tuple(copies[0][0].shape[1:])
    head = ClassifierHead(len(data.cameras), feature_shape, cfg)
    train_loss = _fit(head, copies, train.labels, cfg, progress)
    if not math.isfinite(train_loss):
        raise RewardModelError(f"classifier v{record.version}: loss diverged ({train_loss}); "
                               "lower rewards.classifier.lr")
    probs = _predict(head, held_features)
    threshold = pick_threshold(probs, held.labels, cfg.target_fpr, cfg.min_threshold)
    metrics = binary_metrics(probs, held.labels, threshold)
    report = ClassifierReport(
        model_id=record.id, path=record.path, version=record.version, threshold=threshold,
        n_pos=data.n_pos, n_neg=data.n_neg, n_holdout=len(held), train_loss=train_loss,
        pr_curve=precision_recall_curve(probs, held.labels, threshold=threshold),
        roc_curve=roc_curve(probs, held.labels, threshold=threshold),
        target_fpr=cfg.target_fpr, **metrics,
    )
    payload = {
        "kind": "classifier",
        "format": FORMAT,
        "config": cfg.model_dump(mode="json"),
        "cameras": list(data.cameras),
        "encoder": encoder.name,
        "input_size": encoder.input_size,
        "feature_shape": list(feature_shape),
        "head": head.state_dict(),
        "threshold": threshold,
        "report": report.model_dump(),
    }
    return report, payload


# ------------------------------------------------------------------------------ inference
class SuccessClassifier:
    """A trained classifier ready for batched inference (encoder + head, eval mode)."""

    def __init__(self, payload: dict[str, Any], encoder: ImageEncoder | None = None,
                 source: str = "<memory>") -> None:
        if payload.get("format") != FORMAT:
            raise RewardModelError(f"classifier {source}: format {payload.get('format')!r}, "
                                   f"this robolearn reads {FORMAT}; retrain it")
        self.cfg = ClassifierConfig.model_validate(payload["config"])
        self.cameras = tuple(payload["cameras"])
        self.threshold = float(payload["threshold"])
        self.report = dict(payload["report"])
        self.encoder = encoder or make_encoder(payload["encoder"], int(payload["input_size"]),
                                               self.cfg.clip)
        feature_shape = tuple(int(v) for v in payload["feature_shape"])
        self.head = ClassifierHead(len(self.cameras), feature_shape, self.cfg)
        try:
            self.head.load_state_dict(payload["head"])
        except (RuntimeError, KeyError) as exc:
            raise RewardModelError(f"classifier {source}: weights do not fit its head ({exc}); "
                                   "the file is corrupt, retrain it") from exc
        self.head.eval()

    @classmethod
    def load(cls, path: Path, encoder: ImageEncoder | None = None) -> SuccessClassifier:
        """Raises RewardModelError: missing or corrupt file."""
        return cls(records.load_payload(Path(path), "classifier"), encoder, str(path))

    def predict(self, frames: dict[str, np.ndarray]) -> np.ndarray:
        """Success probabilities [B] for uint8 [B, H, W, 3] frames of every classifier camera.

        Raises:
            RewardModelError: a camera missing, or frames that are not uint8 RGB batches.
        """
        missing = [c for c in self.cameras if c not in frames]
        if missing:
            raise RewardModelError(f"classifier: frames lack cameras {missing}; it was trained "
                                   f"on {list(self.cameras)}")
        sizes = {np.asarray(frames[c]).shape[0] for c in self.cameras}
        if len(sizes) != 1:
            raise RewardModelError(f"classifier: cameras have different batch sizes {sizes}")
        # One encoder call for every camera's frames (the control loop's batch is B x V).
        sizes = {np.asarray(frames[c]).shape[1:] for c in self.cameras}
        if len(sizes) == 1:
            batch = np.concatenate([np.asarray(frames[c]) for c in self.cameras])
            features = list(encode_frames(self.encoder, batch).chunk(len(self.cameras)))
        else:
            features = [encode_frames(self.encoder, frames[c]) for c in self.cameras]
        return _predict(self.head, features)


def load_encoder_for(cfg: ClassifierConfig, clip: ClipModelConfig | None = None) -> ImageEncoder:
    """The frozen encoder a classifier config names (shared by training and inference)."""
    return make_encoder(cfg.encoder, cfg.image_size, clip or cfg.clip)
