"""The MuJoCo scene: a Franka Panda on a table with a cube, markers and a drawer cabinet.

The arm is written as MJCF by hand from the kinematics of `pybullet_data/franka_panda/panda.urdf`
(joint origins, axes, link masses and centres of mass) and uses that package's collision OBJ
meshes as visuals. MuJoCo's URDF importer is not used: it drops mesh directories and takes the
URDF's joint limits, which are looser than Franka's published ones. The meshes are passed to
the compiler as an in-memory asset dict, so nothing is written to disk and nothing is
downloaded.

All tasks share one compiled model (objects a task does not use are parked under the table),
so one process compiles once and keeps one offscreen renderer per image size.

Collision: only the hand, the finger pads, the table, the cube and the drawer collide. The arm
links are visual only; the workspace box keeps the hand above the table instead.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

# Headless offscreen rendering; must be chosen before mujoco is first imported.
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np

from robolearn.errors import ConfigError

log = logging.getLogger(__name__)

# Franka's published joint limits (Franka Control Interface docs, "Robot and interface
# specifications"); the URDF in pybullet_data is looser by ~4 degrees on most joints.
Q_MIN_RAD = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
Q_MAX_RAD = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
DQ_MAX_RAD_S = np.array([2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100])
TAU_MAX_NM = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])
GRIPPER_MAX_WIDTH_M = 0.08
# Franka Hand: 70 N continuous grasp force, fingers move at up to 0.05 m/s each.
GRIPPER_FORCE_N = 70.0
GRIPPER_SPEED_M_S = 0.1  # width rate = 2 x finger speed

# Home: the TCP 0.45 m in front of the base, 0.30 m above the table, gripper pointing down,
# fingers closing along world y. Computed once with the IK of this module's model.
HOME_Q_RAD = np.array([0.0, -0.2614, 0.0, -2.4291, 0.0, 2.1676, 0.7854])

CUBE_HALF_M = 0.02
TABLE_TOP_Z_M = 0.0
PARK_POS = {
    "cube": np.array([0.3, 0.4, -0.72]),
    "cabinet": np.array([0.5, -0.3, -0.5]),
    "target": np.array([0.3, 0.0, -0.3]),
    "goal": np.array([0.3, 0.2, -0.3]),
    "bin_a": np.array([0.2, -0.3, -0.5]),
    "bin_b": np.array([0.2, 0.3, -0.5]),
}

# Drawer geometry (cabinet frame: origin at the front-bottom centre of the cabinet, x pointing
# away from the robot). The handle is a bar in front of the drawer face with a gap the closed
# fingers hook into.
CABINET_DEPTH_M = 0.25
CABINET_HALF_WIDTH_M = 0.15
CABINET_HEIGHT_M = 0.14
DRAWER_TRAVEL_M = 0.2
HANDLE_OFFSET_M = 0.05  # bar centre in front of the drawer face
HANDLE_Z_M = 0.10

# Bins (bin_a_to_b / bin_b_to_a): open-topped square frames standing on the table. The walls
# are low so the carried cube clears them, and the inside is wide enough that the open fingers
# (8 cm) fit beside a cube sitting at the centre.
BIN_HALF_M = 0.08  # inner half-width
BIN_WALL_M = 0.005  # wall half-thickness
BIN_WALL_HEIGHT_M = 0.03

_URDF_DIR = "franka_panda"


def _mesh_dir() -> Path:
    try:
        import pybullet_data
    except ImportError as exc:  # pragma: no cover - pybullet is a declared dependency
        raise ConfigError(
            "robolearn.sim needs the Panda meshes shipped in the `pybullet` wheel "
            "(pybullet_data/franka_panda); install pybullet"
        ) from exc
    path = Path(pybullet_data.getDataPath()) / _URDF_DIR / "meshes" / "collision"
    if not path.is_dir():
        raise ConfigError(f"Panda meshes not found at {path}; reinstall pybullet")
    return path


def _fmt(v) -> str:
    return " ".join(f"{x:.6g}" for x in np.atleast_1d(v))


# (name, parent offset xyz, rpy-x rotation of the joint frame, mass, com) from panda.urdf
_LINKS = [
    ("link1", (0, 0, 0.333), 0.0, 2.7, (0, -0.04, -0.05)),
    ("link2", (0, 0, 0), -np.pi / 2, 2.73, (0, -0.04, 0.06)),
    ("link3", (0, -0.316, 0), np.pi / 2, 2.04, (0.01, 0.01, -0.05)),
    ("link4", (0.0825, 0, 0), np.pi / 2, 2.08, (-0.03, 0.03, 0.02)),
    ("link5", (-0.0825, 0.384, 0), -np.pi / 2, 3.0, (0, 0.04, -0.12)),
    ("link6", (0, 0, 0), np.pi / 2, 1.3, (0.04, 0, 0)),
    ("link7", (0.088, 0, 0), np.pi / 2, 0.2, (0, 0, 0.08)),
]
_ARM_KP = [4500, 4500, 3500, 3500, 2000, 2000, 2000]
_ARM_KV = [450, 450, 350, 350, 200, 200, 200]


def _quat_rx(angle: float) -> np.ndarray:
    return np.array([np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0])


def _arm_xml() -> str:
    """Nested bodies link1..link7, hand and fingers, from the URDF joint origins."""
    inner = _hand_xml()
    for i in range(len(_LINKS) - 1, -1, -1):
        name, pos, rx, mass, com = _LINKS[i]
        # Crude inertia from the mass (the URDF's 0.1 kg m^2 everywhere is a placeholder that
        # would make the wrist absurdly heavy).
        inertia = mass * 0.004
        inner = f"""
