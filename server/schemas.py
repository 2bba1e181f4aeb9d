"""Request and response bodies of the REST API, separate from the SQL tables.

Request bodies forbid unknown fields and bound every string and number, so bad input is a
422 with the offending field named and never reaches the database.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from robolearn.actor.telemetry import Telemetry

T = TypeVar("T")

Role = Literal["viewer", "operator", "admin"]
# Printable text without control characters (NUL and friends would be stored verbatim).
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Text64 = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)]
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
INT64_MAX = 2**63 - 1
NonNegInt = Annotated[int, Field(ge=0, le=INT64_MAX)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Response, Generic[T]):
    """One page of a list, newest first unless the route says otherwise."""

    items: list[T]
    total: int = Field(description="Rows matching the filters, over all pages.")
    offset: int
    limit: int


# -- auth and users -------------------------------------------------------------------------


class LoginRequest(Request):
    username: Text64
    password: Password


class UserPublic(Response):
    id: int
    username: str
    role: Role
    active: bool
    must_change_password: bool = Field(
        False, description="true: the account still has its one-time password; every route "
        "but POST /api/auth/password, /api/auth/logout and GET /api/auth/me answers 403 "
        "(code password_change_required) until it is changed.")
    created_at: dt.datetime


class LoginResponse(Response):
    user: UserPublic
    csrf_token: str = Field(description="Send in the X-CSRF-Token header on every "
                            "state-changing request made with the session cookie.")
    expires_at: dt.datetime


class TokenCreate(Request):
    lifetime_s: float | None = Field(
        None, ge=60, le=366 * 86400, description="Token lifetime, s; None: the server default."
    )


class TokenPublic(Response):
    token: str = Field(description="Send as `Authorization: Bearer <token>`. Shown only once.")
    expires_at: dt.datetime


class PasswordChange(Request):
    current_password: Password
    new_password: Password


class UserCreate(Request):
    username: Text64
    password: Password
    role: Role = "viewer"


class UserUpdate(Request):
    role: Role | None = None
    active: bool | None = None
    password: Password | None = Field(None, description="Set a new password (admin reset).")


class Message(Response):
    detail: str


# -- runs -----------------------------------------------------------------------------------


class RunCreate(Request):
    config: Annotated[str, StringConstraints(min_length=1, max_length=200,
                                             pattern=r"^[A-Za-z0-9_.-]+$")] = Field(
        description="Id of one of the configs the deployment allows (GET /api/runs/configs): "
        "a run's sockets, security and paths always come from an admin's file."
    )
    name: Text200 | None = Field(None, description="Run name; default: the config's name.")
    overrides: dict[str, Any] = Field(
        default_factory=dict, max_length=32,
        description="Dotted config fields to change, e.g. {\"actor.episodes\": 5}; only the "
        "fields listed in GET /api/runs/configs (`overridable`) are accepted.",
    )

    @field_validator("config", mode="before")
    @classmethod
    def _not_a_config(cls, value: Any) -> Any:
        if isinstance(value, dict):
            raise ValueError(
                "the service does not take run configs in a request (they set sockets, "
                "security and paths); send the id of an allowed config from "
                "GET /api/runs/configs, plus `name` and safe `overrides`")
        return value


class AllowedConfigPublic(Response):
    id: str = Field(description="Send as `config` to POST /api/runs.")
    path: str
    name: str | None = Field(description="The config's run name (None: it does not load).")
    robot: str | None
    task: str | None
    learner: bool | None
    problem: str | None = Field(description="Why the file cannot be used, if it cannot.")


class AllowedConfigs(Response):
    configs: list[AllowedConfigPublic]
    overridable: dict[str, str] = Field(
        description="Fields an operator may override when creating a run: name -> meaning.")


class RunPublic(Response):
    id: int
    name: str
    kind: str
    status: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    end_reason: str = Field("", description="Why the run ended when it did not end by "
                            "itself, e.g. 'died: ...' after its processes were killed.")
    processes: dict[str, str] = Field(
        default_factory=dict,
        description="Processes this service started for the run: name -> running/exited(rc).",
    )
    started_by: str = Field("", description="Who started the run's processes: 'this service', "
                            "'robolearn up (pid N on HOST)', or '' when no process owns it.")
    live: bool = Field(False, description="Its processes run now (whoever started them): "
                       "no other run may start on the robot until it stops.")


class RunDetail(RunPublic):
    config: dict[str, Any]


# -- episodes and steps ---------------------------------------------------------------------


class EpisodePublic(Response):
    id: int
    run_id: int
    task: str
    direction: str | None
    seed: int | None
    policy: str
    is_demo: bool
    status: str
    outcome: str | None
    end_reason: str
    num_steps: int
    cameras: list[str]
    fps: float
    created_at: dt.datetime
    finished_at: dt.datetime | None
    source_episode_id: int | None
    has_intervention: bool
    robot: str | None = Field(None, description="The fleet robot that recorded it; None: "
                              "the run's one robot.")


class EpisodeDetail(EpisodePublic):
    video_urls: dict[str, str] = Field(description="Camera name -> MP4 URL (Range supported).")
    labels: int = Field(description="Success/failure frame labels on this episode.")


class StepScalars(Response):
    """Per-step series of one episode, index-aligned, for charts."""

    episode_id: int
    index: list[int]
    reward: list[float]
    success: list[bool]
    success_prob: list[float | None]
    q_value: list[float | None]
    intervention: list[bool]
    stamp_ns: list[int]
    scalars: dict[str, list[float | None]] = Field(
        description="Other per-step numbers by name; None where a step lacks one."
    )


# -- labels ---------------------------------------------------------------------------------


class LabelCreate(Request):
    step_index: NonNegInt = Field(description="Frame index: 0..num_steps (the last is the "
                                  "final observation).")
    camera: Text64 | None = Field(None, description="None: the label applies to every camera.")
    label: Literal["success", "failure"] = "success"


class LabelPublic(Response):
    id: int
    episode_id: int
    step_index: int
    camera: str | None
    label: str
    user_id: int | None
    created_at: dt.datetime


# -- preferences ----------------------------------------------------------------------------


class Segment(Response):
    episode_id: int
    start: int
    end: int
    video_urls: dict[str, str]
    fps: float


class PreferenceQueryPublic(Response):
    id: int
    run_id: int
    left: Segment
    right: Segment
    lease_expires_at: dt.datetime


class NextQuery(Response):
    query: PreferenceQueryPublic | None = Field(
        description="None when there is nothing to answer (see detail)."
    )
    detail: str = ""
    pending: int = Field(description="Queries waiting for anyone, this one excluded.")


class PreferenceVersion(Response):
    """One trained preference model of a run and its agreement with held-out answers."""

    model_id: int
    version: int
    created_at: dt.datetime
    n_labels: int = Field(description="Answered pairs it trained on.")
    n_holdout: int = Field(description="Held-out strict answers it was measured on.")
    holdout_agreement: float | None = Field(
        description="Share of held-out answers it agrees with; None without any.")
    train_accuracy: float | None = Field(description="Agreement with its training answers.")


class PreferenceLoopStatus(Response):
    """Where preference collection stands for one training run."""

    run_id: int | None = Field(description="The run shown: the active training run, else "
                               "the newest training run; None when there is none.")
    run_name: str | None = None
    collecting: bool = Field(description="Queries and retraining happen now for this run.")
    detail: str = Field(description="One sentence on what happens, or why nothing does.")
    episodes: int = Field(0, description="Its training episodes (no evaluation, no replays).")
    asked: int = Field(0, description="Queries ever made for the run.")
    pending: int = Field(0, description="Its queries waiting (pending or leased).")
    answers: int = Field(0, description="Its live answers, skips excluded.")
    next_retrain_in: int | None = Field(
        None, description="Answers until the next retraining; None: retraining is off.")
    queries_per_episode: float | None = None
    versions: list[PreferenceVersion] = Field(
        default_factory=list, description="The run's ready models, oldest first.")


class PreferenceAnswerCreate(Request):
    answer: Literal["left", "right", "equal", "skip"]


class PreferenceAnswerPublic(Response):
    id: int
    query_id: int
    user_id: int | None
    answer: str
    created_at: dt.datetime
    undone: bool
    waited_s: float | None = Field(None, description="How long its query waited for this "
                                   "answer, s (answer time - the query's creation).")


# -- reward models --------------------------------------------------------------------------


class RewardModelPublic(Response):
    id: int
    run_id: int | None
    kind: str
    version: int
    status: str
    metrics: dict[str, Any]
    error: str | None
    created_at: dt.datetime


class TrainClassifierRequest(Request):
    run_id: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = Field(
        None, description="Train on this run's labels only; None: every run of the task."
    )


class JobPublic(Response):
    job: str
    status: Literal["queued", "running", "done", "failed"]
    detail: str = ""
    result: dict[str, Any] = Field(default_factory=dict,
                                   description="The job's report once done.")


# -- the reward-model loop: label counts, deployment to a run, scoring an episode ------------

PositiveId = Annotated[int, Field(ge=1, le=INT64_MAX)]


class LabelFramesCreate(Request):
    """Label many frames of one episode with one class at once (a held key's frames, or the
    whole episode)."""

    label: Literal["success", "failure"]
    frames: list[NonNegInt] | None = Field(
        None, max_length=100_000,
        description="Frame indices 0..num_steps; None: every frame of the episode (e.g. a "
        "failed episode, all of whose frames are failures).")


class LabelCounts(Response):
    """Labelled frames per class in the classifier's training selection (complete episodes
    of the run, or of every run, of rewards.classifier.task), as training would count them."""

    run_id: int | None
    task: str | None = Field(description="rewards.classifier.task; None: every task.")
    success: int = Field(description="Frames labelled success.")
    failure: int = Field(description="Frames labelled failure, plus the unmarked frames of "
                         "labelled episodes when rewards.classifier.unmarked is failure.")
    unmarked_as_failure: bool = Field(description="rewards.classifier.unmarked == failure.")
    episodes: int = Field(description="Episodes with at least one label.")
    conflicts: int = Field(description="Frames labelled both success and failure (training "
                           "refuses them; remove one).")
    source: str = Field(description="rewards.classifier.source; only `labels` uses these.")
    missing: str | None = Field(description="Why training would refuse these labels and what "
                                "to do; None when both classes are there.")


class DeploymentCreate(Request):
    run_id: PositiveId = Field(description="The run whose success source changes.")
    source: Literal["classifier", "clip"] = Field(
        description="classifier: a trained version (model_id); clip: the zero-shot CLIP "
        "source of the service's configured checkpoint.")
    model_id: PositiveId | None = Field(None, description="The classifier version's model id.")


class SuccessSourcePublic(Response):
    """Where a run's success signal comes from, as its stored config says."""

    run_id: int
    run_status: str
    sparse: str = Field(description="rewards.sparse of the run's config.")
    model_id: int | None = Field(description="The deployed classifier's model id (None: not "
                                 "a classifier, or a file that is not a registered model).")
    version: int | None
    threshold: float | None = Field(description="The deployed classifier's threshold.")
    model_path: str | None = Field(description="rewards.classifier.model_path (None: the "
                                   "newest ready classifier when the run starts).")
    deployed_at: dt.datetime | None = Field(description="Last deployment to this run.")
    restart_needed: bool = Field(description="The run is live and was started before the "
                                 "last deployment: its processes still use the old source.")
    note: str = Field(description="When and how the source takes effect, in words.")


