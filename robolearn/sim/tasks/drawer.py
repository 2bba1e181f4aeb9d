"""The drawer scene shared by drawer_open and drawer_close (a reset-free pair): the cabinet's
placement, the handle, the slide, and the hook-and-pull / push expert."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from robolearn.sim import model as scene
from robolearn.sim.tasks.common import CLOSED, Phase, WaypointExpert, near, never

if TYPE_CHECKING:
    from robolearn.sim.panda import PandaSim

_HOOK_M = 0.028  # hook point: between the handle bar and the drawer face


def place_cabinet(sim: PandaSim, rng: np.random.Generator, slide: float) -> None:
    """Put the cabinet at a random spot in front of the arm with the drawer out `slide` m."""
    face_x = rng.uniform(0.58, 0.64)
    y = rng.uniform(-0.12, 0.12)
    sim._place_body("cabinet", np.array([face_x, y, scene.TABLE_TOP_Z_M]))
    sim.set_joint("drawer_slide", slide)


def handle_pos(sim: PandaSim) -> np.ndarray:
    """The drawer handle's centre, m."""
    return sim.site_pos("handle")


def drawer_slide(sim: PandaSim) -> float:
    """How far the drawer is pulled out, m (0 = shut)."""
    return sim.joint_value("drawer_slide")


def drawer_positions(sim: PandaSim) -> dict[str, np.ndarray]:
    """The scene's object positions for the privileged state."""
    return {"drawer_handle": handle_pos(sim), "cabinet": sim.body_pos("cabinet")}


def drawer_expert(opening: bool) -> Callable[[PandaSim], WaypointExpert]:
    """The scripted expert that opens (or closes) the drawer."""
    # Opening: hook the closed fingers between bar and face and pull. Closing: put them in
    # front of the bar and push.
    offset = _HOOK_M if opening else -0.03

    def hover(s: PandaSim) -> np.ndarray:
        return handle_pos(s) + np.array([offset, 0.0, 0.08])

    def down(s: PandaSim) -> np.ndarray:
        return handle_pos(s) + np.array([offset, 0.0, 0.0])

    def move(s: PandaSim) -> np.ndarray:
        h = handle_pos(s)
        if opening:
            step = -min(0.05, max(0.0, 0.17 - drawer_slide(s)) + 0.01)
            return h + np.array([_HOOK_M + step, 0.0, 0.0])
        step = min(0.05, drawer_slide(s) + 0.01)
        return h + np.array([-0.018 + step, 0.0, 0.0])

    def make(sim: PandaSim) -> WaypointExpert:
        return WaypointExpert(
            [
                Phase(
                    "hover",
                    hover,
                    CLOSED,
                    lambda s, n: near(hover, 0.012)(s, n) and s.gripper_width() < 0.005,
                ),
                Phase("down", down, CLOSED, near(down, 0.01)),
                Phase("pull" if opening else "push", move, CLOSED, never),
            ]
        )

    return make