<body name="{name}" pos="{_fmt(pos)}" quat="{_fmt(_quat_rx(rx))}" gravcomp="1">
  <inertial pos="{_fmt(com)}" mass="{mass}" diaginertia="{inertia} {inertia} {inertia}"/>
  <joint name="joint{i + 1}" axis="0 0 1" range="{Q_MIN_RAD[i]} {Q_MAX_RAD[i]}"
         armature="0.1" damping="1"/>
  <geom class="visual" mesh="{name}"/>
  {inner}
</body>"""
    return inner


def _hand_xml() -> str:
    # link8 is 0.107 along link7 z; the hand is rotated -pi/4 about z (URDF panda_hand_joint).
    c, s = np.cos(-np.pi / 8), np.sin(-np.pi / 8)
    finger_common = 'class="pad"'
    return f"""
<body name="hand" pos="0 0 0.107" quat="{c:.8f} 0 0 {s:.8f}" gravcomp="1">
  <inertial pos="0 0 0.04" mass="0.81" diaginertia="0.003 0.003 0.003"/>
  <geom class="visual" mesh="hand"/>
  <geom class="collision" type="box" pos="0 0 0.02" size="0.03 0.1 0.035"/>
  <site name="tcp" pos="0 0 0.105" size="0.005" rgba="1 0 0 0" group="4"/>
  <camera name="wrist" pos="0.06 0 0.02" quat="0 0.9914 0 0.1305" fovy="75"/>
  <body name="left_finger" pos="0 0 0.0584" gravcomp="1">
    <inertial pos="0 0.01 0.02" mass="0.1" diaginertia="0.0001 0.0001 0.0001"/>
    <joint name="finger_left" type="slide" axis="0 1 0" range="0 0.04" damping="10"
           armature="0.1"/>
    <geom class="visual" mesh="finger"/>
    <geom {finger_common} pos="0 0.005 0.044" size="0.009 0.005 0.01"/>
    <geom class="collision" type="box" pos="0 0.016 0.017" size="0.009 0.009 0.017"/>
  </body>
  <body name="right_finger" pos="0 0 0.0584" quat="0 0 0 1" gravcomp="1">
    <inertial pos="0 0.01 0.02" mass="0.1" diaginertia="0.0001 0.0001 0.0001"/>
    <joint name="finger_right" type="slide" axis="0 1 0" range="0 0.04" damping="10"
           armature="0.1"/>
    <geom class="visual" mesh="finger"/>
    <geom {finger_common} pos="0 0.005 0.044" size="0.009 0.005 0.01"/>
    <geom class="collision" type="box" pos="0 0.016 0.017" size="0.009 0.009 0.017"/>
  </body>