class ClipStatus(Response):
    configured: bool
    model_name: str
    checkpoint: str | None
    detail: str = Field(description="What is configured, or what to do to configure it.")


class EpisodeProbabilities(Response):
    """A classifier's success probability on every frame of one episode."""

    episode_id: int
    model_id: int
    version: int
    threshold: float
    index: list[int] = Field(description="Frame indices 0..num_steps.")
    prob: list[float]


# -- metrics and audit ----------------------------------------------------------------------


class RobotMetrics(Response):
    """One fleet robot's practice in a run (complete, non-demo episodes)."""

    robot: str | None = Field(description="The fleet robot; None: the run's one robot.")
    episodes: int
    successes: int
    success_rate: float | None
    intervention_episodes: int = Field(description="Episodes an operator took over in.")
    env_steps: int
    robot_hours: float = Field(description="Sum of the episodes' recorded durations.")
    interventions_per_robot_hour: float | None


class RunMetrics(Response):
    run_id: int
    episodes: int
    complete: int
    successes: int
    success_rate: float | None
    demos: int
    interventions: int
    env_steps: int
    recent_success_rate: float | None = Field(description="Over the last 20 non-demo episodes.")
    checkpoints: int = Field(description="Learner checkpoints written while training on it.")
    latest_checkpoint_update_steps: int | None
    latest_checkpoint_at: dt.datetime | None
    episodes_per_outcome: dict[str, int]
    learner_demo_episodes: int | None = Field(
        None, description="Demonstration episodes the learner holds (from any run, e.g. "
        "`demos collect`'s), as its newest metrics row says; None: no learner row yet.")
    robots: list[RobotMetrics] = Field(
        default_factory=list, description="Per robot of a fleet (one entry, robot None, for "
        "a run of one robot); empty before the first complete episode.")


