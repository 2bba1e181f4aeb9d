"""Load a run config from YAML, with dotted command-line overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from robolearn.config.models import RunConfig
from robolearn.errors import ConfigError


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply one `a.b.c=value` override in place; value is parsed as YAML.

    Raises:
        ConfigError: not of the form key=value, or it walks through a non-mapping.
    """
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected key.path=value")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node: Any = data
    for part in parts[:-1]:
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"override {override!r}: no index {part} in a list of "
                                  f"{len(node)}")
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not inside a mapping")
        node = node.setdefault(part, {})
    last = parts[-1]
    value = yaml.safe_load(raw)
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"override {override!r}: no index {last} in a list of {len(node)}")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"override {override!r}: cannot set {last!r} on {type(node).__name__}")


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML run config and validate it.

    Raises:
        ConfigError: missing file, bad YAML, or a value the model refuses (the message lists
            every offending field).
    """
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError as e:
        raise ConfigError(f"config {p}: no such file") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config {p}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config {p}: top level must be a mapping, got {type(data).__name__}")
    for ov in overrides:
        apply_override(data, ov)
    return parse_config(data, source=str(p))


def parse_config(data: dict[str, Any], source: str = "<dict>") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"config {source}: {e}") from e
