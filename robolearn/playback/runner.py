"""Replay a logged episode in simulation and store the replay as a new, linked episode.

Two modes:

- "joints": the sim arm follows the logged joint positions (one waypoint per control
  period), the gripper the logged gripper commands. Reproduces the logged path of any
  episode that logged joint positions, real or sim, up to the servo lag.
- "actions": the logged normalised actions go through the sim's own end-effector
  controller, as the actor sent them. On a sim episode with its seed this reproduces the
  run; on a real episode it shows what the same commands do in the sim.

Optionally a policy acts on every replayed observation and its actions are compared with
the logged ones (what would this checkpoint have done here?).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from robolearn.actionspace import ActionScale
from robolearn.errors import ReplayError
from robolearn.playback.backend import MujocoBackend, ReplayBackend, SimObservation
from robolearn.playback.compare import REPLAY_POLICY_PREFIX, tracking_errors
from robolearn.store import EpisodeData, EpisodeWriter, Store

log = logging.getLogger(__name__)

ReplayMode = Literal["joints", "actions"]
BACKENDS = ("mujoco", "rlbench")
_DEFAULT_IMAGE_SIZE = (84, 84)


class ReplayPolicy(Protocol):
    """What replay needs of a policy (robolearn.actor.policies.Policy fits)."""

    def reset(self) -> None: ...

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


class PolicyComparison(BaseModel):
    """A policy's actions on the replayed observations against the logged actions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str = Field(description="What acted (checkpoint path or policy name).")
    action_error: list[float] = Field(
        description="Per step: Euclidean distance between the policy's and the logged "
                    "normalised action (all dimensions, each in [-1, 1]).")
    action_mae: float = Field(description="Mean absolute difference over steps and dims.")
    action_error_max: float = Field(description="Largest per-step action_error.")
    gripper_agreement: float = Field(
        description="Fraction of steps where the policy's gripper command has the logged "
                    "one's sign (open vs close).")


class ReplayReport(BaseModel):
    """The result of one replay."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_episode_id: int = Field(description="The logged episode replayed.")
    replay_episode_id: int | None = Field(description="The stored replay (None: not stored).")
    backend: str = Field(description="Simulator: 'mujoco' or 'rlbench'.")
    mode: ReplayMode = Field(description="What the replay followed.")
    task: str = Field(description="Sim task the replay ran.")
    steps: int = Field(description="Control steps replayed.")
    tracking_error_m: list[float] = Field(
        description="End-effector position error per observation (index 0 = start), metres.")
    tracking_error_mean_m: float = Field(description="Mean tracking error, metres.")
    tracking_error_max_m: float = Field(description="Max tracking error, metres.")
    source_success: bool = Field(description="Whether the logged episode succeeded.")
    replay_success: bool = Field(description="Whether the task succeeded in the sim.")
    policy: PolicyComparison | None = Field(
        None, description="The evaluated policy's actions against the logged ones.")


def _run_settings(store: Store, data: EpisodeData) -> tuple[float, ActionScale]:
    """The logged run's control rate and action scale (defaults for foreign episodes)."""
    config = store.get_run(data.record.run_id).config
    actor = config.get("actor", {}) if isinstance(config, dict) else {}
    control_hz = float(actor.get("control_hz", data.record.fps))
    scale_fields = actor.get("action_scale") or {}
    try:
        scale = ActionScale(**scale_fields)
    except TypeError as exc:
        raise ReplayError(f"episode {data.record.id}: its run's action_scale {scale_fields} "
                          "is not understood") from exc
    return control_hz, scale


def _sim_cameras(data: EpisodeData) -> tuple[tuple[str, ...], tuple[int, int]]:
    """Render the source's cameras where the sim has them (same size, for side-by-side
    videos), else every sim camera at the default size."""
    from robolearn.sim import CAMERAS

    names = tuple(c for c in data.record.cameras if c in CAMERAS) or CAMERAS
    sizes = {data.images(c).shape[1:3] for c in names if c in data.record.cameras}
    size = sizes.pop() if len(sizes) == 1 else _DEFAULT_IMAGE_SIZE
    if not all(8 <= s <= 256 for s in size):
        size = _DEFAULT_IMAGE_SIZE
    return names, (int(size[0]), int(size[1]))


def make_backend(
    name: str,
    task: str,
    *,
    cameras: tuple[str, ...],
    image_size: tuple[int, int],
    control_hz: float,
    scale: ActionScale,
    render: bool = True,
) -> ReplayBackend:
    """Build the named simulator backend.

    Raises:
        ReplayError: unknown backend, or RLBench / CoppeliaSim missing.
    """
    if name == "mujoco":
        return MujocoBackend(task, cameras=cameras, image_size=image_size,
                             control_hz=control_hz, scale=scale, render=render)
    if name == "rlbench":
        from robolearn.playback.rlbench import RLBenchBackend

        return RLBenchBackend.launch(task, cameras=cameras, image_size=image_size)
    raise ReplayError(f"unknown replay backend {name!r}; choose one of {list(BACKENDS)}")