class LearnerMetricsPoint(Response):
    """One sample the learner wrote (every learner.metrics_every_s seconds)."""

    id: int
    created_at: dt.datetime
    session: str = Field(description="Learner process id: a restart starts a new series.")
    update_step: int = Field(description="Gradient updates so far (kept across --resume).")
    env_steps: int = Field(description="Environment steps received from actors so far.")
    episodes: int = Field(description="Actor episodes that entered the replay buffer.")
    updates_per_s: float = Field(description="Updates per second since the previous sample.")
    online_transitions: int = Field(description="Transitions in the online replay buffer.")
    demo_transitions: int = Field(
        description="Transitions in the demo buffer (demos, interventions, relabelled "
        "successes)."
    )
    online_episodes: int
    demo_episodes: int
    scalars: dict[str, float] = Field(
        description="The agent's latest numbers by name (critic_loss, loss, bc losses...)."
    )
    utd_target: float | None = Field(
        description="Updates per env step the learner aims for (learner.utd); None: no "
        "target (it trains as fast as it can), or a row from before it was recorded."
    )
    utd_held: float | None = Field(
        description="Updates per env step the learner held over its recent window "
        "(about 30 s); None while no env step came in it."
    )
    env_steps_per_s: float | None = Field(
        description="Env steps per second the learner received in that window."
    )
    utd_behind: bool = Field(
        description="The learner trained flat out and still held less than its "
        "target: the robot collects data faster than it learns from it."
    )


