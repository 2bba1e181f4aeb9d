"""The jerk-limited velocity ramp of the Franka 1 kHz loop (pure, no SDK).

The FCI judges a Cartesian velocity stream by the joint motion its inverse kinematics implies,
and aborts with `cartesian_motion_generator_joint_acceleration_discontinuity` when the joint
jerk passes its limit (5000 rad/s^3 on the FR3). A ramp with bounded acceleration but a step in
acceleration is a jerk spike: 1 m/s^2 reached in one 1 ms cycle is 1000 m/s^3 at the TCP and
about 6600 rad/s^3 at the elbow from the franka-sim start pose, which the protocol-peer tests
showed aborting every motion. So acceleration itself ramps, at `max_jerk`. The same check
bounds the joint acceleration (10 rad/s^2 on the FR3's elbow), which a per-axis limit lets a
diagonal move exceed by sqrt(3): the TCP's translational acceleration is limited as a vector.

The arm does not only see the commands sent. A command that misses its 1 ms cycle is dropped,
and the FCI extrapolates the motion generator instead, "keep acceleration constant and
integrate": each lost cycle adds the last two commands' difference once more (libfranka's
system_requirements docs; franka-sim does the same and echoes the result in `O_dP_EE_c`), for
up to 19 cycles in a row (the 20th aborts the motion). A ramp that lands on the speed limit
with a last step of `max_jerk * dt^2` (1e-4 m/s by default) thus has the arm run at the limit
plus that step per lost cycle. With `limit` given, the velocity approaches it slowly enough
that `lost_cycles` extrapolated cycles stay within it: a step towards the limit is at most
1 / (lost_cycles + 1) of the distance left, an exponential approach with a time constant of
`(lost_cycles + 1) * dt_s` in its last part, and the acceleration eases onto that in advance.
"""

from __future__ import annotations

import numpy as np


def ramp_step(
    v: np.ndarray,
    a: np.ndarray,
    target: np.ndarray,
    *,
    max_accel: float,
    max_jerk: float,
    dt_s: float,
    limit: np.ndarray | None = None,
    lost_cycles: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One cycle of velocity tracking with bounded acceleration and jerk.

    The wanted acceleration is the largest one from which the axis can still bring its
    acceleration back to zero at `max_jerk` exactly as the velocity reaches the target
    (|a| = sqrt(2 * max_jerk * |error|)), capped at `max_accel` (as a vector over the first
    three components, the TCP translation; per axis for the rest); the acceleration then
    moves towards it by at most `max_jerk * dt_s` per axis. The velocity thus settles on the
    target without overshooting it and lands on it exactly, so a stop reaches exactly zero
    (libfranka's motion_finished needs a zero command). The landing cycle, off the discrete
    braking curve, can step the acceleration by up to about twice `max_jerk * dt_s`. A target
    on `limit` is approached under the lost-cycle guard instead: the velocity converges on it
    to the last few ulps without a landing step (one the arm would extrapolate past it).

    Args:
        v: current commanded velocity per axis: vx, vy, vz [, rotation rates...].
        a: current commanded acceleration per axis.
        target: velocity to reach per axis.
        max_accel: acceleration limit (units of v per second).
        max_jerk: jerk limit (units of v per second squared).
        dt_s: the cycle time, s.
        limit: speed limit per axis (targets must lie within it); None for no guard.
        lost_cycles: consecutive lost cycles the arm's extrapolation may add without
            passing `limit` (see the module's docstring).

    Returns:
        The next (velocity, acceleration).
    """
    err = target - v
    # The discrete form of sqrt(2 * max_jerk * |err|): ramping `a` down in steps of
    # max_jerk * dt_s covers a^2 / (2 * max_jerk) + a * dt_s / 2 of velocity.
    brake = max_jerk * (np.sqrt(dt_s**2 / 4.0 + 2.0 * np.abs(err) / max_jerk) - dt_s / 2.0)
    if limit is not None:
        # Ease onto the extrapolation guard below: its exponential approach to the limit, at
        # a = distance / tau, changes the acceleration by a * dt / tau per cycle, which the
        # jerk limit allows below a = max_jerk * tau; above that, brake at max_jerk towards
        # that point of the curve (a^2 = 2 j d - (j tau)^2 there, continuous in value and
        # slope).
        tau = (lost_cycles + 1) * dt_s
        to_limit = np.maximum(limit - np.sign(err) * v, 0.0)
        knee = max_jerk * tau
        ease = np.where(
            to_limit <= knee * tau,
            to_limit / tau,
            np.sqrt(np.maximum(2.0 * max_jerk * to_limit - knee**2, 0.0)),
        )
        brake = np.minimum(brake, ease)
    wanted = np.sign(err) * np.minimum(max_accel, brake)
    norm = float(np.linalg.norm(wanted[:3]))
    if norm > max_accel:
        wanted[:3] *= max_accel / norm
    jerk_step = max_jerk * dt_s
    a_next = a + np.clip(wanted - a, -jerk_step, jerk_step)
    v_next = v + a_next * dt_s
    # Never past the target in one step (a long cycle after a missed packet would overshoot
    # it, and the target is the driver's speed limit): stop on it instead.
    crossed = np.sign(target - v_next) * np.sign(err) < 0
    v_next = np.where(crossed, target, v_next)
    a_next = np.where(crossed, 0.0, a_next)
    # Within one cycle's jerk of the target, with an acceleration that one jerk step cancels:
    # land on it (else the sqrt law dithers around it forever at a tiny amplitude).
    settle = (np.abs(err) <= jerk_step * dt_s) & (np.abs(a) <= jerk_step)
    v_next = np.where(settle, target, v_next)
    a_next = np.where(settle, 0.0, a_next)
    if limit is not None:
        # The guard itself: extrapolated over `lost_cycles` more cycles at this step's
        # acceleration, the velocity stays within the limit. It only shortens a step
        # outwards, never moves the velocity back.
        n = lost_cycles
        upper = np.minimum(np.maximum((n * v + limit) / (n + 1), v), np.maximum(limit, v))
        lower = np.maximum(np.minimum((n * v - limit) / (n + 1), v), np.minimum(-limit, v))
        guarded = np.clip(v_next, lower, upper)
        a_next = np.where(guarded != v_next, (guarded - v) / dt_s, a_next)
        v_next = guarded
    return v_next, a_next
