"""Pack a state dict into one wire-friendly blob and back (learner -> actor weights)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

ROW_BYTES = 8192


def pack_state_dict(state: dict[str, torch.Tensor]) -> tuple[list[list[Any]], np.ndarray]:
    """Returns (layout, blob): layout rows are [name, dtype, shape, offset]; blob is uint8
    [rows, ROW_BYTES] (zero padded)."""
    layout: list[list[Any]] = []
    parts: list[np.ndarray] = []
    offset = 0
    for name, tensor in state.items():
        arr = tensor.detach().to("cpu").contiguous().numpy()
        raw = arr.reshape(-1).view(np.uint8)
        layout.append([name, arr.dtype.str, list(arr.shape), offset])
        parts.append(raw)
        offset += raw.size
    rows = max(1, -(-offset // ROW_BYTES))
    blob = np.zeros(rows * ROW_BYTES, dtype=np.uint8)
    if parts:
        blob[:offset] = np.concatenate(parts)
    return layout, blob.reshape(rows, ROW_BYTES)


def unpack_state_dict(layout: list[Any], blob: np.ndarray) -> dict[str, torch.Tensor]:
    """Inverse of `pack_state_dict`.

    Raises:
        ValueError: a layout entry points outside the blob or has an unknown dtype.
    """
    flat = np.ascontiguousarray(blob).reshape(-1)
    out: dict[str, torch.Tensor] = {}
    for entry in layout:
        name, dtype_str, shape, offset = entry
        dtype = np.dtype(dtype_str)
        if dtype.kind not in "fiub":
            raise ValueError(f"weights: tensor {name!r} has unsupported dtype {dtype_str}")
        count = int(np.prod(shape)) if shape else 1
        end = int(offset) + count * dtype.itemsize
        if offset < 0 or end > flat.size:
            raise ValueError(f"weights: tensor {name!r} [{offset}, {end}) is outside the "
                             f"{flat.size}-byte blob")
        arr = flat[int(offset):end].view(dtype).reshape(shape).copy()
        out[str(name)] = torch.from_numpy(arr)
    return out


def pack_policy(parts: dict[str, dict[str, torch.Tensor]]) -> tuple[list[list[Any]], np.ndarray]:
    """Pack an agent's `policy_state_dict()` (module name -> state dict).

    A module without tensors (an identity encoder) still gets a zero-size marker entry, so
    the receiver sees every part the sender has.
    """
    flat: dict[str, torch.Tensor] = {}
    for part, sd in parts.items():
        if not sd:
            flat[f"{part}/"] = torch.zeros(0, dtype=torch.uint8)
        flat.update({f"{part}/{k}": v for k, v in sd.items()})
    return pack_state_dict(flat)


def unpack_policy(layout: list[Any], blob: np.ndarray) -> dict[str, dict[str, torch.Tensor]]:
    """Inverse of `pack_policy`."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in unpack_state_dict(layout, blob).items():
        part, _, name = key.partition("/")
        entries = parts.setdefault(part, {})
        if name:
            entries[name] = value
    return parts


def nonfinite_tensors(parts: dict[str, dict[str, torch.Tensor]]) -> list[str]:
    """Names ("part/tensor") of the floating-point tensors that hold a NaN or inf.

    One host sync for all tensors together, so checking a whole policy stays cheap.
    """
    names: list[str] = []
    flags: list[torch.Tensor] = []
    for part, sd in parts.items():
        for name, tensor in sd.items():
            if tensor.is_floating_point() and tensor.numel():
                names.append(f"{part}/{name}")
                flags.append(torch.isfinite(tensor).all())
    if not flags:
        return []
    finite = torch.stack(flags).tolist()
    return [name for name, ok in zip(names, finite, strict=True) if not ok]
