"""Message schemas: what each wire message type may carry, checked on encode and on decode.

A `MessageSpec` names the body fields (`FieldSpec`) and the arrays (`ArraySpec`) of one message
type. Specs are compiled once at construction (type sets, numpy dtypes, required names), so the
per-message checks are dictionary look-ups and exact-type comparisons.
"""

from __future__ import annotations

import builtins
import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import NoneType
from typing import Any

import numpy as np

from robolearn.errors import ConfigError, ProtocolError

log = logging.getLogger(__name__)

MAX_DIM = 8192
"""Largest length of any array dimension, free (None) or not."""
MAX_NDIM = 8
"""Most dimensions of a free array (one whose name is not in the spec)."""
MAX_NESTING = 8
"""Deepest nesting of lists/maps inside a free-form dict field."""

# Wire dtype names -> little-endian numpy dtypes. The wire is little-endian whatever the host.
WIRE_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code)
    for name, code in (
        ("bool", "|b1"), ("uint8", "|u1"), ("int8", "|i1"), ("uint16", "<u2"),
        ("int16", "<i2"), ("uint32", "<u4"), ("int32", "<i4"), ("uint64", "<u8"),
        ("int64", "<i8"), ("float16", "<f2"), ("float32", "<f4"), ("float64", "<f8"),
    )
}
FREE_ARRAY_DTYPES: dict[str, np.dtype] = {
    name: WIRE_DTYPES[name] for name in ("uint8", "int32", "int64", "float32", "float64", "bool")
}
"""The dtypes an array may have when the spec allows free arrays (`free_arrays=True`)."""
DTYPE_NAMES: dict[np.dtype, str] = {dt: name for name, dt in WIRE_DTYPES.items()}

_FIELD_TYPES = frozenset({bool, int, float, str, bytes, NoneType, list, dict})
_PLAIN_SCALARS = frozenset({NoneType, bool, int, float, str, bytes})


def _type_names(types: Collection[type]) -> str:
    return "|".join(sorted("None" if t is NoneType else t.__name__ for t in types))


def _coerce_numpy(value: Any, accepted: frozenset[type]) -> Any:
    """Outbound only: turn numpy scalars into the Python scalars msgpack writes natively."""
    if isinstance(value, np.bool_) and bool in accepted:
        return bool(value)
    if isinstance(value, np.integer) and int in accepted:
        return int(value)
    if isinstance(value, np.integer | np.floating) and float in accepted:
        return float(value)
    return value


def _plain(name: str, value: Any, depth: int, outbound: bool) -> Any:
    """Check a free-form value (msgpack scalars, lists, str-keyed maps); outbound, convert
    numpy scalars and tuples. Returns the (possibly converted) value."""
    t = type(value)
    if t in _PLAIN_SCALARS:
        return value
    if depth >= MAX_NESTING:
        raise ProtocolError("bad_field_type", f"field {name!r}: nested deeper than {MAX_NESTING}")
    if t is tuple or t is list:
        out = [_plain(name, v, depth + 1, outbound) for v in value]
        return value if not outbound else out
    if t is dict:
        out_d = {}
        for k, v in value.items():
            if type(k) is not str:
                raise ProtocolError("bad_field_type", f"field {name!r}: map key {k!r} is not a str")
            out_d[k] = _plain(name, v, depth + 1, outbound)
        return value if not outbound else out_d
    if outbound and isinstance(value, np.generic):
        return value.item()
    raise ProtocolError("bad_field_type", f"field {name!r}: {t.__name__} is not a msgpack value")


