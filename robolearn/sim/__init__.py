"""Built-in MuJoCo simulation of a Franka Panda: tasks, scripted experts, cameras.

from robolearn.sim import PandaSim, TASKS
sim = PandaSim("pick_cube")
sim.reset(seed=0)
sim.step(sim.expert_action())
"""

from robolearn.sim.model import DQ_MAX_RAD_S, HOME_Q_RAD, Q_MAX_RAD, Q_MIN_RAD
from robolearn.sim.panda import CAMERAS, SIM_CAMERAS, PandaSim, SimState
from robolearn.sim.tasks import TASKS

__all__ = [
    "CAMERAS",
    "DQ_MAX_RAD_S",
    "HOME_Q_RAD",
    "Q_MAX_RAD",
    "Q_MIN_RAD",
    "SIM_CAMERAS",
    "TASKS",
    "PandaSim",
    "SimState",
]
