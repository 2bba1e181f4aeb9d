"""The sim task registry: description, seeded initial state, sparse success, scripted expert.

Experts are stateful waypoint followers on privileged object state: each phase names an
end-effector target and a gripper command; the action is the proportional move toward the
target, clipped to the action range. They use only `PandaSim`'s public read methods, so they
behave the same whatever the action scale.

One module per task; tasks that share a scene (the reset-free pairs) share its module
(`drawer`, `bins`), and `common` holds the `Task` record and the expert every task uses.
"""

from __future__ import annotations

import logging

from robolearn.sim.tasks.bin_a_to_b import BIN_A_TO_B
from robolearn.sim.tasks.bin_b_to_a import BIN_B_TO_A
from robolearn.sim.tasks.common import CLOSED, OPEN, Phase, Task, WaypointExpert
from robolearn.sim.tasks.drawer_close import DRAWER_CLOSE
from robolearn.sim.tasks.drawer_open import DRAWER_OPEN
from robolearn.sim.tasks.pick_cube import PICK_CUBE
from robolearn.sim.tasks.push_cube import PUSH_CUBE
from robolearn.sim.tasks.reach import REACH

log = logging.getLogger(__name__)

TASK_REGISTRY: dict[str, Task] = {
    t.name: t
    for t in (REACH, PUSH_CUBE, PICK_CUBE, DRAWER_OPEN, DRAWER_CLOSE, BIN_A_TO_B, BIN_B_TO_A)
}
# Reset-free pairs: each task's reverse, which undoes it without a reset.
TASK_PAIRS: dict[str, str] = {
    "drawer_open": "drawer_close",
    "drawer_close": "drawer_open",
    "bin_a_to_b": "bin_b_to_a",
    "bin_b_to_a": "bin_a_to_b",
}
TASKS: tuple[str, ...] = tuple(TASK_REGISTRY)

__all__ = [
    "BIN_A_TO_B",
    "BIN_B_TO_A",
    "CLOSED",
    "DRAWER_CLOSE",
    "DRAWER_OPEN",
    "OPEN",
    "PICK_CUBE",
    "PUSH_CUBE",
    "REACH",
    "TASKS",
    "TASK_PAIRS",
    "TASK_REGISTRY",
    "Phase",
    "Task",
    "WaypointExpert",
]
