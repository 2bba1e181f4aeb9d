"""The actor's observation as a typed object: cameras in their own mapping, apart from the
arm's proprioception, joints, depth and the sim's privileged state.

Gymnasium users get the flat dict of `robolearn.envs.spaces` (camera names beside `proprio`,
`joint_pos`, `state` and `<camera>_depth_mm`); `Observation.flat()` is the one place that
layout is made, and `camera_name_problem` is what keeps a camera name from landing on one of
its other keys (the run config refuses such a name at load).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

PROPRIO_KEY = "proprio"
JOINT_POS_KEY = "joint_pos"
PRIVILEGED_KEY = "state"
DEPTH_SUFFIX = "_depth_mm"
RESERVED_KEYS = frozenset({PROPRIO_KEY, JOINT_POS_KEY, PRIVILEGED_KEY})
"""Flat observation keys that are not camera names."""


def camera_name_problem(name: str) -> str | None:
    """Why `name` cannot name a camera (it would overwrite another key of the flat
    observation), or None when it can."""
    if name in RESERVED_KEYS:
        return (f"camera name {name!r} is reserved for the observation's {name!r} entry; "
                f"rename the camera (reserved: {sorted(RESERVED_KEYS)})")
    if name.endswith(DEPTH_SUFFIX):
        return (f"camera name {name!r} ends in {DEPTH_SUFFIX!r}, which the observation uses "
                "for a camera's depth map; rename the camera")
    return None


@dataclass(frozen=True)
class Observation:
    """One observation.

    Attributes:
        images: camera name -> uint8 [H, W, 3].
        proprio: float32 [8]: end-effector position (3, m), orientation wxyz (4), gripper
            width (1, m).
        joint_pos: float32 measured joint positions, rad (for the record; policies do not
            read it).
        depth_mm: camera name -> uint16 [H, W] millimetres aligned to its image (0 = no
            reading), for cameras configured with depth.
        privileged: sim only, float32: object positions and any run-specific suffix (the
            reset-free direction); None on a real rig or when not observed.
    """

    images: Mapping[str, npt.NDArray[np.uint8]]
    proprio: npt.NDArray[np.float32]
    joint_pos: npt.NDArray[np.float32]
    depth_mm: Mapping[str, npt.NDArray[np.uint16]] = field(default_factory=dict)
    privileged: npt.NDArray[np.float32] | None = None

    def flat(self) -> dict[str, np.ndarray]:
        """The Gymnasium dict observation (`robolearn.envs.spaces` layout).

        Raises:
            ValueError: a camera is named like another key (`camera_name_problem`).
        """
        out: dict[str, np.ndarray] = {}
        for name, image in self.images.items():
            problem = camera_name_problem(name)
            if problem is not None:
                raise ValueError(problem)
            out[name] = image
        for name, depth in self.depth_mm.items():
            out[name + DEPTH_SUFFIX] = depth
        out[PROPRIO_KEY] = self.proprio
        out[JOINT_POS_KEY] = self.joint_pos
        if self.privileged is not None:
            out[PRIVILEGED_KEY] = self.privileged
        return out


__all__ = ["DEPTH_SUFFIX", "RESERVED_KEYS", "Observation", "camera_name_problem"]
