"""bin_b_to_a: move the cube from the blue bin (b) to the yellow bin (a)."""

from __future__ import annotations

from robolearn.sim.tasks.bins import bin_expert, bin_positions, bin_reset, cube_in_bin
from robolearn.sim.tasks.common import Task

BIN_B_TO_A = Task(
    name="bin_b_to_a",
    description="move the red cube from the blue bin to the yellow bin",
    reset=bin_reset("bin_b"),
    success=lambda sim: cube_in_bin(sim, "bin_a"),
    make_expert=bin_expert("bin_a"),
    object_positions=bin_positions,
    scene="bins",
)
