"""Runs: list, detail, create from an allowed config, start/stop (process group),
pause/resume (through the actor's control socket).

A run is created from one of the configs the deployment allows (`server.allowed_configs`,
see server/run_configs.py) plus a name and a few safe overrides, never from a config in the
request: a config sets sockets, keys and paths.

One API run is one row: start hands the row's id to the actor (`robolearn actor --run-id`),
which marks it "running" and records its episodes under it, and sets the final status when
it ends; stop marks it "stopped" even if the actor could not.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, status

from robolearn.actor.control import ActorControlClient
from robolearn.config import RunConfig, parse_config
from robolearn.errors import ConfigError, ControlRefused, PeerTimeout
from robolearn.runlock import RobotBusy, process_alive
from robolearn.server import schemas
from robolearn.server.deps import (
    CurrentOperator,
    CurrentUser,
    DbSession,
    RunOr404,
    ServicesDep,
    audit,
)
from robolearn.server.run_configs import SAFE_OVERRIDES, allowed_configs, resolve
from robolearn.store import runs
from robolearn.store.models import Run
from robolearn.store.runs import set_owner

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/runs", tags=["runs"])


# Statuses under which a run's processes should be alive.
_LIVE_STATUSES = runs.LIVE_STATUSES


def _public(run: Run, services: ServicesDep, detail: bool = False) -> schemas.RunPublic:
    data = schemas.RunPublic.model_validate(run).model_dump()
    processes = services.supervisor.processes(run.id)
    data["processes"] = processes
    live = run.status in _LIVE_STATUSES
    if processes:
        data["started_by"] = "this service"
        if live and services.supervisor.died(run.id):
            # A process this service started is gone (killed, crashed) and the actor could
            # not record an end: the run is not running, whatever its row still says.
            # `processes` names the one that exited; stop it to clean up, recording "stopped".
            data["status"] = "failed"
            live = False
    elif run.owner_pid is not None:
        # Started elsewhere (`robolearn up`): it lives while its owner process does.
        data["started_by"] = f"robolearn up (pid {run.owner_pid} on {run.owner_host})"
        live = live and process_alive(run.owner_host or "", run.owner_pid,
                                      run.owner_started_at or 0.0)
    else:  # an actor started on its own records no owner: whether it lives is unknown
        live = False
    data["live"] = live
    if detail:
        return schemas.RunDetail(**data, config=run.config)
    return schemas.RunPublic(**data)


def _config_of(run: Run, services: ServicesDep) -> RunConfig:
    """The run's config, recording into this service's store whatever its file said."""
    here = services.config
    raw = {**run.config, "data_dir": str(here.data_dir), "database_url": here.database_url}
    try:
        return parse_config(raw, source=f"run {run.id}")
    except ConfigError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.get("")
def list_runs(_user: CurrentUser, services: ServicesDep,
              db: DbSession) -> list[schemas.RunPublic]:
    """Every run, newest first."""
    return [_public(r, services) for r in runs.list_runs(db, newest_first=True)]


@router.get("/configs")
def list_configs(_user: CurrentUser, services: ServicesDep) -> schemas.AllowedConfigs:
    """The configs runs may be created from, and the fields an operator may override."""
    choices = allowed_configs(services.config.server.allowed_configs)
    return schemas.AllowedConfigs(configs=[c.public() for c in choices.values()],
                                  overridable=SAFE_OVERRIDES)


@router.get("/{run_id}")
def get_run(_user: CurrentUser, run: RunOr404, services: ServicesDep) -> schemas.RunDetail:
    """One run with its config and the processes this service started for it."""
    return _public(run, services, detail=True)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_run(body: schemas.RunCreate, user: CurrentOperator, services: ServicesDep,
               db: DbSession) -> schemas.RunDetail:
    """Register a run from an allowed config (plus name and safe overrides); start it with
    /start. 422 (nothing created) for an unknown config or a field that may not be set."""
    choices = allowed_configs(services.config.server.allowed_configs)
    choice = choices.get(body.config)
    if choice is None:
        known = ", ".join(sorted(choices)) or "none: an admin lists them in "
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"config {body.config!r} is not one this deployment allows; choose one of: "
            f"{known}{'server.allowed_configs' if not choices else ''}")
    try:
        cfg = resolve(services.config, choice, body.name, body.overrides)
    except ConfigError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    run = runs.add_run(db, cfg.name, cfg.model_dump(mode="json"), cfg.robot.kind, "created")
    audit(db, user, "run.create", f"run:{run.id}",
          {"name": cfg.name, "config": choice.id, "overrides": body.overrides})
    db.commit()
    return _public(run, services, detail=True)


@router.post("/{run_id}/start", responses={409: {"model": schemas.Message}})
def start_run(user: CurrentOperator, run: RunOr404, services: ServicesDep,
              db: DbSession) -> schemas.RunPublic:
    """Start the run's processes (drivers, learner if enabled, actor) under supervision."""
    active = services.supervisor.active_run()
    if active is not None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"run {active} is still running; stop it first (one robot, one run)")
    cfg = _config_of(run, services)
    try:
        # The robot before the row: a run of another process (`robolearn up`) may hold it.
        owner = services.supervisor.reserve(run.id, cfg)
    except RobotBusy as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    # Committed before the actor exists: it marks the row "running" itself once it starts,
    # and that must not be overwritten by this request finishing later.
    try:
        set_owner(run, owner)
        audit(db, user, "run.start", f"run:{run.id}")
        db.commit()
    except BaseException:
        services.supervisor.release(run.id)
        raise
    try:
        services.supervisor.start(run.id, cfg)
    except BaseException:
        runs.end_run(run, "failed")  # nothing may be left claiming to run
        db.commit()
        raise
    return _public(run, services)


