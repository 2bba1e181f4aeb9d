"""The robolearn wire envelope: encode a message to ZeroMQ frames and decode + validate them.

Frame 0 is a msgpack map ``{v, type, sender, seq, sent_ns, body, arrays}`` where ``arrays`` is
``[[name, dtype, shape], ...]``; frame ``i + 1`` holds the raw little-endian, C-ordered bytes of
array ``i``. Arrays are sent from their own buffer (no copy unless the input is not
C-contiguous) and decoded with ``np.frombuffer`` (no copy; the arrays are read-only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]
import numpy as np
import zmq

from robolearn.errors import ProtocolError
from robolearn.protocol.schema import (
    DTYPE_NAMES,
    FREE_ARRAY_DTYPES,
    MAX_DIM,
    MAX_NDIM,
    MessageSpec,
    get_spec,
)

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
ZERO_COPY_MIN_BYTES = 65536
"""Array frames at least this big are sent and (optionally) received without a copy; below
it a copy is cheaper than the bookkeeping of a zero-copy zmq.Frame."""
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""Largest total size (all frames) of a message a receiver accepts, unless configured."""
MAX_SENDER_LEN = 256
_MAX_SEQ = 2**63 - 1
_HEADER_KEYS = frozenset({"v", "type", "sender", "seq", "sent_ns", "body", "arrays"})

