"""Storage layer: SQL database (SQLAlchemy + Alembic) plus episode files (.npz + MP4).

Other packages import from here, e.g.::

    from robolearn.store import Store

    with Store.open(data_dir) as store:
        run_id = store.create_run("pick_cube", config)
        with store.begin_episode(run_id, "pick_cube", ["wrist_cam"]) as writer:
            writer.add_step(images, proprio, action, reward, success)
            episode_id = writer.finish(final_images, final_proprio, "success")

The `Store` facade ties the modules that do one job each: `records` (what callers get
back), `layout` (paths, locks, fsync), `recovery`, `writer` (validation and the atomic write
protocol), and one query module per table family taking an ORM session (`runs`, `episodes`,
`audit`, `labels`, `preferences`, `reward_models`, `learner_metrics`, `operator_requests`,
`users`), through which every caller reads and writes those tables.
"""

from robolearn.store.db import default_url, make_engine, upgrade
from robolearn.store.records import EpisodeData, EpisodeRecord, RunRecord
from robolearn.store.store import Store
from robolearn.store.video import encode_mp4
from robolearn.store.writer import EpisodeWriter, NpzWriter, VideoWriter, write_npz

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
