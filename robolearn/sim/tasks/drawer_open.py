"""drawer_open: pull the closed drawer open."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from robolearn.sim.tasks.common import Task
from robolearn.sim.tasks.drawer import (
    drawer_expert,
    drawer_positions,
    drawer_slide,
    place_cabinet,
)

if TYPE_CHECKING:
    from robolearn.sim.panda import PandaSim

_DRAWER_OPEN_M = 0.12  # success: drawer pulled out at least this far


def _drawer_open_reset(sim: PandaSim, rng: np.random.Generator) -> None:
    place_cabinet(sim, rng, 0.0)


DRAWER_OPEN = Task(
    name="drawer_open",
    description="pull the drawer open",
    reset=_drawer_open_reset,
    success=lambda sim: drawer_slide(sim) > _DRAWER_OPEN_M,
    make_expert=drawer_expert(opening=True),
    object_positions=drawer_positions,
    scene="drawer",
)