@dataclass(frozen=True)
class FieldSpec:
    """One body field.

    Args:
        type: a type or tuple of types among bool, int, float, str, bytes, list, dict, None.
            Checked exactly: a bool is not an int. A float field also accepts an int.
        required: the field must be present.
        choices: if given, the value must be one of these.
        finite: a float value must be finite (no NaN/inf).
        values: for dict fields, the exact types each value may have; None allows any
            msgpack value (nested lists/str-keyed maps included).
    """

    # `builtins.type`: the field named `type` shadows the builtin inside the class body.
    type: builtins.type | tuple[builtins.type | None, ...] | None
    required: bool = True
    choices: Collection[Any] | None = None
    finite: bool = False
    values: tuple[builtins.type | None, ...] | None = None
    accepted: frozenset[builtins.type] = field(init=False, repr=False, compare=False)
    value_types: frozenset[builtins.type] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        declared = {NoneType if t is None else t for t in types}
        bad = declared - _FIELD_TYPES
        if bad:
            raise ConfigError(f"FieldSpec: unsupported field type(s) {bad}; use {_FIELD_TYPES}")
        accepted = set(declared)
        if float in declared:
            accepted.add(int)
        if list in declared:  # decoded with use_list=False: msgpack arrays arrive as tuples
            accepted.add(tuple)
        object.__setattr__(self, "accepted", frozenset(accepted))
        if self.choices is not None:
            object.__setattr__(self, "choices", frozenset(self.choices))
        value_types: frozenset[builtins.type] | None = None
        if self.values is not None:
            value_types = frozenset(NoneType if t is None else t for t in self.values)
            if float in value_types:
                value_types = value_types | {int}
        object.__setattr__(self, "value_types", value_types)

    def check(self, name: str, value: Any, outbound: bool = False) -> Any:
        """Validate one value; outbound, also convert numpy scalars. Returns the value."""
        t = type(value)
        if t not in self.accepted:
            if outbound:
                value = _coerce_numpy(value, self.accepted)
                t = type(value)
            if t not in self.accepted:
                raise ProtocolError(
                    "bad_field_type",
                    f"field {name!r}: expected {_type_names(self.accepted)}, got {t.__name__}",
                )
        if t is float and self.finite and not math.isfinite(value):
            raise ProtocolError("non_finite", f"field {name!r} must be finite, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ProtocolError(
                "bad_choice", f"field {name!r}: {value!r} is not one of {sorted(self.choices)}"
            )
        if t is dict:
            return self._check_dict(name, value, outbound)
        if t is list or t is tuple:
            return _plain(name, value, 0, outbound)
        return value

    def _check_dict(self, name: str, value: dict[str, Any], outbound: bool) -> dict[str, Any]:
        vt = self.value_types
        if vt is None:
            plain: dict[str, Any] = _plain(name, value, 0, outbound)
            return plain
        out = {} if outbound else value
        for k, v in value.items():
            if type(k) is not str:
                raise ProtocolError("bad_field_type", f"field {name!r}: map key {k!r} is not a str")
            if type(v) not in vt:
                if outbound:
                    v = _coerce_numpy(v, vt)
                if type(v) not in vt:
                    raise ProtocolError(
                        "bad_field_type",
                        f"field {name!r}[{k!r}]: expected {_type_names(vt)}, "
                        f"got {type(v).__name__}",
                    )
            if outbound:
                out[k] = v
        return out


@dataclass(frozen=True)
class ArraySpec:
    """One named array. `shape` dims of None are free (each still <= MAX_DIM).

    `leading_dims_of` names another array of the same message whose leading dims this
    array's shape must equal when both are present (a depth map [H, W] beside its colour
    image [H, W, 3]): a per-pixel array of another size would be misread pixel for pixel.
    """

    dtype: str
    shape: tuple[int | None, ...]
    required: bool = True
    finite: bool = False
    leading_dims_of: str | None = None
    np_dtype: np.dtype = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.dtype not in WIRE_DTYPES:
            raise ConfigError(f"ArraySpec: dtype {self.dtype!r} is not one of {list(WIRE_DTYPES)}")
        shape = tuple(self.shape)
        if len(shape) > MAX_NDIM or any(
            d is not None and not (type(d) is int and 0 <= d <= MAX_DIM) for d in shape
        ):
            raise ConfigError(f"ArraySpec: shape {shape!r} needs <= {MAX_NDIM} dims, each "
                              f"None or an int in [0, {MAX_DIM}]")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "np_dtype", WIRE_DTYPES[self.dtype])
        if self.finite and self.np_dtype.kind != "f":
            raise ConfigError(f"ArraySpec: finite=True needs a float dtype, not {self.dtype}")


_CACHE_MAX = 1024  # distinct valid shapes of body/arrays remembered per spec


