"""The agent's low-dim observation: proprio, state, and object offsets from the end effector."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.config import RunConfig
from robolearn.envs.spaces import STATE_DIMS
from robolearn.hardware.sim.driver import object_state
from robolearn.learn.observation import FrameStacker, low_dim_of, obs_spec_for
from robolearn.sim import PandaSim


def _state_spec(task: str, reset_free: bool = False):
    return obs_spec_for(RunConfig(
        name="x", robot={"task": task}, actor={"observe_state": True},
        learner={"observation": "state", "cqn": {"frame_stack": 1}},
        reset_free={"enabled": reset_free}))


@pytest.mark.parametrize("task", sorted(STATE_DIMS))
def test_low_dim_of_a_sim_state_has_the_specs_width_and_true_offsets(task: str) -> None:
    sim = PandaSim(task, render=False)
    sim.reset(seed=3)
    spec = _state_spec(task)
    proprio, state = sim.proprio(), object_state(sim)
    low = low_dim_of(spec, proprio, state)
    assert low.shape == (spec.low_dim,) and low.dtype == np.float32
    assert np.array_equal(low[:8 + len(state)], np.concatenate([proprio, state]).astype(np.float32))
    positions = sim.object_positions()
    ee = sim.state().ee_pos_m
    expected = np.concatenate([positions[k] - ee for k in sorted(positions)])
    np.testing.assert_allclose(low[8 + len(state):], expected, atol=1e-5)


def test_the_direction_suffix_is_not_taken_for_an_object() -> None:
    spec = _state_spec("drawer_open", reset_free=True)
    proprio = np.array([0.1, 0.2, 0.3, 1, 0, 0, 0, 0.04], np.float32)
    objects = np.array([0.5, 0.0, 0.1, 0.6, 0.1, 0.2], np.float32)
    state = np.concatenate([objects, [1.0, 0.0]]).astype(np.float32)
    low = low_dim_of(spec, proprio, state)
    assert low.shape == (spec.low_dim,)
    np.testing.assert_allclose(low[-6:], [0.4, -0.2, -0.2, 0.5, -0.1, -0.1], atol=1e-6)
    np.testing.assert_array_equal(low[8:16], state)


def test_stacked_rows_match_single_rows_and_a_short_state_is_refused() -> None:
    spec = _state_spec("bin_a_to_b")
    rng = np.random.default_rng(0)
    proprio = rng.normal(size=(5, 8)).astype(np.float32)
    state = rng.normal(size=(5, 9)).astype(np.float32)
    rows = low_dim_of(spec, proprio, state)
    assert rows.shape == (5, spec.low_dim)
    for t in range(5):
        np.testing.assert_array_equal(rows[t], low_dim_of(spec, proprio[t], state[t]))
    with pytest.raises(ValueError, match="at least 9"):
        low_dim_of(spec, proprio[0], state[0, :6])
    with pytest.raises(ValueError, match="world state"):
        low_dim_of(spec, proprio[0], None)


def test_frame_stacker_stacks_the_same_vector() -> None:
    spec = _state_spec("reach")
    stacker = FrameStacker(spec)
    obs = {"proprio": np.zeros(8, np.float32), "state": np.array([0.3, 0.0, 0.2], np.float32)}
    _, low = stacker.push(obs)
    assert low.shape == (spec.low_dim,)
    np.testing.assert_allclose(low[-3:], [0.3, 0.0, 0.2])
