"""drawer_close: push the open drawer closed."""

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

_DRAWER_CLOSED_M = 0.02  # success: drawer pushed in to within this


def _drawer_close_reset(sim: PandaSim, rng: np.random.Generator) -> None:
    place_cabinet(sim, rng, rng.uniform(0.15, 0.18))


DRAWER_CLOSE = Task(
    name="drawer_close",
    description="push the drawer closed",
    reset=_drawer_close_reset,
    success=lambda sim: drawer_slide(sim) < _DRAWER_CLOSED_M,
    make_expert=drawer_expert(opening=False),
    object_positions=drawer_positions,
    scene="drawer",
)
