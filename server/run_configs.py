"""The run configs an operator may start from the service, and the few fields they may change.

A run config decides what the arm's processes bind, which keys they trust, where they write
and which checkpoint they load: in the wrong hands, each of those can move the robot or
overwrite files. So the service never takes a config from a request. An admin lists the
allowed YAML files (or directories of them) in `server.allowed_configs`; an operator picks
one by its id (the file name without .yaml) and may override only the fields in
`SAFE_OVERRIDES`. Data directory, database and the service section always come from the
service's own config, so a run started here records into the store the service reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robolearn.config import RunConfig, parse_config
from robolearn.config.load import apply_override
from robolearn.errors import ConfigError
from robolearn.server import schemas

log = logging.getLogger(__name__)

SAFE_OVERRIDES: dict[str, str] = {
    "actor.episodes": "how many episodes the actor runs (null: until stopped)",
    "actor.episode_steps": "steps before an episode is truncated",
    "actor.seed": "seed of the first episode",
    "actor.end_on_success": "end an episode at its first success",
    "actor.policy.kind": "expert, random, zero or cqn",
    "actor.policy.seed": "seed of the random policy and of CQN exploration",
    "actor.policy.eval_mode": "cqn: greedy actions",
    "learner.enabled": "start the learner with the run",
}
"""Dotted config fields an operator may set when creating a run: none of them binds a
socket, changes security, names a path or relaxes a safety limit."""

# Why a refused field is refused, by the first part that matches: the message must tell the
# operator this is deliberate and who can change it.
_REFUSALS: tuple[tuple[str, str], ...] = (
    ("security", "transport security is fixed by the deployment"),
    ("server", "the service's own settings are fixed by the deployment"),
    ("data_dir", "runs started here always record into the service's data directory"),
    ("database_url", "runs started here always record into the service's database"),
    ("safety", "safety limits come from the admin's config file"),
)


def _why_refused(key: str) -> str:
    for prefix, why in _REFUSALS:
        if key == prefix or key.startswith(prefix + "."):
            return why
    leaf = key.rsplit(".", 1)[-1]
    if leaf.endswith("address") or leaf in ("host", "port"):
        return "socket addresses are fixed by the admin's config file"
    if leaf.endswith(("_dir", "_path", "checkpoint", "file")):
        return "paths are fixed by the admin's config file"
    return "only a few run fields may be changed from the service"


def check_overrides(overrides: dict[str, Any]) -> None:
    """Raises:
    ConfigError: a key is not in SAFE_OVERRIDES (the message says why and what is allowed).
    """
    refused = sorted(set(overrides) - set(SAFE_OVERRIDES))
    if refused:
        reasons = "; ".join(f"{k}: {_why_refused(k)}" for k in refused)
        raise ConfigError(
            f"cannot set {', '.join(refused)} from the service ({reasons}). Allowed overrides: "
            f"{', '.join(SAFE_OVERRIDES)}; anything else needs an admin to change the config "
            "file (server.allowed_configs)"
        )


@dataclass(frozen=True)
class AllowedConfig:
    id: str
    path: Path
    config: RunConfig | None
    problem: str | None

    def public(self) -> schemas.AllowedConfigPublic:
        cfg = self.config
        return schemas.AllowedConfigPublic(
            id=self.id, path=str(self.path), name=cfg.name if cfg else None,
            robot=cfg.robot.kind if cfg else None,
            task=getattr(cfg.robot, "task", None) if cfg else None,
            learner=cfg.learner.enabled if cfg else None, problem=self.problem)


def allowed_configs(entries: tuple[Path, ...]) -> dict[str, AllowedConfig]:
    """The configs `server.allowed_configs` names, by id, each loaded now (so an edited file
    counts from the next request on). A file that does not load is listed with its problem,
    so the admin sees why it cannot be chosen."""
    from robolearn.config import load_config

    found: dict[str, AllowedConfig] = {}
    for entry in entries:
        files = sorted(entry.glob("*.yaml")) if entry.is_dir() else [entry]
        for path in files:
            config_id = path.stem
            if config_id in found:
                log.warning("server.allowed_configs: %s has the same id %r as %s; ignored",
                            path, config_id, found[config_id].path)
                continue
            try:
                cfg, problem = load_config(path), None
            except ConfigError as exc:
                cfg, problem = None, str(exc)
            found[config_id] = AllowedConfig(config_id, path, cfg, problem)
    return found


def resolve(here: RunConfig, choice: AllowedConfig, name: str | None,
            overrides: dict[str, Any]) -> RunConfig:
    """The config of a run created from `choice`: its file, the operator's safe overrides,
    and this service's data directory, database and service settings.

    Raises:
        ConfigError: an override is not allowed, or the result does not validate.
    """
    if choice.config is None:
        raise ConfigError(f"config {choice.id!r} ({choice.path}) cannot be used: "
                          f"{choice.problem}; ask an admin to fix the file")
    check_overrides(overrides)
    raw = choice.config.model_dump(mode="json")
    for key, value in overrides.items():
        apply_override(raw, f"{key}={_yaml(value)}")
    if name is not None:
        raw["name"] = name
    raw["data_dir"] = str(here.data_dir)
    raw["database_url"] = here.database_url
    raw["server"] = here.server.model_dump(mode="json")
    return parse_config(raw, source=f"{choice.path} with the request's overrides")


def _yaml(value: Any) -> str:
    import json

    return json.dumps(value)  # JSON is YAML: apply_override parses it back exactly
