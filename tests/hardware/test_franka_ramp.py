"""The Franka 1 kHz velocity ramp (pure) and the franka-sim model builder's URDF edit."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.hardware.franka.ramp import ramp_step
from robolearn.hardware.franka.sim_model import strip_meshes

DT = 0.001
ACCEL = 1.0
JERK = 100.0


def run(targets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    v, a = np.zeros(4), np.zeros(4)
    vs, accs = [], []
    for target in targets:
        v, a = ramp_step(v, a, target, max_accel=ACCEL, max_jerk=JERK, dt_s=DT)
        vs.append(v)
        accs.append(a)
    return np.array(vs), np.array(accs)


def test_ramp_reaches_the_target_exactly_and_stops_on_zero() -> None:
    target = np.array([0.1, 0.0, -0.05, 0.3])
    vs, _ = run([target] * 600 + [np.zeros(4)] * 600)
    np.testing.assert_array_equal(vs[599], target)
    np.testing.assert_array_equal(vs[-1], np.zeros(4))  # motion_finished needs an exact zero


def test_ramp_bounds_acceleration_as_a_vector_and_jerk_per_axis() -> None:
    # A diagonal move, a reversal mid-ramp and a stop: the worst cases for the limits.
    up = np.array([0.2, 0.2, 0.2, 0.0])
    vs, accs = run([up] * 150 + [-up] * 400 + [np.zeros(4)] * 400)
    assert np.linalg.norm(accs[:, :3], axis=1).max() <= ACCEL + 1e-9
    steps = np.diff(np.vstack([np.zeros(4), vs]), axis=0) / DT
    assert np.linalg.norm(steps[:, :3], axis=1).max() <= ACCEL * 1.01
    # Jerk stays at its limit except on the one cycle where the velocity lands on its target
    # off the discrete braking curve (measured 1.8x there); the default limit leaves a margin
    # of about 7x below the FR3's joint jerk limit for that cycle.
    jerk = np.abs(np.diff(accs, axis=0)) / DT
    assert jerk.max() <= 2.0 * JERK
    assert np.mean(jerk > JERK + 1e-6) < 0.01
    assert np.abs(vs).max() <= 0.2 + 1e-12  # never past the largest target


def test_strip_meshes_keeps_kinematics_and_adds_compiler_options() -> None:
    urdf = """<robot name="fr3"><link name="link0"><visual><geometry><mesh filename="a.dae"/>
    </geometry></visual><collision><geometry><mesh filename="a.stl"/></geometry></collision>
    <inertial><mass value="2.0"/></inertial></link>
    <joint name="joint1" type="revolute"><parent link="link0"/><child link="link1"/></joint>
    <link name="link1"><inertial><mass value="1.0"/></inertial></link></robot>"""
    out = strip_meshes(urdf)
    assert "<visual" not in out and "<collision" not in out and "mesh" not in out
    assert 'fusestatic="false"' in out and 'balanceinertia="true"' in out
    assert '<joint name="joint1"' in out and out.count("<inertial>") == 2


def test_strip_meshes_rejects_a_file_that_is_not_a_urdf() -> None:
    with pytest.raises(ValueError, match="URDF <robot>"):
        strip_meshes("<mujoco model='x'/>")