class LearnerMetricsPage(Response):
    """Learner samples of one run, oldest first; fetch the next page with after_id."""

    items: list[LearnerMetricsPoint]
    next_after_id: int | None = Field(
        description="Pass as after_id for the next page; None when this page was the last."
    )


class EpisodePoint(Response):
    """One complete episode on the learning curve."""

    episode_id: int
    env_steps: int = Field(
        description="Training environment steps of the run up to the end of this episode "
        "(non-demo, non-evaluation episodes; an evaluation episode sits at the count so far)."
    )
    num_steps: int
    episode_return: float = Field(description="Sum of the episode's recorded step rewards.")
    success: bool
    outcome: str | None
    is_eval: bool = Field(description="A greedy evaluation episode (policy '<name>-eval').")
    is_demo: bool
    has_intervention: bool
    finished_at: dt.datetime | None


class EpisodeCurve(Response):
    """Complete episodes of one run in order, for return and success against env steps."""

    items: list[EpisodePoint]
    next_after_id: int | None = Field(
        description="Pass as after_id for the next page; None when this page was the last."
    )


class AuditEntryPublic(Response):
    id: int
    user_id: int | None
    username: str | None
    action: str
    target: str
    detail: dict[str, Any]
    created_at: dt.datetime


# -- replays in simulation ------------------------------------------------------------------


class ReplayStart(Request):
    mode: Literal["joints", "actions"] = Field(
        "joints",
        description="'joints': the sim arm follows the logged joint positions (needs a joint "
        "log); 'actions': the logged actions go through the sim's own controller.",
    )


class ReplayPublic(EpisodePublic):
    """A stored replay: its own episode (source_episode_id names what it replayed)."""

    mode: str = Field(description="What the replay followed: 'joints' or 'actions'.")


class ReplayList(Response):
    episode_id: int = Field(description="The logged episode.")
    replays: list[ReplayPublic] = Field(description="Its complete replays, oldest first.")
    job: JobPublic | None = Field(
        description="The replay of this episode queued or running now, if any.")


class ReplayComparisonPublic(Response):
    """A replay against its source, for the side-by-side videos and the error chart."""

    source_episode_id: int
    replay_episode_id: int
    mode: str = Field(description="'joints' or 'actions'.")
    fps: float = Field(description="Frames per second of the source (the chart's time axis).")
    source_cameras: list[str]
    replay_cameras: list[str]
    source_video_urls: dict[str, str] = Field(description="Camera -> MP4 URL of the logged "
                                              "episode (Range supported).")
    replay_video_urls: dict[str, str] = Field(description="Camera -> MP4 URL of the replay.")
    source_outcome: str | None
    replay_outcome: str | None
    tracking_error_m: list[float] = Field(
        description="End-effector position error per observation (index 0 = start), metres.")
    tracking_error_mean_m: float
    tracking_error_max_m: float


