"""One registry of driver classes: `@driver("sim_arm")` registers, `get_driver` looks up."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from robolearn.errors import ConfigError

T = TypeVar("T", bound=type)

_DRIVERS: dict[str, type] = {}


def driver(kind: str) -> Callable[[T], T]:
    def register(cls: T) -> T:
        if kind in _DRIVERS and _DRIVERS[kind] is not cls:
            raise ValueError(f"driver kind {kind!r} registered twice")
        _DRIVERS[kind] = cls
        return cls

    return register


def get_driver(kind: str) -> type:
    # Importing the packages fills the registry; done lazily so a missing vendor SDK only
    # matters when its driver is asked for.
    import robolearn.hardware.franka
    import robolearn.hardware.opencv
    import robolearn.hardware.realsense
    import robolearn.hardware.sim
    import robolearn.hardware.ur
    import robolearn.hardware.xarm  # noqa: F401

    try:
        return _DRIVERS[kind]
    except KeyError:
        raise ConfigError(
            f"unknown driver kind {kind!r}; known: {sorted(_DRIVERS)}"
        ) from None
