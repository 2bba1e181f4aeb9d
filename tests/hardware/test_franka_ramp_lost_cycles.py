"""The Franka velocity ramp against the arm's packet-loss extrapolation (pure, no SDK).

A command that misses its 1 ms cycle is dropped, and the FCI extrapolates the motion
generator instead: each lost cycle adds the difference of the last two commands received
once more, for up to 19 cycles in a row (the 20th aborts the motion). The driver's speed
limit has to hold for what the arm runs, extrapolation included; the unguarded ramp landed
on it with a last step of max_jerk * dt^2 and so ran 1e-4 m/s past it on one lost cycle.
"""

from __future__ import annotations

import numpy as np

from robolearn.hardware.franka.ramp import ramp_step

DT = 0.001
ACCEL = 1.0
JERK = 100.0
SPEED = 0.1  # m/s, translation
YAW_RATE = 0.6  # rad/s
LIMIT = np.array([SPEED, SPEED, SPEED, YAW_RATE])
LOST = 19  # the most consecutive lost cycles the FCI extrapolates
# The extrapolation's own float rounding (measured 3e-16); an unguarded landing is 1e-4.
_ROUNDING = 1e-12


def run(
    targets: list[np.ndarray],
    *,
    accel: float = ACCEL,
    jerk: float = JERK,
) -> tuple[np.ndarray, np.ndarray]:
    v, a = np.zeros(4), np.zeros(4)
    vs, accs = [v], [a]
    for target in targets:
        v, a = ramp_step(
            v, a, target, max_accel=accel, max_jerk=jerk, dt_s=DT, limit=LIMIT, lost_cycles=LOST
        )
        vs.append(v)
        accs.append(a)
    return np.array(vs), np.array(accs)


def extrapolated_peak(vs: np.ndarray) -> np.ndarray:
    """Per axis, the largest |velocity| the arm runs if 1 to LOST cycles are lost after any
    command: v_k + n * (v_k - v_(k-1))."""
    step = np.diff(vs, axis=0)
    n = np.arange(1, LOST + 1)[:, None, None]
    return np.abs(vs[1:][None] + n * step[None]).max(axis=(0, 1))


def test_lost_cycles_never_run_the_arm_past_the_speed_limit() -> None:
    at_limit = np.array([SPEED, -SPEED, 0.0, YAW_RATE])
    diagonal = np.array([SPEED, SPEED, SPEED, 0.0])  # the acceleration is capped as a vector
    vs, _ = run(
        [at_limit] * 1200
        + [np.zeros(4)] * 800
        + [diagonal] * 600
        + [-diagonal] * 800
        + [np.zeros(4)] * 400
    )
    assert np.all(extrapolated_peak(vs) <= LIMIT + _ROUNDING), extrapolated_peak(vs) - LIMIT
    assert np.all(np.abs(vs) <= LIMIT)  # what is sent, exactly
    # It still gets there, to the last few ulps, and still stops on an exact zero.
    np.testing.assert_allclose(vs[1200], at_limit, atol=1e-12)
    np.testing.assert_array_equal(vs[2000], np.zeros(4))
    np.testing.assert_array_equal(vs[-1], np.zeros(4))


def test_guard_holds_with_a_high_acceleration_and_keeps_the_jerk_bound() -> None:
    # Acceleration above max_jerk * tau (tau = 20 ms): the ramp eases onto the guard's
    # exponential approach at the jerk limit instead of being cut short by it.
    target = np.array([SPEED, 0.0, 0.0, YAW_RATE])
    for accel, jerk in ((10.0, 100.0), (10.0, 1000.0), (ACCEL, JERK)):
        vs, accs = run([target] * 800 + [np.zeros(4)] * 400, accel=accel, jerk=jerk)
        assert np.all(extrapolated_peak(vs) <= LIMIT + _ROUNDING)
        # As without the guard (test_franka_ramp): at the limit but on rare landing cycles.
        jerks = np.abs(np.diff(accs, axis=0)) / DT
        assert jerks.max() <= 2.0 * jerk
        assert np.mean(jerks > jerk + 1e-6) < 0.01


def test_a_closed_loop_target_that_moves_stays_within_the_limit() -> None:
    # The home move: a proportional target clipped to the limit, shrinking as it closes in.
    pos = np.array([0.0, 0.0, 0.0, 0.0])
    goal = np.array([0.05, -0.03, 0.02, 0.3])
    v, a = np.zeros(4), np.zeros(4)
    vs = [v]
    for _ in range(4000):
        target = np.clip(2.0 * (goal - pos), -LIMIT, LIMIT)
        v, a = ramp_step(
            v, a, target, max_accel=ACCEL, max_jerk=JERK, dt_s=DT, limit=LIMIT, lost_cycles=LOST
        )
        pos = pos + v * DT
        vs.append(v)
    assert np.all(extrapolated_peak(np.array(vs)) <= LIMIT + _ROUNDING)
    np.testing.assert_allclose(pos, goal, atol=1e-3)
