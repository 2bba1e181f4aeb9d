"""Storage layer: SQL database (SQLAlchemy + Alembic) plus episode files (.npz + MP4).

Other packages import from here, e.g.::

    from robolearn.store import Store

    with Store.open(data_dir) as store:
        run_id = store.create_run("pick_cube", config)
        with store.begin_episode(run_id, "pick_cube", ["wrist_cam"]) as writer:
            writer.add_step(images, proprio, action, reward, success)
            episode_id = writer.finish(final_images, final_proprio, "success")
"""

from robolearn.store.db import default_url, make_engine, upgrade
from robolearn.store.episodes import (
    EpisodeData,
    EpisodeRecord,
    EpisodeWriter,
    NpzWriter,
    RunRecord,
    Store,
    VideoWriter,
    write_npz,
)
from robolearn.store.video import encode_mp4

__all__ = [
    "EpisodeData",
    "EpisodeRecord",
    "EpisodeWriter",
    "NpzWriter",
    "RunRecord",
    "Store",
    "VideoWriter",
    "default_url",
    "encode_mp4",
    "make_engine",
    "upgrade",
    "write_npz",
]