@router.post("/{run_id}/stop")
def stop_run(user: CurrentOperator, run: RunOr404, services: ServicesDep,
             db: DbSession) -> schemas.RunPublic:
    """Stop the run's processes: the actor first (it stores its episode), then the rest."""
    if not services.supervisor.processes(run.id):
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"run {run.id} was not started by this service; stop it where it "
                            "was started (Ctrl-C on `robolearn up`)")
    services.supervisor.stop(run.id)
    db.refresh(run)  # the actor wrote its final status from its own process
    if run.status in ("created", *_LIVE_STATUSES):  # it died before it could
        runs.end_run(run, "stopped")
    audit(db, user, "run.stop", f"run:{run.id}")
    db.commit()
    return _public(run, services)


def _control(run: Run, services: ServicesDep, command: str, operator: str) -> None:
    cfg = _config_of(run, services)  # the address this run's actor listens on
    client = ActorControlClient(cfg.actor.control_address,
                                cfg.socket_security(cfg.actor.control_address, "service"))
    try:
        getattr(client, command)(operator=operator)
    except PeerTimeout as exc:
        raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT,
                            f"run {run.id}: the actor at {cfg.actor.control_address} did not "
                            f"answer {command}; is the run up?") from exc
    except ControlRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"run {run.id}: the actor refused {command}: {exc}") from exc
    finally:
        client.close()


@router.post("/{run_id}/pause", responses={504: {"model": schemas.Message}})
def pause_run(user: CurrentOperator, run: RunOr404, services: ServicesDep,
              db: DbSession) -> schemas.Message:
    """Pause the actor between steps (the arm holds still; the episode stays open)."""
    _control(run, services, "pause", user.username)
    audit(db, user, "run.pause", f"run:{run.id}")
    db.commit()
    return schemas.Message(detail=f"run {run.id} paused")


@router.post("/{run_id}/resume", responses={504: {"model": schemas.Message}})
def resume_run(user: CurrentOperator, run: RunOr404, services: ServicesDep,
               db: DbSession) -> schemas.Message:
    """Resume a paused actor."""
    _control(run, services, "resume", user.username)
    audit(db, user, "run.resume", f"run:{run.id}")
    db.commit()
    return schemas.Message(detail=f"run {run.id} resumed")
