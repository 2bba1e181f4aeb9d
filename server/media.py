"""Serving episode MP4s with HTTP Range requests (RFC 9110 §14), so browsers can seek.

One byte range per request is honoured (206 + Content-Range); a range that lies outside the
file or ends before it starts gets 416 with `Content-Range: bytes */<size>`; a Range header
with another unit or several ranges is ignored and the whole file is sent (200), which the
RFC allows and browsers never need otherwise.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from fastapi import HTTPException, status
from fastapi.responses import StreamingResponse

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range [first, last] a Range header asks for.

    Returns:
        None to send the whole file (no header, another unit, or several ranges).

    Raises:
        HTTPException(416): a single byte range that cannot be satisfied.
    """
    if header is None or not header.strip().lower().startswith("bytes") or "," in header:
        return None
    match = _RANGE_RE.match(header)
    first_s, last_s = (match.groups() if match else ("", ""))
    if match is None or (not first_s and not last_s):
        raise _unsatisfiable(header, size)
    if not first_s:  # suffix: the last N bytes
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return max(0, size - suffix), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if first >= size or last < first:
        raise _unsatisfiable(header, size)
    return first, min(last, size - 1)


def _unsatisfiable(header: str, size: int) -> HTTPException:
    return HTTPException(
        status.HTTP_416_RANGE_NOT_SATISFIABLE,
        f"range {header.strip()!r} cannot be served from a file of {size} bytes; ask for "
        f"bytes=FIRST-LAST with FIRST < {size} and LAST >= FIRST",
        headers={"Content-Range": f"bytes */{size}"},
    )


def _read(path: Path, first: int, last: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(first)
        remaining = last - first + 1
        while remaining > 0:
            chunk = f.read(min(CHUNK_BYTES, remaining))
            if not chunk:  # the file shrank under us: stop rather than pad
                log.warning("%s ended %d bytes early", path, remaining)
                return
            remaining -= len(chunk)
            yield chunk


def file_response(path: Path, range_header: str | None,
                  media_type: str = "video/mp4") -> StreamingResponse:
    """A 200 or 206 streaming response for `path` honouring one byte range."""
    stat = os.stat(path)
    size = stat.st_size
    byte_range = parse_range(range_header, size)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{size:x}"',
        # Episode files never change once complete: browsers may cache them.
        "Cache-Control": "private, max-age=3600",
    }
    if byte_range is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_read(path, 0, size - 1), media_type=media_type,
                                 headers=headers)
    first, last = byte_range
    headers["Content-Length"] = str(last - first + 1)
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(_read(path, first, last), status_code=206,
                             media_type=media_type, headers=headers)
