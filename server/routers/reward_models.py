"""Reward models: list, status and metrics; train the success classifier in the background;
deploy a version (or the zero-shot CLIP source) to a run as its success source; score an
episode's frames with a version.

A deployment rewrites the run's stored config (rewards.sparse and the model file). The actor
loads its reward sources when it starts, so a deployment takes effect at the run's next
start from this service; a run that is live keeps its old source until then, and the
deployment says so (`restart_needed`) rather than pretending otherwise.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy.orm import Session

from robolearn.config import parse_config
from robolearn.errors import ConfigError, RewardModelError, StoreError
from robolearn.server import schemas
from robolearn.server.deps import (
    CurrentOperator,
    CurrentUser,
    DbSession,
    EpisodeOr404,
    Id,
    RunOr404,
    ServicesDep,
    audit,
)
from robolearn.server.jobs import JobState
from robolearn.server.routers.labels import count_labels
from robolearn.server.services import Services
from robolearn.store import audit as audit_log
from robolearn.store import reward_models, runs
from robolearn.store.models import AuditEntry, RewardModel, Run
from robolearn.store.runs import LIVE_STATUSES

if TYPE_CHECKING:  # torch loads only when someone scores an episode
    from robolearn.rewards.classifier import SuccessClassifier

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/reward-models", tags=["reward_models"])

CLASSIFIER_JOB = "train_classifier"


def _public(row: RewardModel) -> schemas.RewardModelPublic:
    return schemas.RewardModelPublic(id=row.id, run_id=row.run_id, kind=row.kind,
                                     version=row.version, status=row.status,
                                     metrics=row.metrics or {}, error=row.error or None,
                                     created_at=row.created_at)


def _job(state: JobState) -> schemas.JobPublic:
    return schemas.JobPublic(job=state.id, status=state.status, detail=state.detail,
                             result=state.result)


@router.get("")
def list_models(
    _user: CurrentUser, db: DbSession,
    kind: Literal["classifier", "preference", "clip"] | None = None,
    run_id: Annotated[int | None, Query(ge=1, le=schemas.INT64_MAX)] = None,
) -> list[schemas.RewardModelPublic]:
    """Every reward model, newest first, with its status and held-out metrics."""
    rows = reward_models.list_models(db, kind=kind, run_id=run_id, newest_first=True)
    return [_public(r) for r in rows]


@router.get("/clip")
def clip_status(_user: CurrentUser, services: ServicesDep) -> schemas.ClipStatus:
    """Whether the zero-shot CLIP source can be used: it needs a local checkpoint file."""
    model = services.config.rewards.clip.model
    return schemas.ClipStatus(configured=_clip_problem(services) is None,
                              model_name=model.model_name,
                              checkpoint=str(model.checkpoint) if model.checkpoint else None,
                              detail=_clip_problem(services) or
                              f"{model.model_name} from {model.checkpoint}")


def _clip_problem(services: Services) -> str | None:
    checkpoint = services.config.rewards.clip.model.checkpoint
    if checkpoint is None:
        return ("not configured: set rewards.clip.model.checkpoint in the service's config to "
                "a local open_clip checkpoint file (nothing is downloaded) and restart the "
                "service")
    if not FilePath(checkpoint).is_file():
        return (f"rewards.clip.model.checkpoint {checkpoint} is not a file on the service's "
                "machine; copy the checkpoint there or fix the path")
    return None


def _model_file(services: Services, row: RewardModel) -> FilePath:
    return (services.config.data_dir / row.path).resolve()


def _deployed_model(db: Session, services: Services, run: Run,
                    model_path: str | None) -> RewardModel | None:
    """The classifier row a run's config points at: its file, or (no file set) the newest
    ready classifier the actor would pick at start (the run's own first)."""
    if model_path is not None:
        wanted = FilePath(model_path).resolve()
        return next((r for r in reward_models.list_models(db, kind="classifier")
                     if _model_file(services, r) == wanted), None)
    return (reward_models.latest_ready(db, "classifier", run.id)
            or reward_models.latest_ready(db, "classifier"))


def _last(db: Session, action: str, run_id: int) -> AuditEntry | None:
    return audit_log.last_entry(db, action, f"run:{run_id}")


def _success_source(db: Session, services: Services, run: Run) -> schemas.SuccessSourcePublic:
    rewards = (run.config or {}).get("rewards") or {}
    sparse = str(rewards.get("sparse", "sim_success"))
    model_path = (rewards.get("classifier") or {}).get("model_path")
    model = _deployed_model(db, services, run, model_path) if sparse == "classifier" else None
    deployed, started = _last(db, "reward_model.deploy", run.id), _last(db, "run.start", run.id)
    live = run.status in LIVE_STATUSES
    restart = live and deployed is not None and (started is None or started.id < deployed.id)
    if restart:
        note = (f"run {run.id} is {run.status} and was started before this deployment: its "
                "actor still uses the previous success source. Stop the run and start it "
                "again (Runs page) for the new source to take effect.")
    elif live:
        note = f"run {run.id} is {run.status} with this success source."
    else:
        note = (f"takes effect when run {run.id} is next started from the Runs page (the actor "
                "loads its success source at start).")
    note += (" A run started with `robolearn up` reads its YAML instead: set rewards.sparse "
             "(and rewards.classifier.model_path) there.")
    threshold = (model.metrics or {}).get("threshold") if model is not None else None
    return schemas.SuccessSourcePublic(
        run_id=run.id, run_status=run.status, sparse=sparse,
        model_id=model.id if model else None, version=model.version if model else None,
        threshold=float(threshold) if isinstance(threshold, int | float) else None,
        model_path=str(model_path) if model_path else None,
        deployed_at=deployed.created_at if deployed else None, restart_needed=restart,
        note=note)


@router.get("/deployments/{run_id}")
def get_success_source(_user: CurrentUser, run: RunOr404, services: ServicesDep,
                       db: DbSession) -> schemas.SuccessSourcePublic:
    """A run's success source as its config says, and whether its processes use it yet."""
    return _success_source(db, services, run)


@router.post("/deployments", responses={404: {"model": schemas.Message},
                                        409: {"model": schemas.Message}})
def deploy(body: schemas.DeploymentCreate, user: CurrentOperator, services: ServicesDep,
           db: DbSession) -> schemas.SuccessSourcePublic:
    """Make a classifier version (or zero-shot CLIP) the run's success source (rewards.sparse).
    Audited; takes effect at the run's next start (see `restart_needed`). Refused with
    nothing changed: unknown run or model, a model that is not a ready classifier, a missing
    file, CLIP without a checkpoint, or a config the change would make invalid."""
    run = runs.get_run(db, body.run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {body.run_id}: no such run")
    raw = copy.deepcopy(run.config or {})
    rewards = dict(raw.get("rewards") or {})
    detail: dict[str, Any] = {"source": body.source,
                              "previous_sparse": rewards.get("sparse", "sim_success"),
                              "run_status": run.status}
    if body.source == "classifier":
        row = _ready_classifier(db, services, body.model_id)
        rewards["sparse"] = "classifier"
        classifier = dict(rewards.get("classifier") or {})
        detail["previous_model_path"] = classifier.get("model_path")
        classifier["model_path"] = str(_model_file(services, row))
        rewards["classifier"] = classifier
        detail |= {"model_id": row.id, "version": row.version}
    else:
        problem = _clip_problem(services)
        if problem is not None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"zero-shot CLIP: {problem}")
        if body.model_id is not None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                "source clip takes no model_id: it uses the service's "
                                "configured CLIP checkpoint")
        clip = dict(rewards.get("clip") or {})
        # Success from CLIP is its softmax variant (the projection reward is dense).
        clip["model"] = services.config.rewards.clip.model.model_dump(mode="json")
        clip["variant"] = "softmax"
        rewards["sparse"], rewards["clip"] = "clip", clip
    raw["rewards"] = rewards
    here = services.config
    try:
        parse_config({**raw, "data_dir": str(here.data_dir), "database_url": here.database_url},
                     source=f"run {run.id} with {body.source} as its success source")
    except ConfigError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    run.config = raw  # a new dict: the JSON column notices only reassignment
    audit(db, user, "reward_model.deploy", f"run:{run.id}", detail)
    db.commit()
    log.info("%s deployed %s to run %d", user.username, detail, run.id)
    return _success_source(db, services, run)


