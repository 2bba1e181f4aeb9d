"""Writing episodes read from a foreign dataset into the store (shared by every importer)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from robolearn.store import Store

if TYPE_CHECKING:
    from robolearn.config import RunConfig

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class ImportReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: int = Field(description="The run the imported episodes belong to.")
    episode_ids: list[int] = Field(description="New store episodes, in dataset order.")
    frames: int = Field(description="Observations written: steps + 1 final per episode.")


@dataclass(frozen=True)
class RobotSpec:
    """The sizes the robot of the target run uses, which imported episodes must match for
    its learner to load them.

    Attributes:
        proprio_dim: values per proprioception vector (ee xyz, quaternion wxyz, gripper).
        action_dim: values per action (ee delta xyz [+ yaw] + gripper).
        cameras: camera name -> (height, width) the run's policy sees; None: not checked.
    """

    proprio_dim: int
    action_dim: int
    cameras: dict[str, tuple[int, int]] | None = None

    @classmethod
    def default(cls) -> RobotSpec:
        """robolearn's robots without a run config: 8-D proprio, 4-D actions (no yaw)."""
        from robolearn.actionspace import ActionScale
        from robolearn.envs.spaces import PROPRIO_DIM

        return cls(PROPRIO_DIM, ActionScale().action_dim)

    @classmethod
    def from_config(cls, config: RunConfig) -> RobotSpec:
        from robolearn.envs.spaces import PROPRIO_DIM

        return cls(PROPRIO_DIM, config.actor.action_scale.action_dim,
                   {c.name: c.image_hw() for c in config.cameras})


@dataclass
class ImportedEpisode:
    """One episode read from a foreign dataset and validated, ready to write.

    Arrays follow the store's layout: T+1 observations (images, proprio, state, joint_pos;
    the last is the final observation) and T steps (action, reward, success, intervention,
    stamp_ns). `meta` may carry store fields (task aside): seed, policy, is_demo, outcome,
    end_reason, direction.
    """

    task: str
    images: dict[str, np.ndarray]  # camera -> [T+1, H, W, 3]
    proprio: np.ndarray  # [T+1, P]
    action: np.ndarray  # [T, A]
    reward: np.ndarray
    success: np.ndarray
    intervention: np.ndarray
    stamp_ns: np.ndarray
    state: np.ndarray | None
    joint_pos: np.ndarray | None
    meta: dict[str, Any] = field(default_factory=dict)


def write_episodes(store: Store, episodes: Iterable[ImportedEpisode], *, total: int,
                   fps: float, run_name: str, source: dict[str, Any], is_demo: bool | None,
                   default_policy: str, progress: Progress | None) -> ImportReport:
    """Write validated episodes into a new run (kind "import"), each atomically, as they
    come: an importer may yield them one at a time, so only one is held in memory.

    Raises:
        StoreError: writing failed; the run is marked failed, episodes already written stay.
    """
    run_id = store.create_run(run_name, {"import": source}, kind="import")
    ids: list[int] = []
    frames = 0
    try:
        for n, ep in enumerate(episodes):
            m = ep.meta
            cameras = list(ep.images)
            writer = store.begin_episode(
                run_id, ep.task, cameras, seed=m.get("seed"),
                policy=str(m.get("policy", default_policy)),
                is_demo=bool(m.get("is_demo", True)) if is_demo is None else is_demo,
                direction=m.get("direction"), fps=fps,
            )
            with writer:
                for t in range(ep.action.shape[0]):
                    writer.add_step(
                        {c: ep.images[c][t] for c in cameras}, ep.proprio[t], ep.action[t],
                        float(ep.reward[t]), bool(ep.success[t]),
                        intervention=bool(ep.intervention[t]), stamp_ns=int(ep.stamp_ns[t]),
                        state=None if ep.state is None else ep.state[t],
                        joint_pos=None if ep.joint_pos is None else ep.joint_pos[t],
                    )
                outcome = m.get("outcome") or ("success" if ep.success.any() else "failure")
                if outcome not in ("success", "failure", "timeout", "aborted"):
                    outcome = "failure"
                ids.append(writer.finish(
                    {c: ep.images[c][-1] for c in cameras}, ep.proprio[-1], outcome,
                    end_reason=str(m.get("end_reason", "imported")),
                    final_state=None if ep.state is None else ep.state[-1],
                    final_joint_pos=None if ep.joint_pos is None else ep.joint_pos[-1],
                ))
            frames += ep.action.shape[0] + 1
            if progress is not None:
                progress(n + 1, total)
    except BaseException:
        try:
            store.end_run(run_id, "failed")
        except Exception as cleanup_exc:  # the original error matters more; say both
            log.error("could not mark import run %d failed: %s", run_id, cleanup_exc)
        log.error("import into run %d failed after %d of %d episodes", run_id, len(ids), total)
        raise
    store.end_run(run_id, "finished")
    log.info("imported %d episodes (%d frames) into run %d", len(ids), frames, run_id)
    return ImportReport(run_id=run_id, episode_ids=ids, frames=frames)
