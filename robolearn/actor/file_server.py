"""Serving a robot host's episode videos to the operator service of a run across hosts.

The service plays an episode's MP4s wherever it runs; when the files are on the recording
robot's PC it asks that host, over the robot's `actor.files_address` (CURVE, only the
service's key admitted), for byte ranges of one camera's MP4 (`file_request`). Only
complete episodes of this host's store are served, by store id and camera name: no path
ever crosses the wire.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import zmq

from robolearn.config import RunConfig
from robolearn.config.sockets import ACTOR, identity
from robolearn.errors import StoreError
from robolearn.protocol import Replier
from robolearn.protocol.messages import FileRequest
from robolearn.store import Store

log = logging.getLogger(__name__)

# The most bytes one reply carries (the service asks in chunks of at most this).
MAX_CHUNK_BYTES = 1 << 20


def serve_episode_files(cfg: RunConfig, ctx: zmq.Context[Any], stop: threading.Event) -> int:
    """Answer file requests on cfg.actor.files_address until `stop`; returns how many."""
    served = 0
    server = Replier(ctx, cfg.actor.files_address, identity(cfg, ACTOR),
                     security=cfg.socket_security(cfg.actor.files_address, ACTOR))
    with Store.open(cfg.data_dir, cfg.database_url) as store, server:
        log.info("serving episode videos of %s on %s", cfg.data_dir, cfg.actor.files_address)
        while not stop.is_set():
            got = server.poll(0.2)
            if got is None:
                continue
            routing, msg = got
            if msg.type != "file_request":
                server.reply(routing, msg, ok=False, reason=f"expected file_request, got "
                             f"{msg.type}")
                continue
            ok, reason, data, arrays = answer(store, FileRequest.from_message(msg))
            server.reply(routing, msg, ok=ok, reason=reason, data=data, arrays=arrays)
            served += ok
    return served


def answer(store: Store, req: FileRequest) -> tuple[bool, str, dict[str, Any] | None,
                                                     dict[str, np.ndarray] | None]:
    """(ok, reason, {"size": file size}, {"chunk": the bytes as uint8}) for one request."""
    if req.offset < 0 or not 0 <= req.length <= MAX_CHUNK_BYTES:
        return False, (f"offset must be >= 0 and length 0..{MAX_CHUNK_BYTES}, got "
                       f"{req.offset}, {req.length}"), None, None
    try:
        path = store.video_path(req.episode_id, req.camera)
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(min(req.offset, size))
            chunk = f.read(req.length) if req.length else b""
    except StoreError as exc:
        return False, str(exc), None, None
    except OSError as exc:
        return False, f"episode {req.episode_id}: cannot read its {req.camera} video ({exc})", \
            None, None
    return True, "", {"size": size}, {"chunk": np.frombuffer(chunk, np.uint8)}