</body>"""


def _cabinet_xml() -> str:
    d, hw, h = CABINET_DEPTH_M, CABINET_HALF_WIDTH_M, CABINET_HEIGHT_M
    wall = 0.01
    bar = HANDLE_OFFSET_M
    return f"""
<body name="cabinet" mocap="true" pos="{_fmt(PARK_POS["cabinet"])}">
  <geom class="collision" type="box" pos="{d / 2 + 0.01} 0 {h / 2}"
        size="{d / 2 - 0.01} {hw} {h / 2}"
        rgba="0.55 0.4 0.25 1" group="1"/>
  <body name="drawer" pos="0 0 0">
    <!-- Stiff stops: with the default soft limit the arm drove the drawer 4 cm past its
         closed stop and 2 cm past its open one. -->
    <joint name="drawer_slide" type="slide" axis="-1 0 0" range="0 {DRAWER_TRAVEL_M}"
           damping="8" frictionloss="0.3" armature="0.5"
           solreflimit="0.004 1" solimplimit="0.99 0.999 0.001"/>
    <inertial pos="{d / 2} 0 {h / 2}" mass="1.0" diaginertia="0.01 0.01 0.01"/>
    <geom class="collision" type="box" pos="{wall / 2} 0 {h / 2 + 0.005}"
          size="{wall / 2} {hw - 0.005} {h / 2 - 0.005}" rgba="0.75 0.6 0.4 1" group="1"/>
    <geom class="visual" type="box" pos="{d / 2} 0 {h / 2 - 0.01}"
          size="{d / 2 - 0.01} {hw - 0.02} {h / 2 - 0.03}"
          rgba="0.7 0.55 0.35 1" group="1"/>
    <geom class="collision" type="box" pos="{-HANDLE_OFFSET_M / 2} {-0.06} {HANDLE_Z_M}"
          size="{HANDLE_OFFSET_M / 2} 0.006 0.006" rgba="0.2 0.2 0.2 1" group="1"/>
    <geom class="collision" type="box" pos="{-HANDLE_OFFSET_M / 2} {0.06} {HANDLE_Z_M}"
          size="{HANDLE_OFFSET_M / 2} 0.006 0.006" rgba="0.2 0.2 0.2 1" group="1"/>
    <geom name="handle" class="collision" type="capsule"
          fromto="{-bar} -0.07 {HANDLE_Z_M} {-bar} 0.07 {HANDLE_Z_M}"
          size="0.008" rgba="0.2 0.2 0.2 1" group="1"/>
    <site name="handle" pos="{-HANDLE_OFFSET_M} 0 {HANDLE_Z_M}" size="0.005" group="4"/>
  </body>
</body>"""


def _bin_xml(name: str, rgba: str) -> str:
    half, wall, h = BIN_HALF_M, BIN_WALL_M, BIN_WALL_HEIGHT_M
    walls = []
    for sx, sy, ex, ey in ((half + wall, 0, wall, half + 2 * wall),
                           (-half - wall, 0, wall, half + 2 * wall),
                           (0, half + wall, half, wall), (0, -half - wall, half, wall)):
        walls.append(f'<geom class="collision" type="box" pos="{sx} {sy} {h / 2}" '
                     f'size="{ex} {ey} {h / 2}" rgba="{rgba}" group="1"/>')
    return (f'<body name="{name}" mocap="true" pos="{_fmt(PARK_POS[name])}">'
            + "".join(walls) + "</body>")


def scene_xml() -> str:
    """The full scene as an MJCF string (meshes referenced by bare file name)."""
    meshes = "\n".join(
        f'<mesh name="{n}" file="{n}.obj"/>'
        for n in [
            "link0",
            "link1",
            "link2",
            "link3",
            "link4",
            "link5",
            "link6",
            "link7",
            "hand",
            "finger",
        ]
    )
    return f"""
