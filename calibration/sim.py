"""The MuJoCo Panda scene with a ChArUco board in it: calibration validated against truth.

The board is a textured plane, either fixed in the world (for the wrist camera: eye-in-hand)
or carried by the hand (for the front camera: eye-to-hand). Arm poses are set as joint
angles and resolved by forward kinematics, so every view's gripper pose and camera pose are
exact, and the true intrinsics follow from the camera's vertical field of view.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Literal

import numpy as np
from PIL import Image

os.environ.setdefault("MUJOCO_GL", "egl")
import mujoco

from robolearn.calibration.board import board_image
from robolearn.config.hardware import CharucoBoardConfig
from robolearn.sim import model as scene

log = logging.getLogger(__name__)

_PX_PER_SQUARE = 128
_MARGIN_SQUARES = 0.5  # white border around the board, in squares (detection needs it)
# OpenCV's camera looks along +z with y down; MuJoCo's along -z with y up.
_MJ_TO_CV = np.diag([1.0, -1.0, -1.0])


def _pose(pos: np.ndarray, mat: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = np.asarray(mat, dtype=np.float64).reshape(3, 3)
    t[:3, 3] = pos
    return t


class BoardScene:
    """Args:
        board: the board to render.
        mount: "world" fixes the board at `board_pos_m` facing up; "hand" mounts it under
            the hand, facing away from the fingers.
        width, height: rendered image size, px.
    """

    def __init__(
        self,
        board: CharucoBoardConfig,
        *,
        mount: Literal["world", "hand"] = "world",
        board_pos_m: tuple[float, float, float] = (0.5, 0.0, 0.001),
        width: int = 640,
        height: int = 480,
    ) -> None:
        self.board = board
        margin_px = int(_MARGIN_SQUARES * _PX_PER_SQUARE)
        img = board_image(board, _PX_PER_SQUARE, margin_px)
        # MuJoCo maps the image onto the plane as printed (not mirrored), seen from +z.
        png = io.BytesIO()
        Image.fromarray(img).convert("RGB").save(png, format="PNG")
        half_x = img.shape[1] / _PX_PER_SQUARE * board.square_length_m / 2
        half_y = img.shape[0] / _PX_PER_SQUARE * board.square_length_m / 2
        texture = ('<texture name="charuco" type="2d" file="charuco.png"/>\n'
                   '    <material name="charuco" texture="charuco" texrepeat="1 1" '
                   'texuniform="false" specular="0" shininess="0" reflectance="0"/>')
        plane = (f'<geom name="charuco" type="plane" size="{half_x} {half_y} 0.001" '
                 f'material="charuco" contype="0" conaffinity="0" group="1"/>')
        xml = scene.scene_xml()
        xml = xml.replace('<global offwidth="256" offheight="256"/>',
                          f'<global offwidth="{width}" offheight="{height}"/>')
        xml = xml.replace("<asset>", "<asset>\n    " + texture, 1)
        if mount == "world":
            body = (f'<body name="charuco_body" pos="{board_pos_m[0]} {board_pos_m[1]} '
                    f'{board_pos_m[2]}">{plane}</body>')
            xml = xml.replace("<worldbody>", "<worldbody>\n    " + body, 1)
        else:
            # 0.2 m beyond the fingertips, facing along the hand's +z.
            body = (f'<body name="charuco_body" pos="0 0 0.30" quat="0 1 0 0">{plane}</body>')
            anchor = '<site name="tcp"'
            xml = xml.replace(anchor, body + "\n  " + anchor, 1)
        assets = {p.name: p.read_bytes() for p in scene._mesh_dir().glob("*.obj")}
        assets["charuco.png"] = png.getvalue()
        self.model = mujoco.MjModel.from_xml_string(xml, assets)
        self.data = mujoco.MjData(self.model)
        self.width, self.height = width, height
        self._renderer = mujoco.Renderer(self.model, height=height, width=width)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
            self._renderer.scene.flags[flag] = False
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = [1, 1, 1, 0, 0, 0]
        m = self.model
        self._arm_qpos = np.array([m.jnt_qposadr[m.joint(f"joint{i}").id] for i in range(1, 8)])
        self._tcp = m.site("tcp").id
        self.set_arm(scene.HOME_Q_RAD)

    def close(self) -> None:
        self._renderer.close()

    def set_arm(self, q_rad: np.ndarray) -> None:
        self.data.qpos[self._arm_qpos] = q_rad
        mujoco.mj_forward(self.model, self.data)

    def render(self, camera: str) -> np.ndarray:
        self._renderer.update_scene(self.data, camera=camera, scene_option=self._option)
        return self._renderer.render().copy()

    def tcp_pose(self) -> np.ndarray:
        """Base-from-TCP transform: what the arm driver reports as the end-effector pose."""
        return _pose(self.data.site_xpos[self._tcp], self.data.site_xmat[self._tcp])

    def camera_pose(self, camera: str) -> np.ndarray:
        """Base-from-camera transform, OpenCV camera axes."""
        cid = self.model.camera(camera).id
        t = _pose(self.data.cam_xpos[cid], self.data.cam_xmat[cid])
        t[:3, :3] = t[:3, :3] @ _MJ_TO_CV
        return t

    def intrinsics(self, camera: str) -> np.ndarray:
        """The true camera matrix: square pixels, principal point at the image centre."""
        fovy = np.deg2rad(self.model.cam_fovy[self.model.camera(camera).id])
        f = self.height / 2 / np.tan(fovy / 2)
        return np.array([[f, 0, (self.width - 1) / 2], [0, f, (self.height - 1) / 2],
                         [0, 0, 1]])
