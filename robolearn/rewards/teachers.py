"""Simulated preference teachers that answer from the sim's true returns (tests, benchmarks).

True returns come from a dense ground-truth reward computed from the stored world state
(`state`, needs episodes recorded with actor.observe_state) and proprioception, per task.
The teachers follow the B-Pref catalogue:

- oracle: prefers the higher true return; "equal" only on an exact tie.
- mistake: the oracle, with its answer flipped with probability `eps`.
- noisy: Boltzmann-rational, P(left) = sigmoid(beta * (R_a - R_b)).
- equal: says "equal" when the returns differ by less than `equal_margin` of the larger
  absolute return, otherwise the oracle's answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from robolearn.errors import RewardModelError
from robolearn.rewards.segments import Segment
from robolearn.store import EpisodeData, Store, preferences

log = logging.getLogger(__name__)

TEACHERS = ("oracle", "mistake", "noisy", "equal")
_CUBE_REST_Z_M = 0.02


def _pick_cube(proprio: np.ndarray, state: np.ndarray) -> np.ndarray:
    ee, cube = proprio[:, :3], state[:, :3]
    reach = -np.linalg.norm(ee - cube, axis=1)
    lift = np.clip(cube[:, 2] - _CUBE_REST_Z_M, 0.0, 0.2)
    return reach + 10.0 * lift


def _reach(proprio: np.ndarray, state: np.ndarray) -> np.ndarray:
    return -np.linalg.norm(proprio[:, :3] - state[:, :3], axis=1)


def _push_cube(proprio: np.ndarray, state: np.ndarray) -> np.ndarray:
    ee, cube, goal = proprio[:, :3], state[:, :3], state[:, 3:6]
    return -2.0 * np.linalg.norm((cube - goal)[:, :2], axis=1) - np.linalg.norm(ee - cube, axis=1)


DENSE_REWARDS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "pick_cube": _pick_cube,
    "reach": _reach,
    "push_cube": _push_cube,
}


def true_step_rewards(data: EpisodeData) -> np.ndarray:
    """[T] dense ground-truth reward of each step (judged on the observation it led to).

    Raises:
        RewardModelError: the task has no dense ground truth or the episode lacks `state`.
    """
    task = data.record.task
    if task not in DENSE_REWARDS:
        raise RewardModelError(f"simulated teacher: no ground-truth return for task {task!r}; "
                               f"available for {sorted(DENSE_REWARDS)}")
    if "state" not in data.arrays:
        raise RewardModelError(f"simulated teacher: episode {data.record.id} has no world state; "
                               "record it with actor.observe_state: true")
    proprio, state = data.arrays["proprio"][1:], data.arrays["state"][1:]
    return DENSE_REWARDS[task](proprio, state).astype(np.float32)


class TrueReturns:
    """Segment returns under the ground truth, episodes loaded once each."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._rewards: dict[int, np.ndarray] = {}

    def step_rewards(self, episode_id: int) -> np.ndarray:
        if episode_id not in self._rewards:
            self._rewards[episode_id] = true_step_rewards(self.store.load_episode(episode_id))
        return self._rewards[episode_id]

    def segment(self, s: Segment) -> float:
        return float(self.step_rewards(s.episode_id)[s.start : s.end + 1].sum())


def answer(teacher: str, return_a: float, return_b: float, rng: np.random.Generator, *,
           eps: float = 0.1, beta: float = 1.0, equal_margin: float = 0.1) -> str:
    """One simulated answer: "left" (a better), "right" or "equal"."""
    if teacher not in TEACHERS:
        raise RewardModelError(f"unknown teacher {teacher!r}; use one of {TEACHERS}")
    if teacher == "noisy":
        p_left = 1.0 / (1.0 + np.exp(-beta * (return_a - return_b)))
        return "left" if rng.random() < p_left else "right"
    if teacher == "equal" and abs(return_a - return_b) < equal_margin * max(
        abs(return_a), abs(return_b), 1e-9
    ):
        return "equal"
    if return_a == return_b:
        return "equal"
    best = "left" if return_a > return_b else "right"
    if teacher == "mistake" and rng.random() < eps:
        return "right" if best == "left" else "left"
    return best


def answer_pending(store: Store, run_id: int, teacher: str, n: int, *, seed: int = 0,
                   eps: float = 0.1, beta: float = 1.0, equal_margin: float = 0.1) -> int:
    """Answer up to n pending queries of a run, oldest first; returns how many."""
    rng = np.random.default_rng(seed)
    returns = TrueReturns(store)
    with store.session() as session, session.begin():
        queries = preferences.pending_queries(session, run_id, n)
        for q in queries:
            ra = returns.segment(Segment(q.episode_a_id, q.episode_a_start, q.episode_a_end))
            rb = returns.segment(Segment(q.episode_b_id, q.episode_b_start, q.episode_b_end))
            preferences.record_answer(session, q, answer(teacher, ra, rb, rng, eps=eps,
                                                         beta=beta, equal_margin=equal_margin))
    log.info("run %d: %s teacher answered %d queries", run_id, teacher, len(queries))
    return len(queries)