def _check_source(data: EpisodeData, mode: ReplayMode, num_joints: int,
                  scale: ActionScale) -> None:
    arrays = data.arrays
    where = f"episode {data.record.id}"
    if mode == "joints":
        joints = arrays.get("joint_pos")
        if joints is None:
            raise ReplayError(f"{where} logged no joint positions (recorded before joint "
                              "logging, or imported without them); replay it with "
                              "--mode actions")
        if joints.shape[1] != num_joints:
            raise ReplayError(f"{where} logged {joints.shape[1]} joints, the sim arm has "
                              f"{num_joints}; replay it with --mode actions")
    elif mode == "actions":
        if arrays["action"].shape[1] != scale.action_dim:
            raise ReplayError(f"{where}: actions have {arrays['action'].shape[1]} dims, the "
                              f"run's action scale expects {scale.action_dim}")
    else:
        raise ReplayError(f"unknown replay mode {mode!r}; choose 'joints' or 'actions'")


def replay_episode(
    store: Store,
    episode_id: int,
    *,
    mode: ReplayMode = "joints",
    backend: str | ReplayBackend = "mujoco",
    task: str | None = None,
    policy: ReplayPolicy | None = None,
    policy_name: str = "",
    record: bool = True,
    render: bool = True,
    cameras: tuple[str, ...] | None = None,
    image_size: tuple[int, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Replay a stored episode in simulation.

    Args:
        store: the open store holding the episode; the replay is stored there too.
        episode_id: the logged episode.
        mode: "joints" (follow the logged joint positions) or "actions" (send the logged
            actions through the sim's controller).
        backend: "mujoco", "rlbench", or a ready `ReplayBackend` (the caller closes it).
        task: sim task; default the episode's own (required for real-rig episodes).
        policy: also evaluate this policy on every replayed observation.
        policy_name: how the report names the policy.
        record: store the replay as a new episode linked to the source (in a new run).
        render: render the sim cameras (False: tracking only, nothing to look at).
        cameras, image_size: what to render (default: the source's cameras where the sim
            has them, at the source's size); a pixel policy needs its own cameras and size.
        progress: called with (steps done, total) after every step.

    Returns:
        The report: tracking error per step, outcomes, the stored replay's id.

    Raises:
        ReplayError: the episode cannot be replayed in this mode or on this backend.
        StoreError: the episode is missing, incomplete or unreadable.
    """
    data = store.load_episode(episode_id)
    source = data.record
    task = task or source.task
    if not task:
        raise ReplayError(f"episode {episode_id} has no sim task (recorded on a real rig?); "
                          "pass the task to replay it on, e.g. --task pick_cube")
    control_hz, scale = _run_settings(store, data)
    default_cameras, default_size = _sim_cameras(data)
    cameras = cameras or default_cameras
    image_size = image_size or default_size
    owned = isinstance(backend, str)
    sim = (make_backend(backend, task, cameras=cameras, image_size=image_size,
                        control_hz=control_hz, scale=scale, render=render)
           if isinstance(backend, str) else backend)
    try:
        if mode in ("joints", "actions") and mode not in sim.modes:
            raise ReplayError(f"the {sim.name} backend cannot replay in {mode} mode; it "
                              f"supports {list(sim.modes)}")
        _check_source(data, mode, sim.num_joints, scale)
        return _replay(store, data, sim, mode=mode, task=task, control_hz=control_hz,
                       policy=policy, policy_name=policy_name, record=record,
                       progress=progress)
    finally:
        if owned:
            sim.close()


def _replay(
    store: Store,
    data: EpisodeData,
    sim: ReplayBackend,
    *,
    mode: ReplayMode,
    task: str,
    control_hz: float,
    policy: ReplayPolicy | None,
    policy_name: str,
    record: bool,
    progress: Callable[[int, int], None] | None,
) -> ReplayReport:
    source = data.record
    actions = data.arrays["action"]
    steps = source.num_steps
    durations = step_durations(data.arrays["stamp_ns"], 1.0 / control_hz)
    obs = sim.reset(source.seed)
    if mode == "joints":
        obs = sim.move_to_joints(data.arrays["joint_pos"][0])
    if policy is not None:
        policy.reset()

    run_id: int | None = None
    writer: EpisodeWriter | None = None
    if record:
        run_id = store.create_run(
            f"replay of episode {source.id}",
            {"replay": {"source_episode_id": source.id, "mode": mode, "backend": sim.name,
                        "task": task, "source_run_id": source.run_id}},
            kind="sim",
        )
        writer = store.begin_episode(
            run_id, task, list(sim.camera_names), seed=source.seed,
            policy=f"{REPLAY_POLICY_PREFIX}{mode}", source_episode_id=source.id,
            fps=source.fps,
        )
    proprio = [obs.proprio]
    policy_actions: list[np.ndarray] = []
    success = False
    try:
        for t in range(steps):
            if policy is not None:
                policy_actions.append(np.asarray(policy.act(obs.as_policy_obs()),
                                                 dtype=np.float32))
            action = actions[t]
            if mode == "joints":
                gripper_close = float(np.clip((action[-1] + 1.0) / 2.0, 0.0, 1.0))
                next_obs = sim.follow_joints(data.arrays["joint_pos"][t + 1], gripper_close,
                                             float(durations[t]))
            else:
                next_obs = sim.apply_action(action)
            step_success = sim.success()
            success = success or step_success
            if writer is not None:
                _add_step(writer, obs, action, step_success, t, data)
            obs = next_obs
            proprio.append(obs.proprio)
            if progress is not None:
                progress(t + 1, steps)
        replayed = np.stack(proprio)
        if not sim.shares_world_frame:
            # Another simulator's world frame: compare the paths from a common start.
            replayed[:, :3] += data.arrays["proprio"][0, :3] - replayed[0, :3]
        errors = tracking_errors(data.arrays["proprio"], replayed)
        replay_id = None
        if writer is not None:
            replay_id = writer.finish(
                dict(obs.images), obs.proprio, "success" if success else "failure",
                end_reason=f"replay ({mode}) of episode {source.id}",
                final_state=obs.state,
                final_joint_pos=obs.joint_pos_rad,
            )
    except BaseException:
        if writer is not None:
            writer.abort("replay failed")
        if run_id is not None:
            store.end_run(run_id, "failed")
        raise
    if run_id is not None:
        store.end_run(run_id, "finished")
    report = ReplayReport(
        source_episode_id=source.id,
        replay_episode_id=replay_id,
        backend=sim.name,
        mode=mode,
        task=task,
        steps=steps,
        tracking_error_m=[float(e) for e in errors],
        tracking_error_mean_m=float(errors.mean()),
        tracking_error_max_m=float(errors.max()),
        source_success=source.outcome == "success",
        replay_success=success,
        policy=(_compare_actions(policy_name or "policy", np.stack(policy_actions), actions)
                if policy is not None and steps else None),
    )
    log.info("replay of episode %d (%s, %s): %d steps, tracking error mean %.1f mm max "
             "%.1f mm, success %s (logged %s)", source.id, sim.name, mode, steps,
             report.tracking_error_mean_m * 1e3, report.tracking_error_max_m * 1e3,
             report.replay_success, report.source_success)
    return report


def step_durations(stamp_ns: np.ndarray, period_s: float) -> np.ndarray:
    """Seconds from each logged observation to the next, float64 [T].

    The actor stamps every step with its wake time; a late tick (a loaded machine) moved
    the arm further than one period, and joint replay must give it that long too. The last
    step, and every step of a log without usable stamps (imported data), takes one period.
    """
    stamps = np.asarray(stamp_ns, dtype=np.int64)
    durations = np.full(stamps.shape[0], period_s)
    gaps = np.diff(stamps) / 1e9
    # Stamps must increase by a plausible period; anything else is not a wall clock.
    if stamps.shape[0] > 1 and np.all(gaps > 0) and np.all(gaps < 10 * period_s):
        durations[:-1] = gaps
    return durations


def _add_step(writer: EpisodeWriter, obs: SimObservation, action: np.ndarray, success: bool,
              t: int, data: EpisodeData) -> None:
    writer.add_step(
        dict(obs.images), obs.proprio, action, 1.0 if success else 0.0, success,
        # Sim time of the step, so the replay's timeline lines up with the source's fps.
        stamp_ns=round(t * 1e9 / data.record.fps),
        state=obs.state, joint_pos=obs.joint_pos_rad,
    )


def _compare_actions(name: str, policy_actions: np.ndarray,
                     logged: np.ndarray) -> PolicyComparison:
    if policy_actions.shape != logged.shape:
        raise ReplayError(f"policy {name}: its actions have shape {policy_actions.shape[1:]}, "
                          f"the logged ones {logged.shape[1:]}; is it for this task's action "
                          "space?")
    diff = policy_actions.astype(np.float64) - logged.astype(np.float64)
    per_step = np.linalg.norm(diff, axis=1)
    agree = np.sign(policy_actions[:, -1]) == np.sign(logged[:, -1])
    return PolicyComparison(
        policy=name,
        action_error=[float(e) for e in per_step],
        action_mae=float(np.abs(diff).mean()),
        action_error_max=float(per_step.max()),
        gripper_agreement=float(agree.mean()),
    )
