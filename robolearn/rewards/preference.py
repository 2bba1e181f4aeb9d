"""Preference reward model: an ensemble of Bradley-Terry reward networks on segment returns.

Each member r_m maps one step's features to a reward; a segment's return is the sum over
its steps. The probability that segment a is preferred to b is

    P(a > b) = eps / 2 + (1 - eps) * sigmoid(R_a - R_b)

where eps is the chance that a teacher answers at random (label noise). The loss is the
cross-entropy against the answer: left = 1, right = 0, equal = 0.5; skipped pairs carry no
information and are dropped. Member m trains on its own bootstrap resample of the answered
pairs, so the members' disagreement measures the model's uncertainty (used to pick the next
queries). The reward of a step is the members' mean.

Agreement with people is measured on held-out answers: the answers to a fixed share of
queries (`holdout_fraction`, chosen by hashing the query id, so a query stays on its side
for every version) never reach training, and each version reports how often its ensemble
prefers the segment the person chose (strict answers; "equal" has no side).

Example::

    report = train_preference(store, cfg.rewards.preference, run_id=run_id)
    model = PreferenceModel.load(store.data_dir / report.path)
    relabel_replay(online_buffer, model)
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from robolearn.config.rewards import PreferenceConfig
from robolearn.errors import RewardModelError
from robolearn.rewards import records
from robolearn.rewards.segments import FeatureCache, Segment
from robolearn.store import Store, preferences

log = logging.getLogger(__name__)

FORMAT = 1
ANSWER_TARGETS = {"left": 1.0, "right": 0.0, "equal": 0.5}
Progress = Callable[[str, int, int], None]


class PreferenceReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_id: int = Field(description="reward_models row id.")
    path: str = Field(description="Model file, relative to the data directory.")
    version: int = Field(description="Version of the preference kind.")
    n_labels: int = Field(description="Answered pairs used (skips excluded).")
    n_equal: int = Field(description="Of which answered 'equal'.")
    n_skipped: int = Field(description="Skipped answers dropped.")
    train_accuracy: float = Field(description="Ensemble agreement with the strict answers.")
    train_loss: float = Field(description="Mean final loss over the members.")
    n_answers: int = Field(0, description="Live answers of the run when training started "
                           "(skips excluded): the retraining schedule counts from here.")
    n_holdout: int = Field(0, description="Held-out strict answers the agreement is measured "
                           "on (not trained on).")
    holdout_agreement: float | None = Field(
        None, description="Share of held-out strict answers whose preferred segment the "
        "ensemble also prefers; None without held-out answers.")


def bradley_terry_loss(return_a: torch.Tensor, return_b: torch.Tensor, target: torch.Tensor,
                       label_noise: float) -> torch.Tensor:
    """Cross-entropy of P(a > b) = eps/2 + (1-eps) sigmoid(R_a - R_b) against targets in
    {0, 0.5, 1}; mean over the batch (any leading shape)."""
    p = label_noise / 2 + (1 - label_noise) * torch.sigmoid(return_a - return_b)
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(target * torch.log(p) + (1 - target) * torch.log1p(-p)).mean()


class RewardEnsemble(nn.Module):
    """M reward MLPs evaluated together: features [..., F] -> rewards [M, ...]."""

    def __init__(self, num_features: int, members: int, hidden: int) -> None:
        super().__init__()
        self.members = members
        # Batched weights [M, in, out]: one einsum evaluates every member at once.
        dims = [num_features, hidden, hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(dims):
            w = torch.empty(members, fan_in, fan_out)
            for m in range(members):
                nn.init.kaiming_uniform_(w[m].T, a=math.sqrt(5))
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(members, 1, fan_out)))
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        lead = features.shape[:-1]
        x = ((features - self.mean) / self.std).reshape(1, -1, features.shape[-1])  # [1, N, F]
        x = x.expand(self.members, -1, -1)  # [M, N, F]
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)  # [M, N, out]
            if i < len(self.weights) - 1:
                x = torch.nn.functional.leaky_relu(x)
        return x.squeeze(-1).reshape(self.members, *lead)  # [M, ...]

    def returns(self, segments: torch.Tensor) -> torch.Tensor:
        """[B, L, F] -> per-member segment returns [M, B]."""
        return self(segments).sum(-1)


class PreferenceModel:
    """A trained ensemble with its input settings, for rewards and query selection."""

    def __init__(self, cfg: PreferenceConfig, net: RewardEnsemble) -> None:
        self.cfg = cfg
        self.net = net.eval()

    @classmethod
    def from_payload(cls, payload: dict[str, Any], source: str = "<memory>") -> PreferenceModel:
        if payload.get("format") != FORMAT:
            raise RewardModelError(f"preference model {source}: format {payload.get('format')!r}"
                                   f", this robolearn reads {FORMAT}; retrain it")
        cfg = PreferenceConfig.model_validate(payload["config"])
        net = RewardEnsemble(int(payload["num_features"]), cfg.ensemble, cfg.hidden)
        try:
            net.load_state_dict(payload["net"])
        except (RuntimeError, KeyError) as exc:
            raise RewardModelError(f"preference model {source}: weights do not fit ({exc}); "
                                   "the file is corrupt, retrain it") from exc
        return cls(cfg, net)

    @classmethod
    def load(cls, path: Path) -> PreferenceModel:
        """Raises RewardModelError: missing or corrupt file."""
        return cls.from_payload(records.load_payload(Path(path), "preference"), str(path))

    @property
    def num_features(self) -> int:
        return int(self.net.mean.shape[0])

    def rewards(self, features: np.ndarray) -> np.ndarray:
        """Ensemble-mean reward of steps: [..., F] -> [...] float32."""
        array = np.asarray(features, np.float32)
        if array.shape[-1] != self.num_features:
            raise RewardModelError(
                f"preference model: steps have {array.shape[-1]} features, the model was "
                f"trained on {self.num_features} ({list(self.cfg.inputs)})"
            )
        with torch.inference_mode():
            return self.net(torch.from_numpy(array)).mean(0).numpy()

    def preference_probs(self, seg_a: np.ndarray, seg_b: np.ndarray) -> np.ndarray:
        """Per-member P(a > b) without label noise: [N, L, F] x2 -> [M, N]."""
        with torch.inference_mode():
            diff = (self.net.returns(torch.from_numpy(np.asarray(seg_a, np.float32)))
                    - self.net.returns(torch.from_numpy(np.asarray(seg_b, np.float32))))
            return torch.sigmoid(diff).numpy()


# ------------------------------------------------------------------------------ answers
class AnsweredPair(NamedTuple):
    a: Segment
    b: Segment
    target: float
    query_id: int


def is_held_out(query_id: int, fraction: float) -> bool:
    """Whether a query's answers are held out (a fixed pseudo-random share of query ids)."""
    # Knuth's multiplicative hash spreads consecutive ids; stable across versions and runs.
    return (query_id * 2654435761) % 2**32 < fraction * 2**32


