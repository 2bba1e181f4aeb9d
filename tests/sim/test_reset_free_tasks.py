"""Reset-free task pairs in the sim: the scripted experts chain forward and backward episodes
with no reset in between, and switching tasks leaves the world untouched."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.errors import ConfigError
from robolearn.sim import PandaSim
from robolearn.sim.model import DRAWER_TRAVEL_M
from robolearn.sim.tasks import TASK_PAIRS


def _run_expert(sim: PandaSim, steps: int = 100) -> bool:
    for _ in range(steps):
        sim.step(sim.expert_action())
        if sim.success():
            return True
    return False


@pytest.mark.parametrize("forward", ["drawer_open", "bin_a_to_b"])
def test_experts_chain_both_directions_without_a_reset(forward: str) -> None:
    backward = TASK_PAIRS[forward]
    assert TASK_PAIRS[backward] == forward
    sim = PandaSim(forward, render=False)
    sim.reset(seed=3)
    outcomes = []
    for k in range(4):
        task = forward if k % 2 == 0 else backward
        if k:
            sim.continue_episode(task)
        assert sim.task == task and not sim.success()  # each episode starts undone
        outcomes.append(_run_expert(sim))
    assert outcomes == [True] * 4


def test_continue_episode_keeps_the_world_and_switches_the_task() -> None:
    sim = PandaSim("bin_a_to_b", render=False)
    sim.reset(seed=1)
    assert _run_expert(sim)
    before = {k: v.copy() for k, v in sim.object_positions().items()}
    q_before, qpos_before = sim.state().joint_pos_rad, sim.data.qpos.copy()
    sim.continue_episode("bin_b_to_a")
    np.testing.assert_array_equal(sim.data.qpos, qpos_before)
    np.testing.assert_array_equal(sim.state().joint_pos_rad, q_before)
    for k, v in sim.object_positions().items():
        np.testing.assert_array_equal(v, before[k])
    assert sim.task == "bin_b_to_a" and "yellow bin" in sim.description.split("to")[-1]
    assert not sim.success()  # the cube sits in bin b: bin_b_to_a is not done


def test_continue_episode_refuses_other_scenes_and_changes_nothing() -> None:
    sim = PandaSim("drawer_open", render=False)
    sim.reset(seed=0)
    with pytest.raises(ConfigError, match="do not share a scene"):
        sim.continue_episode("bin_a_to_b")
    with pytest.raises(ConfigError, match="unknown task"):
        sim.continue_episode("drawer_smash")
    assert sim.task == "drawer_open"
    reach = PandaSim("reach", render=False)
    with pytest.raises(ConfigError, match="do not share a scene"):
        reach.continue_episode("push_cube")
    reach.continue_episode("reach")  # the same task is always allowed


def test_the_drawer_stays_within_its_stops_when_the_arm_keeps_pushing_or_pulling() -> None:
    # A soft stop let the arm drive the drawer 4 cm into the cabinet and 2 cm past its travel:
    # start states no demonstration ever shows, met again and again in reset-free practice.
    sim = PandaSim("drawer_close", render=False)
    sim.reset(seed=2)
    assert _run_expert(sim)
    slides = []
    for _ in range(20):  # go on pushing, full speed, into the closed drawer
        sim.step(np.array([1.0, 0.0, 0.0, 1.0]))
        slides.append(sim.joint_value("drawer_slide"))
    assert min(slides) > -0.003
    sim = PandaSim("drawer_open", render=False)
    sim.reset(seed=2)
    assert _run_expert(sim)
    for _ in range(20):  # go on pulling the open drawer towards the robot
        sim.step(np.array([-1.0, 0.0, 0.0, 1.0]))
        slides.append(sim.joint_value("drawer_slide"))
    assert max(slides) < DRAWER_TRAVEL_M + 0.003
