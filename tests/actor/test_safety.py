import numpy as np
import pytest

from robolearn.actionspace import ActionScale
from robolearn.config import SafetyConfig
from robolearn.safety import SafetyFilter

CFG = SafetyConfig(workspace_min_m=(0.3, -0.3, 0.02), workspace_max_m=(0.75, 0.3, 0.45),
                   max_step_m=0.05)
SCALE = ActionScale(xyz_m=0.05)
INSIDE = np.array([0.5, 0.0, 0.2])


def test_passes_a_normal_action_untouched() -> None:
    f = SafetyFilter(CFG, SCALE)
    a = np.array([0.2, -0.4, 0.1, 0.5], dtype=np.float32)
    r = f.filter(a, INSIDE, estop=False)
    assert r.reasons == ()
    np.testing.assert_allclose(r.command.delta_xyz_m, a[:3] * 0.05, atol=1e-7)
    assert r.command.gripper_close == pytest.approx(0.75)
    np.testing.assert_allclose(r.action, a, atol=1e-6)


@pytest.mark.parametrize("bad", [
    [np.nan, 0, 0, 0], [0, np.inf, 0, 0], [0, 0, -np.inf, 1], [0, 0, 0, np.nan],
])
def test_non_finite_becomes_hold_with_previous_gripper(bad: list[float]) -> None:
    f = SafetyFilter(CFG, SCALE)
    f.filter(np.array([0, 0, 0, 1.0]), INSIDE, estop=False)  # gripper closed
    r = f.filter(np.array(bad), INSIDE, estop=False)
    assert "non_finite" in r.reasons
    np.testing.assert_array_equal(r.command.delta_xyz_m, np.zeros(3))
    assert r.command.gripper_close == 1.0


@pytest.mark.parametrize("bad", [None, "left", [1, 2], np.zeros((2, 4)), [1, 2, 3, 4, 5],
                                 {"x": 1}])
def test_malformed_actions_become_hold(bad: object) -> None:
    r = SafetyFilter(CFG, SCALE).filter(bad, INSIDE, estop=False)
    assert r.reasons == ("bad_shape",)
    np.testing.assert_array_equal(r.command.delta_xyz_m, np.zeros(3))


def test_huge_values_are_clipped_to_the_step_limit() -> None:
    cfg = SafetyConfig(workspace_min_m=CFG.workspace_min_m, workspace_max_m=CFG.workspace_max_m,
                       max_step_m=0.01)
    r = SafetyFilter(cfg, SCALE).filter(np.array([1e30, -1e30, 0, 0]), INSIDE, estop=False)
    np.testing.assert_allclose(r.command.delta_xyz_m, [0.01, -0.01, 0.0])
    assert "step_limit" in r.reasons


def test_target_never_leaves_the_box() -> None:
    f = SafetyFilter(CFG, SCALE)
    at_corner = np.array(CFG.workspace_max_m)
    r = f.filter(np.array([1, 1, 1, 0.0]), at_corner, estop=False)
    np.testing.assert_allclose(r.command.delta_xyz_m, np.zeros(3), atol=1e-12)
    assert "workspace" in r.reasons
    # Outside the box: the command moves back toward it, never further out.
    outside = np.array([0.9, 0.0, 0.2])
    r = f.filter(np.array([1, 0, 0, 0.0]), outside, estop=False)
    assert r.command.delta_xyz_m[0] < 0


def test_estop_sends_nothing() -> None:
    r = SafetyFilter(CFG, SCALE).filter(np.array([1, 0, 0, 0.0]), INSIDE, estop=True)
    assert r.command is None
    assert r.reasons == ("estop",)


def test_random_and_adversarial_targets_stay_in_box() -> None:
    rng = np.random.default_rng(0)
    f = SafetyFilter(CFG, SCALE)
    lo, hi = np.array(CFG.workspace_min_m), np.array(CFG.workspace_max_m)
    specials = [np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, 1.0, -1.0]
    for _ in range(10_000):
        ee = rng.uniform(lo, hi)
        if rng.random() < 0.3:
            a = rng.choice(specials, size=4)
        else:
            a = rng.normal(0, 3, size=4)
        r = f.filter(a, ee, estop=False)
        target = ee + r.command.delta_xyz_m
        assert np.all(target >= lo - 1e-9) and np.all(target <= hi + 1e-9)
        assert np.all(np.abs(r.command.delta_xyz_m) <= CFG.max_step_m + 1e-12)
        assert np.all(np.isfinite(r.action)) and np.all(np.abs(r.action) <= 1.0)