# -- calibrations -----------------------------------------------------------------------------
# Views of the result files calibration/ stores (intrinsics.py IntrinsicsResult, handeye.py
# HandEyeResult, workspace.py WorkspaceResult); the service reads the stored JSON. Only the
# live calibration routes (routers/calibrations.py) import calibration/, to run its session.

CalibrationKind = Literal["intrinsics", "hand_eye", "workspace"]


class IntrinsicsView(Response):
    image_width: int = Field(description="Image width the intrinsics are for, px.")
    image_height: int = Field(description="Image height, px.")
    camera_matrix: list[list[float]] = Field(description="3x3 K: [[fx, 0, cx], [0, fy, cy], "
                                             "[0, 0, 1]], px.")
    dist_coeffs: list[float] = Field(description="OpenCV distortion k1 k2 p1 p2 k3.")
    rms_px: float = Field(description="Overall RMS reprojection error of the used views, px.")
    focal_std_px: float = Field(description="Estimated standard deviation of fx, px.")
    per_view_error_px: list[float | None] = Field(
        description="RMS reprojection error of each input view, px (None: view not used).")
    rejected: dict[str, str] = Field(description="Input view index -> why it was not used.")
    coverage: float = Field(description="Share of the image (8x8 grid) with corners, 0..1.")


class HandEyeMethodView(Response):
    transform: list[list[float]] = Field(description="4x4 result of this method.")
    residual_mm: float = Field(description="RMS spread of the implied board position, mm.")
    residual_deg: float = Field(description="RMS spread of the implied board rotation, deg.")


class HandEyeView(Response):
    mode: Literal["eye_in_hand", "eye_to_hand"] = Field(
        description="eye_in_hand: transform is gripper_from_camera; eye_to_hand: "
        "base_from_camera.")
    method: str = Field(description="The method with the smallest residual (the one used).")
    transform: list[list[float]] = Field(description="4x4 transform of that method, metres.")
    residual_mm: float
    residual_deg: float
    views: int = Field(description="Robot poses with a board detection used.")
    methods: dict[str, HandEyeMethodView] = Field(description="Every method tried.")


class WorkspaceView(Response):
    workspace_min_m: list[float] = Field(description="Lower box corner (x, y, z), m.")
    workspace_max_m: list[float] = Field(description="Upper box corner (x, y, z), m.")
    points_m: list[list[float]] = Field(description="The taught TCP positions, m.")
    margin_m: float = Field(description="How far the box was shrunk inside the points, m.")


class CalibrationPublic(Response):
    """One stored calibration version. Exactly one of intrinsics / hand_eye / workspace is
    set (the one named by `kind`), unless its stored data does not read as that kind: then
    `problem` says why and `data` still holds what was stored."""

    id: int
    kind: str = Field(description="intrinsics, hand_eye or workspace (another kind: written "
                      "by another robolearn version, see `problem`).")
    device: str = Field(description="Camera name (intrinsics, hand_eye) or arm name "
                        "(workspace).")
    version: int = Field(description="Versions of one kind and device only grow.")
    created_at: dt.datetime
    file: str | None = Field(description="The result file, relative to the data directory.")
    intrinsics: IntrinsicsView | None = None
    hand_eye: HandEyeView | None = None
    workspace: WorkspaceView | None = None
    problem: str | None = None
    data: dict[str, Any] = Field(description="The stored result as saved.")


class CalibrationVersion(Response):
    id: int
    version: int
    created_at: dt.datetime


class CalibrationDevice(Response):
    """Every stored version of one kind for one device; the newest in full."""

    kind: CalibrationKind
    device: str
    latest: CalibrationPublic
    versions: list[CalibrationVersion] = Field(description="Newest first.")


class LiveTelemetry(Response):
    """The actor's newest telemetry message."""

    sender: str = Field(description="The actor's identity.")
    seq: int = Field(description="The actor's message counter.")
    age_s: float = Field(description="Seconds since this service received it.")
    values: Telemetry
