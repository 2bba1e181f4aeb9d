"""Episode videos recorded on another host of a run across hosts, fetched from that host.

The recording robot's PC serves its store's MP4s by episode id and camera
(`robolearn.actor.file_server`, on the robot's `actor.files_address`); the service asks it
for the size, then streams the byte range the browser asked for in chunks, so seeking works
as it does for a local file (`server.media`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import zmq
from fastapi import HTTPException, status
from fastapi.responses import StreamingResponse

from robolearn.config import RunConfig
from robolearn.config.fleet import robot_view
from robolearn.config.sockets import SERVICE
from robolearn.errors import ConfigError, PeerTimeout, ProtocolError
from robolearn.protocol import Requester
from robolearn.protocol.messages import Reply
from robolearn.server.media import CHUNK_BYTES, parse_range
from robolearn.store import EpisodeRecord

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0


def files_address(cfg: RunConfig, episode: EpisodeRecord) -> str | None:
    """Where the host that recorded `episode` serves its files; None when the service can
    ask no one (a run of one robot, or a robot no longer in the fleet)."""
    if episode.robot is None or episode.robot not in cfg.fleet.names:
        return None
    return robot_view(cfg, episode.robot).actor.files_address


def _ask(req: Requester, episode_id: int, camera: str, offset: int, length: int) -> Reply:
    reply = Reply.from_message(req.request(
        "file_request", {"episode_id": episode_id, "camera": camera, "offset": offset,
                         "length": length}, timeout_s=TIMEOUT_S))
    if not reply.ok:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"episode {episode_id}: its recording host says: {reply.reason}")
    return reply


def remote_video_response(cfg: RunConfig, episode: EpisodeRecord, camera: str,
                          range_header: str | None, ctx: zmq.Context[Any] | None = None,
                          ) -> StreamingResponse:
    """A 200/206 response streaming `camera`'s MP4 of `episode` from its recording host.

    Raises:
        HTTPException: 404 when there is no host to ask or it has no such file; 502 when
            the host does not answer; 416 for a range the file cannot satisfy.
    """
    address = files_address(cfg, episode)
    if address is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"episode {episode.id}: its video is not on this host and no "
                            "fleet robot recorded it")
    ctx = ctx or zmq.Context.instance()
    try:
        security = cfg.socket_security(address, SERVICE)
    except ConfigError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc
    where = f"robot {episode.robot!r} at {address}"
    try:
        with Requester(ctx, address, SERVICE, security=security) as req:
            size = int((_ask(req, episode.id, camera, 0, 0).data or {})["size"])
    except (PeerTimeout, ProtocolError, KeyError, ValueError) as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY,
                            f"episode {episode.id}: {where} did not serve its video "
                            f"({exc}); is `robolearn files` running there?") from exc
    byte_range = parse_range(range_header, size)
    first, last = byte_range if byte_range is not None else (0, size - 1)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600",
               "Content-Length": str(max(0, last - first + 1))}
    if byte_range is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"

    def chunks() -> Iterator[bytes]:
        with Requester(ctx, address, SERVICE, security=security) as req:
            offset = first
            while offset <= last:
                try:
                    reply = _ask(req, episode.id, camera, offset,
                                 min(CHUNK_BYTES, last - offset + 1))
                except (PeerTimeout, HTTPException) as exc:
                    # The headers are sent: end the body short, as a shrunk local file does.
                    log.warning("episode %d: %s stopped serving its video at byte %d (%s)",
                                episode.id, where, offset, exc)
                    return
                chunk = reply.arrays["chunk"].tobytes()
                if not chunk:
                    return
                offset += len(chunk)
                yield chunk

    return StreamingResponse(chunks(), status_code=206 if byte_range is not None else 200,
                             media_type="video/mp4", headers=headers)
