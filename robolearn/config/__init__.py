"""Run configuration models and their YAML loader."""

from robolearn.config.load import apply_override, load_config, parse_config
from robolearn.config.models import (
    ActorConfig,
    CameraConfig,
    LearnerConfig,
    OpenCVCameraConfig,
    PolicyConfig,
    RunConfig,
    SafetyConfig,
    SecurityConfig,
    SimCameraConfig,
    SimRobotConfig,
)

__all__ = [
    "ActorConfig",
    "CameraConfig",
    "LearnerConfig",
    "OpenCVCameraConfig",
    "PolicyConfig",
    "RunConfig",
    "SafetyConfig",
    "SecurityConfig",
    "SimCameraConfig",
    "SimRobotConfig",
    "apply_override",
    "load_config",
    "parse_config",
]
