"""The two-bin scene shared by bin_a_to_b and bin_b_to_a (a reset-free pair): bin placement,
"cube in bin", and the pick, carry and place expert."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from robolearn.sim import model as scene
from robolearn.sim.tasks.common import (
    CLOSED,
    OPEN,
    Phase,
    WaypointExpert,
    cube_pos,
    grasp_phases,
    near,
    never,
)

if TYPE_CHECKING:
    from robolearn.sim.panda import PandaSim

_BIN_CARRY_Z_M = 0.14  # ee height while carrying: the cube's bottom clears the bin walls
_BIN_PLACE_Z_M = scene.CUBE_HALF_M + 0.012  # ee height when letting go (cube just above table)
_BIN_INSIDE_M = scene.BIN_HALF_M - scene.CUBE_HALF_M  # cube centre this close to bin centre


def bin_pos(sim: PandaSim, name: str) -> np.ndarray:
    """A bin's centre on the table, m."""
    return sim.body_pos(name)


def _place_bins(sim: PandaSim, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Place both bins; returns their centres (body positions update only after mj_forward)."""
    x = rng.uniform(0.48, 0.54)
    centres = {}
    for name, y in (("bin_a", -0.14), ("bin_b", 0.14)):
        centres[name] = np.array([x + rng.uniform(-0.01, 0.01), y + rng.uniform(-0.01, 0.01),
                                  scene.TABLE_TOP_Z_M])
        sim._place_body(name, centres[name])
    return centres


def cube_in_bin(sim: PandaSim, name: str) -> bool:
    """The cube rests inside the bin: within its walls and down on the table (released)."""
    rel = cube_pos(sim)[:2] - bin_pos(sim, name)[:2]
    resting = cube_pos(sim)[2] < scene.CUBE_HALF_M + 0.01
    return bool(np.all(np.abs(rel) < _BIN_INSIDE_M) and resting
                and sim.gripper_width() > 2 * scene.CUBE_HALF_M + 0.005)


def bin_reset(source: str) -> Callable[[PandaSim, np.random.Generator], None]:
    """A task reset that places both bins and the cube inside `source`."""
    def reset(sim: PandaSim, rng: np.random.Generator) -> None:
        centre = _place_bins(sim, rng)[source]
        # Keep the cube away from the walls so the open fingers fit beside it.
        xy = centre[:2] + rng.uniform(-0.025, 0.025, size=2)
        sim._place_body("cube", np.array([xy[0], xy[1], scene.CUBE_HALF_M]),
                        rng.uniform(-0.3, 0.3))

    return reset


def bin_expert(target_bin: str) -> Callable[[PandaSim], WaypointExpert]:
    """Pick the cube wherever it is, carry it above the target bin, lower it and let go."""

    def make(sim: PandaSim) -> WaypointExpert:
        phases, grasp_xy = grasp_phases(
            _BIN_CARRY_Z_M, lambda s, n: s.ee_pos()[2] > _BIN_CARRY_Z_M - 0.03)

        def carry(s: PandaSim) -> np.ndarray:
            b = bin_pos(s, target_bin)
            return np.array([b[0], b[1], _BIN_CARRY_Z_M])

        def lower(s: PandaSim) -> np.ndarray:
            b = bin_pos(s, target_bin)
            return np.array([b[0], b[1], _BIN_PLACE_Z_M])

        def retreat(s: PandaSim) -> np.ndarray:
            b = bin_pos(s, target_bin)
            return np.array([b[0], b[1], _BIN_CARRY_Z_M])

        phases += [
            Phase("carry", carry, CLOSED, near(carry, 0.015)),
            Phase("lower", lower, CLOSED, near(lower, 0.012)),
            Phase("release", lower, OPEN,
                  lambda s, n: s.gripper_width() > 2 * scene.CUBE_HALF_M + 0.02),
            Phase("retreat", retreat, OPEN, never),
        ]

        def guard(s: PandaSim, index: int) -> int | None:
            # Dropped or missed the cube while holding it: open and pick it up again.
            if 3 <= index <= 5 and s.gripper_width() < 0.01:
                grasp_xy.clear()
                return 0
            # Released outside the bin (it bounced out): pick it up again.
            if index == 7 and not cube_in_bin(s, target_bin) and cube_pos(s)[2] < 0.03:
                grasp_xy.clear()
                return 0
            return None

        return WaypointExpert(phases, guard)

    return make


def bin_positions(sim: PandaSim) -> dict[str, np.ndarray]:
    """The scene's object positions for the privileged state."""
    return {"bin_a": bin_pos(sim, "bin_a"), "bin_b": bin_pos(sim, "bin_b"), "cube": cube_pos(sim)}
