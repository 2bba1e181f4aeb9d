"""bin_a_to_b: move the cube from the yellow bin (a) to the blue bin (b)."""

from __future__ import annotations

from robolearn.sim.tasks.bins import bin_expert, bin_positions, bin_reset, cube_in_bin
from robolearn.sim.tasks.common import Task

BIN_A_TO_B = Task(
    name="bin_a_to_b",
    description="move the red cube from the yellow bin to the blue bin",
    reset=bin_reset("bin_a"),
    success=lambda sim: cube_in_bin(sim, "bin_b"),
    make_expert=bin_expert("bin_b"),
    object_positions=bin_positions,
    scene="bins",
)