def _ready_classifier(db: Session, services: Services, model_id: int | None) -> RewardModel:
    if model_id is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "source classifier needs model_id: the version to deploy")
    row = reward_models.get_model(db, model_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"reward model {model_id}: no such model")
    if row.kind != "classifier":
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"reward model {model_id} is a {row.kind} model; only a classifier "
                            "version (or clip) can be a run's success source")
    if row.status != "ready":
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"classifier v{row.version} is {row.status}; deploy a ready version")
    if not _model_file(services, row).is_file():
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"classifier v{row.version}: its file {row.path} is missing from the "
                            "data directory; retrain it")
    return row


@functools.lru_cache(maxsize=2)
def _load_classifier(path: str, mtime_ns: int) -> SuccessClassifier:
    """A loaded classifier, kept for the next episode scored (mtime: a rewritten file is
    loaded again)."""
    from robolearn.rewards.classifier import SuccessClassifier

    return SuccessClassifier.load(FilePath(path))


@router.get("/{model_id}/episodes/{episode_id}/probabilities",
            responses={409: {"model": schemas.Message}})
def score_episode(model_id: Id, _user: CurrentUser, episode: EpisodeOr404,
                  services: ServicesDep, db: DbSession) -> schemas.EpisodeProbabilities:
    """A classifier version's success probability on every frame of a complete episode
    (computed on the service's CPU: seconds for a few hundred frames)."""
    row = _ready_classifier(db, services, model_id)
    file = _model_file(services, row)
    try:
        classifier = _load_classifier(str(file), file.stat().st_mtime_ns)
        data = services.store.load_episode(episode.id)
        frames = {c: data.images(c) for c in classifier.cameras}
        probs = np.concatenate([
            classifier.predict({c: f[i : i + 64] for c, f in frames.items()})
            for i in range(0, data.num_steps + 1, 64)])
    except (RewardModelError, StoreError) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"classifier v{row.version} on episode {episode.id}: {exc}") from exc
    return schemas.EpisodeProbabilities(
        episode_id=episode.id, model_id=row.id, version=row.version,
        threshold=classifier.threshold, index=list(range(probs.size)),
        prob=[float(p) for p in probs])