_Frame = zmq.Frame
_unpackb = msgpack.unpackb
_packb = msgpack.packb
_frombuffer = np.frombuffer
_monotonic_ns = time.monotonic_ns
_type = type
_ascontiguous = np.ascontiguousarray


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded, validated wire message. `arrays` are read-only views of the received frames."""

    type: str
    sender: str
    seq: int
    sent_ns: int
    body: dict[str, Any]
    arrays: dict[str, np.ndarray]
    version: int = PROTOCOL_VERSION
    peer: str | None = None
    """The authenticated identity (CURVE key name) of the connection it came in on, set by a
    socket whose server side admits only known keys; None where nothing authenticated it.
    Commands are attributed to this, never to `sender`, which any peer can write."""


def _check_sender_seq(sender: Any, seq: Any) -> None:
    if type(sender) is not str or not 0 < len(sender) <= MAX_SENDER_LEN:
        raise ProtocolError("bad_header", f"sender must be a str of 1..{MAX_SENDER_LEN} chars, "
                                          f"got {sender!r:.80}")
    if type(seq) is not int or not 0 <= seq <= _MAX_SEQ:
        raise ProtocolError("bad_header", f"seq must be an int in [0, 2**63), got {seq!r:.80}")


def _encode_array(spec: MessageSpec, name: Any, arr: Any) -> tuple[tuple[Any, ...], bool]:
    if type(name) is not str:
        raise ProtocolError("bad_header", f"{spec.type}: array name {name!r} is not a str")
    if not isinstance(arr, np.ndarray):
        raise ProtocolError("bad_field_type", f"{spec.type}: array {name!r} is "
                                              f"{type(arr).__name__}, expected numpy.ndarray")
    aspec = spec.arrays.get(name)
    if aspec is None:
        if not spec.free_arrays:
            raise ProtocolError("unknown_array", f"{spec.type}: unknown array {name!r}; "
                                                 f"known: {list(spec.arrays)}")
        dtype_name = DTYPE_NAMES.get(arr.dtype)
        if dtype_name not in FREE_ARRAY_DTYPES:
            raise ProtocolError("bad_dtype", f"{spec.type}: array {name!r} has dtype {arr.dtype}"
                                             f", allowed: {list(FREE_ARRAY_DTYPES)}")
        if arr.ndim > MAX_NDIM:
            raise ProtocolError("bad_shape", f"{spec.type}: array {name!r} has {arr.ndim} dims, "
                                             f"at most {MAX_NDIM} allowed")
        finite = False
    else:
        if arr.dtype != aspec.np_dtype:
            raise ProtocolError("bad_dtype", f"{spec.type}: array {name!r} has dtype "
                                             f"{arr.dtype}, expected {aspec.dtype}")
        dtype_name = aspec.dtype
        if len(arr.shape) != len(aspec.shape) or any(
            want is not None and want != got for want, got in zip(aspec.shape, arr.shape,
                                                                  strict=True)
        ):
            raise ProtocolError("bad_shape", f"{spec.type}: array {name!r} has shape "
                                             f"{arr.shape}, expected {aspec.shape}")
        finite = aspec.finite
    for d in arr.shape:
        if d > MAX_DIM:
            raise ProtocolError("oversized", f"{spec.type}: array {name!r} dim {d} > {MAX_DIM}")
    return (name, dtype_name, arr.shape), finite


def encode(
    type: str,
    sender: str,
    seq: int,
    body: dict[str, Any],
    arrays: dict[str, np.ndarray] | None = None,
) -> list[Any]:
    """Encode and validate one outbound message.

    Args:
        type: a registered message type.
        sender: the sending process/device name (1..256 chars).
        seq: the sender's sequence number (>= 0).
        body: the body fields, checked against the type's spec.
        arrays: named numpy arrays; each travels as its own frame.

    Returns:
        The multipart frames: the msgpack header (bytes), then one C-contiguous ndarray per
        array (its buffer is sent as is; do not mutate an array while a send is in flight).

    Raises:
        ProtocolError: the message does not satisfy its spec (same reasons as `decode`).
    """
    spec = get_spec(type)
    _check_sender_seq(sender, seq)
    body = spec.check_body(body, outbound=True)
    frames: list[Any] = [b""]
    if arrays:
        try:
            layout = ("enc", *[(name, arr.dtype, arr.shape) for name, arr in arrays.items()])
            plan = spec.cache.get(layout)
        except (AttributeError, TypeError):  # not arrays: the full check says what is wrong
            layout, plan = None, None
        if plan is None:
            plan = _encode_plan(spec, arrays)
            if layout is not None:
                spec.remember(layout, plan)
        meta, finite = plan
        for arr, check in zip(arrays.values(), finite, strict=True):
            if _type(arr) is not np.ndarray and not isinstance(arr, np.ndarray):
                raise ProtocolError("bad_field_type", f"{type}: array is "
                                                      f"{_type(arr).__name__}, not an ndarray")
            if check and not np.isfinite(arr).all():
                bad = [name for name, a in arrays.items() if a is arr]
                raise ProtocolError("non_finite", f"{type}: array {bad[0]!r} must be finite")
            # the same object when already C-contiguous: its buffer is sent without a copy
            frames.append(_ascontiguous(arr))
    else:
        meta = ()
        if spec.required_arrays:
            raise ProtocolError("missing_array", f"{type}: arrays {spec.required_arrays} "
                                                 "are required")
    try:
        frames[0] = _packb({
            "v": PROTOCOL_VERSION, "type": type, "sender": sender, "seq": seq,
            "sent_ns": _monotonic_ns(), "body": body, "arrays": meta,
        })
    except (TypeError, ValueError, OverflowError) as e:
        raise ProtocolError("bad_field_type", f"{type}: body cannot be packed: {e}") from e
    return frames


def _encode_plan(spec: MessageSpec, arrays: dict[str, Any]
                 ) -> tuple[tuple[Any, ...], tuple[bool, ...]]:
    """Fully check the arrays' names, dtypes and shapes (not values); returns the header
    entries and which arrays need a finite check."""
    meta = []
    finite = []
    for name, arr in arrays.items():
        entry, check = _encode_array(spec, name, arr)
        meta.append(entry)
        finite.append(check)
    for name in spec.required_arrays:
        if name not in arrays:
            raise ProtocolError("missing_array", f"{spec.type}: array {name!r} is required")
    if spec.linked_arrays:
        spec.check_linked_shapes({entry[0]: entry[2] for entry in meta})
    return tuple(meta), tuple(finite)


def send_frames(socket: zmq.Socket[Any], frames: list[Any], flags: int = 0,
                prefix: Sequence[bytes] = ()) -> None:
    """Send `encode`'s frames (after routing `prefix` frames), zero-copy only for large ones.

    Raises:
        zmq.Again: with NOBLOCK in `flags`, when the send would block.
    """
    big = False
    for f in frames[1:]:
        if f.nbytes >= ZERO_COPY_MIN_BYTES:
            big = True
            break
    socket.send_multipart([*prefix, *frames] if prefix else frames, flags, copy=not big)


def _nbytes(buf: Any) -> int:
    t = type(buf)
    if t is bytes:
        return len(buf)
    return (buf if t is memoryview else memoryview(buf)).nbytes


def decode(
    frames: Sequence[bytes | memoryview | zmq.Frame], *, max_bytes: int = DEFAULT_MAX_BYTES,
    peer: str | None = None,
) -> Message:
    """Decode and strictly validate one received multipart message.

    Args:
        frames: the frames as received (bytes, memoryviews or zmq.Frame from copy=False).
        max_bytes: the largest total size accepted.
        peer: the authenticated identity the socket reported for the frames (Message.peer).

    Returns:
        The Message; its arrays are zero-copy, read-only views of the frames.

    Raises:
        ProtocolError: with `reason` one of frame_count, oversized, bad_header, bad_version,
            unknown_type, missing_field, extra_field, bad_field_type, bad_choice, non_finite,
            unknown_array, missing_array, bad_dtype, bad_shape, size_mismatch.
    """
    bufs: list[Any] = [f.buffer if type(f) is _Frame else f for f in frames]
    n = len(bufs)
    total = 0
    for b in bufs:
        total += len(b) if type(b) is bytes else _nbytes(b)
    if n == 0 or _nbytes(bufs[0]) == 0:
        raise ProtocolError("frame_count", "empty message: no header frame")
    if total > max_bytes:
        raise ProtocolError("oversized", f"message is {total} bytes, limit {max_bytes}")
    try:
        header = _unpackb(bufs[0], use_list=False)
    except Exception as e:  # msgpack raises many types on garbage; all mean the same here
        raise ProtocolError("bad_header", f"header frame is not msgpack: {e!r:.120}") from None
    if type(header) is not dict:
        raise ProtocolError("bad_header", f"header is {type(header).__name__}, expected a map")
    v = header.get("v")
    if type(v) is not int or v != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"protocol version {v!r:.40}, "
                                           f"expected {PROTOCOL_VERSION}")
    if len(header) != 7 or header.keys() != _HEADER_KEYS:
        keys = set(header)
        raise ProtocolError("bad_header", f"header keys: missing {sorted(_HEADER_KEYS - keys)}, "
                                          f"unexpected {sorted(map(str, keys - _HEADER_KEYS))}")
    mtype = header["type"]
    spec = get_spec(mtype)
    sender = header["sender"]
    seq = header["seq"]
    _check_sender_seq(sender, seq)
    sent_ns = header["sent_ns"]
    if type(sent_ns) is not int or sent_ns < 0:
        raise ProtocolError("bad_header", f"sent_ns must be an int >= 0, got {sent_ns!r:.40}")
    body = spec.check_body(header["body"])
    meta = header["arrays"]
    if type(meta) is not tuple:
        raise ProtocolError("bad_header", f"arrays is {type(meta).__name__}, expected a list")
    if len(meta) != n - 1:
        raise ProtocolError("frame_count", f"{mtype}: header lists {len(meta)} arrays but "
                                           f"{n - 1} array frames arrived")
    arrays: dict[str, np.ndarray] = {}
    if meta or spec.required_arrays:
        key = ("dec", meta)
        try:
            plan = spec.cache.get(key)
        except TypeError:  # a map somewhere in the entries: the full check rejects it
            key, plan = None, None  # type: ignore[assignment]
        if plan is None:
            plan = _decode_plan(spec, meta)
            if key is not None:
                spec.remember(key, plan)
        for i, (name, dtype, shape, nbytes, finite) in enumerate(plan, 1):
            buf = bufs[i]
            if (len(buf) if type(buf) is bytes else _nbytes(buf)) != nbytes:
                raise ProtocolError("size_mismatch", f"{mtype}: array {name!r} {dtype}{shape} "
                                                     f"needs {nbytes} bytes, frame has "
                                                     f"{_nbytes(buf)}")
            arr = _frombuffer(buf, dtype)
            if len(shape) != 1:
                arr = arr.reshape(shape)
            if finite and not np.isfinite(arr).all():
                raise ProtocolError("non_finite", f"{mtype}: array {name!r} must be finite")
            arrays[name] = arr
    return Message(mtype, sender, seq, sent_ns, body, arrays, v, peer)


def _decode_plan(spec: MessageSpec, meta: tuple[Any, ...]) -> tuple[tuple[Any, ...], ...]:
    """Fully check the array entries of a header; returns per array (name, dtype, shape,
    nbytes, finite). Only layouts that pass are cached, keyed on the entries themselves.
    Note: a cached layout also matches entries that compare equal (a dim of 3.0 == 3); the
    plan's own int shape is used then, so the arrays are the same either way."""
    mtype = spec.type
    specs = spec.arrays
    plan = []
    names: set[str] = set()
    for i, entry in enumerate(meta):
        if type(entry) is not tuple or len(entry) != 3:
            raise ProtocolError("bad_header", f"{mtype}: array entry {i} is not [name, dtype, "
                                              "shape]")
        name, dtype_name, shape = entry
        if type(name) is not str or name in names:
            raise ProtocolError("bad_header", f"{mtype}: array entry {i} has a bad or duplicate "
                                              f"name {name!r:.40}")
        names.add(name)
        aspec = specs.get(name)
        if aspec is None:
            if not spec.free_arrays:
                raise ProtocolError("unknown_array", f"{mtype}: unknown array {name!r:.60}; "
                                                     f"known: {list(specs)}")
            dtype = FREE_ARRAY_DTYPES.get(dtype_name) if type(dtype_name) is str else None
            if dtype is None:
                raise ProtocolError("bad_dtype", f"{mtype}: array {name!r} dtype "
                                                 f"{dtype_name!r:.40} not in "
                                                 f"{list(FREE_ARRAY_DTYPES)}")
            if type(shape) is not tuple or len(shape) > MAX_NDIM:
                raise ProtocolError("bad_shape", f"{mtype}: array {name!r} shape {shape!r:.80} "
                                                 f"is not a list of <= {MAX_NDIM} dims")
            want: tuple[Any, ...] = (None,) * len(shape)
            finite = False
        else:
            if type(dtype_name) is not str or dtype_name != aspec.dtype:
                raise ProtocolError("bad_dtype", f"{mtype}: array {name!r} dtype "
                                                 f"{dtype_name!r:.40}, expected {aspec.dtype}")
            dtype = aspec.np_dtype
            want = aspec.shape
            if type(shape) is not tuple or len(shape) != len(want):
                raise ProtocolError("bad_shape", f"{mtype}: array {name!r} shape {shape!r:.80},"
                                                 f" expected {want}")
            finite = aspec.finite
        count = 1
        for d, w in zip(shape, want, strict=True):
            if type(d) is not int or d < 0:
                raise ProtocolError("bad_shape", f"{mtype}: array {name!r} shape {shape!r:.80}"
                                                 " has a non-int or negative dim")
            if d > MAX_DIM:
                raise ProtocolError("oversized", f"{mtype}: array {name!r} dim {d} > {MAX_DIM}")
            if w is not None and d != w:
                raise ProtocolError("bad_shape", f"{mtype}: array {name!r} shape {shape}, "
                                                 f"expected {want}")
            count *= d
        plan.append((name, dtype, shape, count * dtype.itemsize, finite))
    for name in spec.required_arrays:
        if name not in names:
            raise ProtocolError("missing_array", f"{mtype}: array {name!r} is required")
    if spec.linked_arrays:
        spec.check_linked_shapes({p[0]: p[2] for p in plan})
    return tuple(plan)


def peek_seq(frames: Sequence[bytes | memoryview | zmq.Frame]) -> int:
    """Best-effort sequence number of a message that failed `decode` (-1 if unreadable), so a
    replier can still address its error reply to the right request."""
    try:
        first = frames[0]
        header = _unpackb(first.buffer if type(first) is _Frame else first)
        seq = header.get("seq") if type(header) is dict else None
    except Exception:  # anything unreadable simply has no seq
        return -1
    return seq if type(seq) is int else -1


__all__ = [
    "DEFAULT_MAX_BYTES", "PROTOCOL_VERSION", "ZERO_COPY_MIN_BYTES", "Message", "decode", "encode",
    "peek_seq", "send_frames",
]