<mujoco model="robolearn_panda">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="256" offheight="256"/>
    <quality shadowsize="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.35 0.35 0.35" specular="0 0 0"/>
  </visual>
  <asset>
    {meshes}
    <material name="table" rgba="0.55 0.52 0.48 1"/>
  </asset>
  <default>
    <default class="visual">
      <geom type="mesh" contype="0" conaffinity="0" group="2" rgba="0.95 0.95 0.95 1" mass="0"/>
    </default>
    <default class="collision">
      <geom contype="1" conaffinity="1" group="3" friction="1 0.005 0.0001" mass="0"/>
    </default>
    <default class="pad">
      <geom type="box" contype="1" conaffinity="1" group="3" friction="1.5 0.01 0.0001"
            condim="4" solref="0.004 1" mass="0"/>
    </default>
  </default>
  <worldbody>
    <light pos="0.5 0 1.5" dir="0 0 -1" directional="true" castshadow="false"
           diffuse="0.45 0.45 0.45"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" rgba="0.35 0.35 0.4 1"
          contype="1" conaffinity="1"/>
    <geom name="table" type="box" pos="0.4 0 -0.025" size="0.6 0.6 0.025" material="table"
          contype="1" conaffinity="1" group="1" friction="0.4 0.005 0.0001"/>
    <camera name="front" pos="1.15 0 0.6" xyaxes="0 1 0 -0.588 0 0.809" fovy="55"/>
    <camera name="side" pos="0.5 -1.05 0.55" xyaxes="1 0 0 0 0.356 0.9345" fovy="55"/>
    <body name="link0">
      <geom class="visual" mesh="link0"/>
      {_arm_xml()}
    </body>
    <body name="cube" pos="{_fmt(PARK_POS["cube"])}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{CUBE_HALF_M} {CUBE_HALF_M} {CUBE_HALF_M}" mass="0.08"
            rgba="0.85 0.1 0.1 1" friction="0.4 0.005 0.0001" condim="4" group="1"/>
    </body>
    <body name="target" mocap="true" pos="{_fmt(PARK_POS["target"])}">
      <geom type="sphere" size="0.02" rgba="0.1 0.85 0.2 0.8" contype="0" conaffinity="0"
            group="1"/>
    </body>
    <body name="goal" mocap="true" pos="{_fmt(PARK_POS["goal"])}">
      <geom type="cylinder" size="0.04 0.001" rgba="0.15 0.3 0.95 1" contype="0"
            conaffinity="0" group="1"/>
    </body>
    {_cabinet_xml()}
    {_bin_xml("bin_a", "0.9 0.7 0.1 1")}
    {_bin_xml("bin_b", "0.2 0.6 0.9 1")}
  </worldbody>
  <contact>
    <exclude body1="left_finger" body2="right_finger"/>
    <exclude body1="cabinet" body2="drawer"/>
  </contact>
  <tendon>
    <fixed name="width">
      <joint joint="finger_left" coef="1"/>
      <joint joint="finger_right" coef="1"/>
    </fixed>
  </tendon>
  <equality>
    <joint joint1="finger_left" joint2="finger_right" solref="0.005 1"/>
  </equality>
  <actuator>
    {_arm_actuators_xml()}
    <position name="gripper" tendon="width" kp="2000" kv="50" ctrlrange="0 {GRIPPER_MAX_WIDTH_M}"
              forcerange="{-GRIPPER_FORCE_N} {GRIPPER_FORCE_N}"/>
  </actuator>
</mujoco>"""


def _arm_actuators_xml() -> str:
    lines = []
    for i in range(7):
        lines.append(
            f'<position name="p{i + 1}" joint="joint{i + 1}" kp="{_ARM_KP[i]}" '
            f'ctrlrange="{Q_MIN_RAD[i]} {Q_MAX_RAD[i]}"/>'
        )
    for i in range(7):
        lines.append(
            f'<velocity name="v{i + 1}" joint="joint{i + 1}" kv="{_ARM_KV[i]}" '
            f'ctrlrange="{-DQ_MAX_RAD_S[i]} {DQ_MAX_RAD_S[i]}"/>'
        )
    return "\n    ".join(lines)


@functools.lru_cache(maxsize=1)
def shared_model() -> mujoco.MjModel:
    """Compile the scene once per process; every PandaSim shares this (read-only) model."""
    mesh_dir = _mesh_dir()
    assets = {p.name: p.read_bytes() for p in mesh_dir.glob("*.obj")}
    try:
        model = mujoco.MjModel.from_xml_string(scene_xml(), assets)
    except ValueError as exc:
        raise ConfigError(f"robolearn sim scene failed to compile: {exc}") from exc
    log.debug("compiled sim model: nq=%d nbody=%d", model.nq, model.nbody)
    return model