@router.get("/{model_id}")
def get_model(model_id: Id, _user: CurrentUser, db: DbSession) -> schemas.RewardModelPublic:
    """One reward model."""
    row = reward_models.get_model(db, model_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"reward model {model_id}: no such model")
    return _public(row)


@router.post("/classifier/train", status_code=status.HTTP_202_ACCEPTED,
             responses={409: {"model": schemas.Message}})
def train_classifier(body: schemas.TrainClassifierRequest, user: CurrentOperator,
                     services: ServicesDep, db: DbSession) -> schemas.JobPublic:
    """Train the success classifier on the labelled frames, in the background; poll
    GET /api/reward-models/jobs/{job} and then list the models for its metrics."""
    if body.run_id is not None and runs.get_run(db, body.run_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {body.run_id}: no such run")
    # Refused here, before a job or a model row exists, with what the operator can do in
    # the browser (training would fail the same way, minutes of encoding later).
    counts = count_labels(db, services.config.rewards.classifier, body.run_id)
    if counts.missing is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"cannot train the classifier: "
                            f"{counts.missing}")
    board = services.job_board
    running = board.active(CLASSIFIER_JOB)
    if running is not None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"a classifier is already training (job {running.id}); wait for it")
    store, cfg, run_id = services.store, services.config.rewards.classifier, body.run_id

    def work(report: Callable[[str], None]) -> dict[str, Any]:
        # Imported here: torch and the encoder load only when someone trains.
        from robolearn.rewards.classifier import train_classifier as train

        result = train(store, cfg, run_id=run_id,
                       progress=lambda stage, done, total: report(f"{stage} {done}/{total}"))
        return result.model_dump(mode="json")

    state = board.submit(CLASSIFIER_JOB, work)
    audit(db, user, "reward_model.train", "classifier", {"run_id": run_id, "job": state.id})
    db.commit()
    return _job(state)


@router.get("/jobs/{job_id}")
def get_job(job_id: Annotated[str, Path(max_length=64)], _user: CurrentUser,
            services: ServicesDep) -> schemas.JobPublic:
    """Status of a training job (queued, running with progress, done, or failed with why)."""
    state = services.job_board.get(job_id)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"job {job_id}: unknown (jobs are forgotten when the service "
                            "restarts)")
    return _job(state)
