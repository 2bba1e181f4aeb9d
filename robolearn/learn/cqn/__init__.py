"""CQN: coarse-to-fine Q-network (Seo et al. 2024) with demonstration losses."""

from robolearn.learn.cqn.agent import CQNAgent
from robolearn.learn.cqn.discretize import (
    decode_action,
    encode_action,
    level_centres,
    snap_to_grid,
    zoom_in,
)
from robolearn.learn.cqn.losses import c51_loss, fosd_loss, margin_loss, project_c51_target
from robolearn.learn.cqn.networks import C2FCritic, MultiViewEncoder, RandomShift, StateEncoder

__all__ = [
    "C2FCritic",
    "CQNAgent",
    "MultiViewEncoder",
    "RandomShift",
    "StateEncoder",
    "c51_loss",
    "decode_action",
    "encode_action",
    "fosd_loss",
    "level_centres",
    "margin_loss",
    "project_c51_target",
    "snap_to_grid",
    "zoom_in",
]