def answered_pairs(store: Store, run_id: int) -> tuple[list[AnsweredPair], int]:
    """Answered queries of a run as (segment a, segment b, target, query id); plus the skip
    count.

    Every answer that is not undone counts (two users answering one query give two
    labels); "skip" answers are dropped.
    """
    pairs, skipped = [], 0
    with store.session() as session:
        for q, answer in preferences.live_answers(session, run_id):
            if answer not in ANSWER_TARGETS:
                skipped += 1
                continue
            pairs.append(AnsweredPair(
                Segment(q.episode_a_id, q.episode_a_start, q.episode_a_end),
                Segment(q.episode_b_id, q.episode_b_start, q.episode_b_end),
                ANSWER_TARGETS[answer], q.id,
            ))
    return pairs, skipped


# ------------------------------------------------------------------------------ training
def fit_ensemble(seg_a: np.ndarray, seg_b: np.ndarray, target: np.ndarray,
                 cfg: PreferenceConfig, progress: Progress | None = None,
                 ) -> tuple[RewardEnsemble, float]:
    """Train a fresh ensemble on pairs [N, L, F] x2 with targets [N]; returns (net, loss)."""
    n, _, f = seg_a.shape
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    net = RewardEnsemble(f, cfg.ensemble, cfg.hidden)
    steps_all = np.concatenate([seg_a.reshape(-1, f), seg_b.reshape(-1, f)])
    net.mean.copy_(torch.from_numpy(steps_all.mean(0)))
    net.std.copy_(torch.from_numpy(steps_all.std(0) + 1e-3))  # constant inputs stay finite
    a, b = torch.from_numpy(seg_a), torch.from_numpy(seg_b)
    y = torch.from_numpy(target.astype(np.float32))
    # Bootstrap: member m sees the pairs boot[m] (drawn with replacement).
    boot = torch.randint(0, n, (cfg.ensemble, n), generator=gen)  # [M, N]
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    batch = min(cfg.batch_size, n)
    losses = []
    net.train()
    for step in range(cfg.steps):
        pick = boot.gather(1, torch.randint(0, n, (cfg.ensemble, batch), generator=gen))  # [M, b]
        # Every member scores every picked pair; each member's loss keeps only its own.
        rows = pick.reshape(-1)  # [M·b]
        ret_a = net.returns(a[rows]).view(cfg.ensemble, cfg.ensemble, batch)  # [M, M, b]
        ret_b = net.returns(b[rows]).view(cfg.ensemble, cfg.ensemble, batch)
        own = torch.arange(cfg.ensemble)
        loss = bradley_terry_loss(ret_a[own, own], ret_b[own, own], y[pick], cfg.label_noise)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.detach())
        if progress is not None and (step + 1) % 25 == 0:
            progress("train", step + 1, cfg.steps)
    tail = losses[-max(1, len(losses) // 10):]
    return net.eval(), float(torch.stack(tail).mean())


def split_holdout(pairs: list[AnsweredPair], fraction: float,
                  ) -> tuple[list[AnsweredPair], list[AnsweredPair]]:
    """(training pairs, held-out pairs); everything trains when nothing would be left."""
    held = [p for p in pairs if is_held_out(p.query_id, fraction)]
    train = [p for p in pairs if not is_held_out(p.query_id, fraction)]
    return (train, held) if train else (pairs, [])


def agreement(model: PreferenceModel, cache: FeatureCache, pairs: list[AnsweredPair],
              ) -> tuple[float | None, int]:
    """(share of strict answers the ensemble agrees with, how many); (None, 0) if none."""
    strict = [p for p in pairs if p.target != 0.5]
    if not strict:
        return None, 0
    probs = model.preference_probs(cache.segments([p.a for p in strict]),
                                   cache.segments([p.b for p in strict])).mean(0)  # [N]
    target = np.array([p.target for p in strict])
    return float(((probs > 0.5) == (target > 0.5)).mean()), len(strict)


def train_preference(store: Store, cfg: PreferenceConfig, *, run_id: int,
                     progress: Progress | None = None) -> PreferenceReport:
    """Train the ensemble on a run's answered queries (but the held-out ones); save it,
    register it, and report its agreement with the held-out answers.

    Raises:
        RewardModelError: no usable answers or unreadable episodes (nothing written), or
            training failed (its reward_models row is marked failed).
    """
    pairs, skipped = answered_pairs(store, run_id)
    if not pairs:
        raise RewardModelError(
            f"run {run_id}: no answered preference queries (skips excluded: {skipped}); answer "
            "some in the UI or with `robolearn prefs simulate`"
        )
    train, held = split_holdout(pairs, cfg.holdout_fraction)
    cache = FeatureCache(store, cfg.inputs)
    seg_a = cache.segments([p.a for p in train])
    seg_b = cache.segments([p.b for p in train])
    target = np.array([p.target for p in train], np.float32)
    record = records.begin_model(store, "preference", run_id)
    try:
        net, loss = fit_ensemble(seg_a, seg_b, target, cfg, progress)
        model = PreferenceModel(cfg, net)
        probs = model.preference_probs(seg_a, seg_b).mean(0)
        strict = target != 0.5
        accuracy = float(((probs > 0.5) == (target > 0.5))[strict].mean()) if strict.any() else 1.0
        held_agreement, n_held = agreement(model, cache, held)
        report = PreferenceReport(
            model_id=record.id, path=record.path, version=record.version, n_labels=len(train),
            n_equal=int((~strict).sum()), n_skipped=skipped, train_accuracy=accuracy,
            train_loss=loss, n_answers=len(pairs), n_holdout=n_held,
            holdout_agreement=held_agreement,
        )
        payload = {"kind": "preference", "format": FORMAT, "config": cfg.model_dump(mode="json"),
                   "num_features": seg_a.shape[-1], "net": net.state_dict(),
                   "report": report.model_dump()}
        records.save_atomic(payload, store.data_dir / record.path)
    except Exception as exc:
        records.finish_model(store, record.id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise RewardModelError(f"preference v{record.version}: training failed ({exc})") from exc
    records.finish_model(store, record.id, "ready", metrics=report.model_dump())
    log.info("preference v%d: %d labels, train accuracy %.3f, held-out agreement %s (%d)",
             record.version, len(train), report.train_accuracy, held_agreement, n_held)
    return report


# ------------------------------------------------------------------------------ replay
def relabel_replay(buffer: Any, model: PreferenceModel, *, success_reward: float = 1.0,
                   weight: float = 1.0) -> int:
    """Rewrite every stored reward of a ReplayBuffer: success + weight * preference reward.

    The buffer's low-dim observation (see `robolearn.learn.observation.low_dim_of`) offers
    the proprioception, and for a state-based agent the state; with the action these must be
    exactly the model's inputs. The success part is kept from the buffer's terminal flags (a
    successful step ends its episode), so relabelling never loses the sparse signal.

    Returns:
        How many transitions were relabelled.

    Raises:
        RewardModelError: the model's inputs are not available from the buffer.
    """
    spec = buffer.obs_spec
    expected = ("proprio", "action") if spec.pixels else ("proprio", "state", "action")
    if tuple(model.cfg.inputs) != expected:
        raise RewardModelError(
            f"relabel: the model reads {list(model.cfg.inputs)} but the buffer offers "
            f"{list(expected)} (its low-dim observation, then the action); train the model "
            f"with rewards.preference.inputs: {list(expected)}"
        )
    width = spec.low_dim - 3 * spec.ee_offsets  # the offsets come last and are not inputs

    def reward_fn(next_low_dim: np.ndarray, action: np.ndarray,
                  terminated: np.ndarray) -> np.ndarray:
        features = np.concatenate([next_low_dim[:, :width], action], axis=1)
        return success_reward * terminated + weight * model.rewards(features)

    return buffer.relabel_rewards(reward_fn)
