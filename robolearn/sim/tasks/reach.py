"""reach: move the gripper to a ball placed at random in the workspace."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from robolearn.sim.tasks.common import OPEN, Phase, Task, WaypointExpert, never

if TYPE_CHECKING:
    from robolearn.sim.panda import PandaSim

_REACH_TOL_M = 0.03


def _reach_reset(sim: PandaSim, rng: np.random.Generator) -> None:
    pos = rng.uniform([0.35, -0.25, 0.08], [0.65, 0.25, 0.35])
    sim._place_body("target", pos)


def _reach_target(sim: PandaSim) -> np.ndarray:
    return sim.body_pos("target")


REACH = Task(
    name="reach",
    description="move the gripper to the green ball",
    reset=_reach_reset,
    success=lambda sim: bool(np.linalg.norm(sim.ee_pos() - _reach_target(sim)) < _REACH_TOL_M),
    make_expert=lambda sim: WaypointExpert([Phase("reach", _reach_target, OPEN, never)]),
    object_positions=lambda sim: {"target": _reach_target(sim)},
)
