"""Choosing which segment pairs to ask people about, and storing them as pending queries.

Selection methods (after `warmup_labels` answers; uniform before, since an untrained
ensemble's disagreement is noise):

- uniform: random pairs.
- disagreement: of `candidates_per_query` random pairs per query, those where the
  ensemble members' P(a > b) varies most (standard deviation across members).
- entropy: those whose ensemble-mean P(a > b) is closest to 1/2 (highest entropy).

Segments come only from the run's training episodes (robolearn.rewards.preference_runs:
never evaluation or replay episodes, never a replay or import run), the newest
`recent_episodes` of them.

Example::

    ids = create_queries(store, run_id, 10, "disagreement", cfg=cfg.rewards.preference)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from robolearn.config.rewards import PreferenceConfig
from robolearn.errors import RewardModelError
from robolearn.rewards import records
from robolearn.rewards.preference import PreferenceModel
from robolearn.rewards.preference_runs import check_training_run, training_episodes
from robolearn.rewards.segments import FeatureCache, Segment, random_segments
from robolearn.store import Store, preferences

log = logging.getLogger(__name__)

SELECTIONS = ("uniform", "disagreement", "entropy")


def selection_scores(model: PreferenceModel, seg_a: np.ndarray, seg_b: np.ndarray,
                     selection: str) -> np.ndarray:
    """Informativeness of each candidate pair [N] (higher is asked first)."""
    probs = model.preference_probs(seg_a, seg_b)  # [M, N]
    if selection == "disagreement":
        return probs.std(0)
    if selection == "entropy":
        p = probs.mean(0).clip(1e-6, 1 - 1e-6)
        return -(p * np.log(p) + (1 - p) * np.log(1 - p))
    raise RewardModelError(f"unknown query selection {selection!r}; use one of {SELECTIONS}")


def select_pairs(candidates: Sequence[tuple[Segment, Segment]], n: int, selection: str,
                 model: PreferenceModel | None, cache: FeatureCache | None,
                 rng: np.random.Generator) -> list[tuple[Segment, Segment]]:
    """The n most informative candidates (uniform: n random ones)."""
    if selection not in SELECTIONS:
        raise RewardModelError(f"unknown query selection {selection!r}; use one of {SELECTIONS}")
    if selection == "uniform" or model is None or cache is None:
        picks = rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
        return [candidates[i] for i in picks.tolist()]
    seg_a = cache.segments([c[0] for c in candidates])
    seg_b = cache.segments([c[1] for c in candidates])
    scores = selection_scores(model, seg_a, seg_b, selection)
    best = np.argsort(-scores, kind="stable")[:n]
    return [candidates[i] for i in best.tolist()]


def candidate_pairs(lengths: dict[int, int], steps: int, n: int,
                    rng: np.random.Generator) -> list[tuple[Segment, Segment]]:
    """n random pairs of distinct segments (from different episodes when there are several)."""
    usable = [e for e, t in lengths.items() if t >= steps]
    pairs = []
    for _ in range(n * 20):
        if len(pairs) == n:
            break
        a, b = random_segments(lengths, steps, 2, rng)
        if a == b or (len(usable) > 1 and a.episode_id == b.episode_id):
            continue
        pairs.append((a, b))
    if not pairs:
        raise RewardModelError("cannot cut two distinct segments from the run's episodes; "
                               "record more episodes")
    return pairs


def count_answers(store: Store, run_id: int) -> int:
    """Answers of a run that count for training (not undone, not skipped)."""
    with store.session() as session:
        return preferences.count_answers(session, run_id)


def create_queries(store: Store, run_id: int, n: int, selection: str, *,
                   cfg: PreferenceConfig | None = None, model: PreferenceModel | None = None,
                   seed: int | None = None) -> list[int]:
    """Insert n pending preference queries for a run; returns their ids.

    Args:
        selection: "uniform", "disagreement" or "entropy" (uniform during the warm-up).
        cfg: segment length, warm-up, candidates and inputs (default PreferenceConfig()).
        model: the ensemble for active selection; None: the run's newest ready one.
        seed: seed of the random cuts (default cfg.seed + number of queries so far).

    Raises:
        RewardModelError: n < 1, unknown selection, a replay or import run, or no
            training episode long enough.
    """
    cfg = cfg or PreferenceConfig()
    if n < 1:
        raise RewardModelError(f"create_queries: n must be >= 1, got {n}")
    if selection not in SELECTIONS:
        raise RewardModelError(f"unknown query selection {selection!r}; use one of {SELECTIONS}")
    check_training_run(store, run_id)
    episodes = training_episodes(store, run_id, cfg.recent_episodes)
    lengths = {e.id: e.num_steps for e in episodes}
    with store.session() as session:
        asked = preferences.count_queries(session, run_id)
    rng = np.random.default_rng(cfg.seed + asked if seed is None else seed)
    active = selection != "uniform" and count_answers(store, run_id) >= cfg.warmup_labels
    if active and model is None:
        row = records.latest_ready(store, "preference", run_id)
        if row is not None:
            model = PreferenceModel.load(store.data_dir / row.path)
    if active and model is not None:
        candidates = candidate_pairs(lengths, cfg.segment_steps, n * cfg.candidates_per_query,
                                     rng)
        chosen = select_pairs(candidates, n, selection, model,
                              FeatureCache(store, model.cfg.inputs), rng)
    else:
        chosen = candidate_pairs(lengths, cfg.segment_steps, n, rng)
    with store.session() as session, session.begin():
        rows = preferences.add_queries(
            session, run_id, [((a.episode_id, a.start, a.end), (b.episode_id, b.start, b.end))
                              for a, b in chosen])
        ids = [r.id for r in rows]
    log.info("run %d: %d preference queries created (%s)", run_id, len(ids),
             selection if active and model is not None else "uniform")
    return ids
