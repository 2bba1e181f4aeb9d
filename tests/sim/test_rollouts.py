"""Scripted rollouts (robolearn.sim.rollouts) and their recording as stored episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robolearn.sim.rollouts import record_rollout, rollout
from robolearn.store import Store


def test_expert_rollout_is_recorded_with_the_sims_success(tmp_path: Path) -> None:
    r = rollout("pick_cube", 0, "expert", 20, cameras=(), render=False)
    assert r.action.shape[0] == 20 and r.proprio.shape[0] == r.state.shape[0] == 21
    assert r.outcome == "success" and r.success.any() and not r.success[0]
    assert r.frame_success.tolist() == [False, *r.success.tolist()]
    with Store.open(tmp_path / "data") as store:
        run_id = store.create_run("rollouts", {})
        data = store.load_episode(record_rollout(store, run_id, r))
    np.testing.assert_array_equal(data.arrays["success"], r.success)
    np.testing.assert_allclose(data.arrays["reward"], r.success.astype(np.float32))
    np.testing.assert_allclose(data.arrays["action"], r.action)
    assert data.record.outcome == "success"


def test_random_rollout_differs_by_seed_and_bad_policy_is_refused() -> None:
    a = rollout("pick_cube", 1, "random", 5, cameras=(), render=False)
    b = rollout("pick_cube", 2, "random", 5, cameras=(), render=False)
    assert a.outcome == "failure" and not np.allclose(a.action, b.action)
    with pytest.raises(ValueError, match="expected 'expert' or 'random'"):
        rollout("pick_cube", 0, "scripted", 5, render=False)  # type: ignore[arg-type]