@dataclass(frozen=True)
class MessageSpec:
    """The schema of one message type. Unknown body fields and arrays are rejected unless
    `free_arrays` is set, which admits any extra array of a FREE_ARRAY_DTYPES dtype.

    Hot-path note: a body whose (field names, exact value types) signature already passed a
    full check is re-checked only where values matter (choices, finite floats, nested maps and
    lists); codec.py caches array layouts the same way. Caches are bounded and hold only
    layouts that passed the full check.
    """

    type: str
    fields: Mapping[str, FieldSpec] = field(default_factory=dict)
    arrays: Mapping[str, ArraySpec] = field(default_factory=dict)
    free_arrays: bool = False
    required_fields: tuple[str, ...] = field(init=False, repr=False, compare=False)
    required_arrays: tuple[str, ...] = field(init=False, repr=False, compare=False)
    linked_arrays: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)
    value_checked: tuple[tuple[str, FieldSpec], ...] = field(init=False, repr=False,
                                                             compare=False)
    cache: dict[Any, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise ConfigError(f"MessageSpec: type must be a non-empty str, got {self.type!r}")
        object.__setattr__(self, "fields", dict(self.fields))
        object.__setattr__(self, "arrays", dict(self.arrays))
        object.__setattr__(
            self, "required_fields", tuple(n for n, f in self.fields.items() if f.required)
        )
        object.__setattr__(
            self, "required_arrays", tuple(n for n, a in self.arrays.items() if a.required)
        )
        linked = tuple((n, a.leading_dims_of) for n, a in self.arrays.items()
                       if a.leading_dims_of is not None)
        for name, other in linked:
            if other not in self.arrays or other == name:
                raise ConfigError(f"MessageSpec {self.type}: array {name!r} has "
                                  f"leading_dims_of={other!r}, not another array of the spec")
            if len(self.arrays[name].shape) > len(self.arrays[other].shape):
                raise ConfigError(f"MessageSpec {self.type}: array {name!r} has more dims "
                                  f"than {other!r}, so it cannot match its leading dims")
        object.__setattr__(self, "linked_arrays", linked)
        object.__setattr__(self, "value_checked", tuple(
            (n, f) for n, f in self.fields.items()
            if f.choices is not None or (f.finite and float in f.accepted)
            or dict in f.accepted or list in f.accepted
        ))
        # keys: ("body", names, types) -> True; ("dec", meta) / ("enc", layout) -> array plans
        object.__setattr__(self, "cache", {})

    def remember(self, key: Any, value: Any) -> None:
        """Cache a layout that passed the full check (bounded; cleared when full)."""
        cache = self.cache
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = value

    def check_linked_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Check `leading_dims_of` between arrays already checked one by one.

        Raises:
            ProtocolError: ("bad_shape") an array's dims differ from its partner's.
        """
        for name, other in self.linked_arrays:
            shape, partner = shapes.get(name), shapes.get(other)
            if shape is None or partner is None:
                continue
            if tuple(shape) != tuple(partner[:len(shape)]):
                raise ProtocolError("bad_shape", f"{self.type}: array {name!r} has shape "
                                                 f"{tuple(shape)}, expected the leading dims "
                                                 f"of {other!r} {tuple(partner)}")

    def check_body(self, body: Any, outbound: bool = False) -> dict[str, Any]:
        """Validate a body map. Returns it (outbound: numpy scalars converted, in a copy)."""
        if type(body) is not dict:
            raise ProtocolError("bad_header", f"{self.type}: body is {type(body).__name__}, "
                                              "expected a map")
        sig = ("body", tuple(body), tuple(map(type, body.values())))
        if sig in self.cache:
            changed = None
            for name, spec in self.value_checked:
                value = body.get(name, _MISSING)
                if value is not _MISSING:
                    new = spec.check(name, value, outbound)
                    if new is not value:
                        changed = changed or {}
                        changed[name] = new
            return {**body, **changed} if changed else body
        out = self._check_body_full(body, outbound)
        self.remember(("body", tuple(out), tuple(map(type, out.values()))), True)
        return out

    def _check_body_full(self, body: dict[str, Any], outbound: bool) -> dict[str, Any]:
        for name in self.required_fields:
            if name not in body:
                raise ProtocolError("missing_field", f"{self.type}: field {name!r} is required")
        fields = self.fields
        out = {} if outbound else body
        for name, value in body.items():
            spec = fields.get(name)
            if spec is None:
                raise ProtocolError(
                    "extra_field", f"{self.type}: unknown field {name!r:.60}; "
                                   f"known: {list(fields)}"
                )
            value = spec.check(name, value, outbound)
            if outbound:
                out[name] = value
        return out


_MISSING = object()


_REGISTRY: dict[str, MessageSpec] = {}


def register(spec: MessageSpec, *, replace: bool = False) -> MessageSpec:
    """Add a message type to the registry. Registering an equal spec again is a no-op.

    Returns:
        The registered spec (the existing one when an equal spec was already registered).

    Raises:
        ConfigError: a different spec is already registered under this type and not `replace`.
    """
    old = _REGISTRY.get(spec.type)
    if old is not None and old == spec and not replace:
        return old
    if old is not None and not replace:
        raise ConfigError(f"message type {spec.type!r} is already registered with another "
                          "spec; pass replace=True to override it")
    _REGISTRY[spec.type] = spec
    return spec


def get_spec(type: str) -> MessageSpec:
    """Look up a registered spec.

    Raises:
        ProtocolError: ("unknown_type") if no spec is registered under `type`.
    """
    try:
        return _REGISTRY[type]
    except (KeyError, TypeError):
        raise ProtocolError("unknown_type", f"message type {type!r} is not registered; "
                            f"known: {sorted(_REGISTRY)}") from None


def registered_types() -> list[str]:
    """Names of all registered message types."""
    return sorted(_REGISTRY)
