"""Stored calibrations applied to a run config when the run starts.

`robolearn up` calls `with_calibrations(cfg)` once, before any process starts, and hands the
result to every process (the resolved config file), so:
- the newest `workspace` calibration of the robot (`robolearn calibrate workspace`) narrows
  the actor's safety box (`safety.workspace_*`) and, for a real arm, the driver's own box
  (`robot.workspace_*`): the intersection is used, so a calibration can only shrink the box;
- the newest `intrinsics` calibration of each real camera is attached to its config
  (`cameras[i].intrinsics`, scaled to the published frame size), from where the camera
  driver reports it in its `spec`.
Applying them lives beside `calibration.results`, which stores them, so the core's config
package never reads the store.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from robolearn.calibration.results import latest_calibration
from robolearn.config import RunConfig
from robolearn.errors import ConfigError
from robolearn.store import Store

log = logging.getLogger(__name__)


def _narrowed(box_min: tuple, box_max: tuple, taught: dict, what: str, version: int
              ) -> tuple[list[float], list[float]]:
    lo = [max(a, b) for a, b in zip(box_min, taught["workspace_min_m"], strict=True)]
    hi = [min(a, b) for a, b in zip(box_max, taught["workspace_max_m"], strict=True)]
    if any(a >= b for a, b in zip(lo, hi, strict=True)):
        raise ConfigError(
            f"{what} {tuple(box_min)}..{tuple(box_max)} and the taught workspace (version "
            f"{version}: {taught['workspace_min_m']}..{taught['workspace_max_m']}) do not "
            "overlap; fix the config's box or teach the workspace again"
        )
    return lo, hi


def _intrinsics(cam: dict[str, Any], version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Scale stored intrinsics (for the calibration images) to the published frame size."""
    out_w = cam.get("output_width", cam.get("width"))
    out_h = cam.get("output_height", cam.get("height"))
    sx, sy = out_w / data["image_width"], out_h / data["image_height"]
    k = data["camera_matrix"]
    return {"width": out_w, "height": out_h, "fx": k[0][0] * sx, "fy": k[1][1] * sy,
            # pixel centres: x_out + 0.5 = (x_in + 0.5) * s
            "cx": (k[0][2] + 0.5) * sx - 0.5, "cy": (k[1][2] + 0.5) * sy - 0.5,
            "dist_coeffs": tuple(data["dist_coeffs"]), "version": version}


def with_calibrations(cfg: RunConfig, store: Store | None = None) -> RunConfig:
    """The config with the newest stored calibrations applied (see the module docstring).

    Args:
        cfg: the run config as loaded.
        store: an open `robolearn.store.Store`; None opens the config's own store.

    Raises:
        ConfigError: the taught box does not overlap the configured one, or the narrowed
            config is invalid (e.g. the arm's home lies outside the taught box).
    """
    if store is None:
        with Store.open(cfg.data_dir, cfg.database_url) as opened:
            return with_calibrations(cfg, opened)
    raw = cfg.model_dump()
    changed = False
    ws = latest_calibration(store, "workspace", cfg.robot.name)
    if ws is not None:
        version, taught = ws.version, ws.data
        lo, hi = _narrowed(cfg.safety.workspace_min_m, cfg.safety.workspace_max_m, taught,
                           "safety.workspace", version)
        raw["safety"].update(workspace_min_m=lo, workspace_max_m=hi)
        if "workspace_min_m" in raw["robot"]:  # real arms enforce their own box too
            rlo, rhi = _narrowed(cfg.robot.workspace_min_m, cfg.robot.workspace_max_m,
                                 taught, "robot.workspace", version)
            raw["robot"].update(workspace_min_m=rlo, workspace_max_m=rhi)
        changed = True
        log.info("workspace calibration v%d of %s: safety box %s..%s", version,
                 cfg.robot.name, lo, hi)
    for cam in raw["cameras"]:
        if cam["kind"] == "sim":  # the sim's intrinsics are exact by construction
            continue
        found = latest_calibration(store, "intrinsics", cam["name"])
        if found is not None:
            cam["intrinsics"] = _intrinsics(cam, found.version, found.data)
            changed = True
            log.info("intrinsics calibration v%d attached to %s", found.version, cam["name"])
    if not changed:
        return cfg
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"the stored calibrations do not fit the config: {e}") from e
