"""The safety filter in front of the real sim arm: over 10,000 random and adversarial actions
the measured end effector stays inside the workspace box, and with the e-stop latched the
arm does not move at all."""

from __future__ import annotations

import numpy as np

from robolearn.actionspace import ActionScale
from robolearn.config import SafetyConfig
from robolearn.safety import SafetyFilter
from robolearn.sim import PandaSim

BOX = SafetyConfig(workspace_min_m=(0.35, -0.2, 0.10), workspace_max_m=(0.6, 0.2, 0.35),
                   max_step_m=0.05)
# The controller tracks a target that is always inside the box; overshoot of a stiff
# position servo is a few millimetres.
TOLERANCE_M = 0.01


def adversarial(rng: np.random.Generator, k: int) -> object:
    kind = k % 8
    if kind == 0:
        return rng.choice([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0], size=4)
    if kind == 1:
        return np.full(4, rng.choice([1e9, -1e9]))
    if kind == 2:  # push hard into one face of the box for a while
        a = np.zeros(4)
        a[(k // 8) % 3] = 1.0 if (k // 24) % 2 else -1.0
        return a
    if kind == 3:
        return rng.normal(0, 50, size=int(rng.integers(0, 7)))  # wrong length
    return rng.uniform(-1, 1, size=4)


def test_ee_stays_in_box_over_10000_random_and_adversarial_actions() -> None:
    sim = PandaSim("reach", render=False, control_hz=50.0)
    sim.reset(0)
    assert np.all(sim.state().ee_pos_m >= BOX.workspace_min_m)  # home is inside the box
    assert np.all(sim.state().ee_pos_m <= BOX.workspace_max_m)
    f = SafetyFilter(BOX, ActionScale())
    rng = np.random.default_rng(1)
    lo = np.array(BOX.workspace_min_m) - TOLERANCE_M
    hi = np.array(BOX.workspace_max_m) + TOLERANCE_M
    for k in range(10_000):
        ee = sim.state().ee_pos_m
        result = f.filter(adversarial(rng, k), ee, estop=False)
        assert result.command is not None
        sim.apply_command(result.command)
        sim.advance(0.02)
        pos = sim.state().ee_pos_m
        assert np.all(pos >= lo) and np.all(pos <= hi), (k, pos)
    assert f.counts.get("non_finite", 0) > 0 and f.counts.get("workspace", 0) > 0
    assert f.counts.get("bad_shape", 0) > 0


def test_nothing_moves_with_estop_latched() -> None:
    sim = PandaSim("reach", render=False, control_hz=50.0)
    sim.reset(0)
    sim.hold()
    sim.advance(0.2)
    start = sim.state().joint_pos_rad.copy()
    f = SafetyFilter(BOX, ActionScale())
    rng = np.random.default_rng(2)
    for k in range(500):
        result = f.filter(adversarial(rng, k), sim.state().ee_pos_m, estop=True)
        assert result.command is None
        sim.advance(0.02)
    np.testing.assert_allclose(sim.state().joint_pos_rad, start, atol=1e-4)
