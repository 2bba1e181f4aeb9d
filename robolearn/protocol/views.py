"""Typed, read-only views of validated messages: one frozen dataclass per message type.

A view is declared next to its `MessageSpec` (robolearn/protocol/messages.py) with
`@view_of(SPEC)`, which checks at import that the dataclass names exactly the spec's fields and
arrays, and that an optional one (`required=False`) defaults to None while a required one has
no default. `View.from_message(msg)` then reads the message into the view with no second
validation pass: the socket already checked the message against the same spec on arrival.

A spec with `free_arrays` has views with an `arrays` attribute too: the message's whole
read-only array map, where the named extras (camera images) are found.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

from robolearn.errors import ConfigError, ProtocolError
from robolearn.protocol.codec import Message
from robolearn.protocol.schema import MessageSpec

FREE_ARRAYS = "arrays"
"""The attribute of a free-array view that holds the message's whole array map."""


class View:
    """Base of the message views. Subclasses are frozen dataclasses made by `view_of`."""

    __slots__ = ()

    SPEC: ClassVar[MessageSpec]
    # (name, source) per dataclass field in declaration order; source: 0 body, 1 array,
    # 2 the whole array map.
    _LAYOUT: ClassVar[tuple[tuple[str, int], ...]]

    @classmethod
    def from_message(cls, msg: Message) -> Self:
        """Read a validated message of this view's type.

        Raises:
            ProtocolError: ("wrong_type") the message is of another type.
        """
        if msg.type != cls.SPEC.type:
            raise ProtocolError("wrong_type", f"{cls.__name__} reads {cls.SPEC.type} messages, "
                                              f"got {msg.type}")
        body, arrays = msg.body, msg.arrays
        return cls(*[body.get(name) if source == 0 else arrays.get(name) if source == 1
                     else arrays for name, source in cls._LAYOUT])


V = TypeVar("V", bound=View)


# frozen_default: mypy then knows a view is a frozen dataclass (its __init__ and read-only
# fields) although the decorator builds it at run time.
@dataclass_transform(frozen_default=True)
def view_of(spec: MessageSpec) -> Callable[[type[V]], type[V]]:
    """Class decorator: make a frozen, slotted dataclass the view of `spec`.

    Raises:
        ConfigError: the class's fields differ from the spec's fields and arrays (a name
            missing or extra, or an optional one without a None default).
    """

    def wrap(cls: type[V]) -> type[V]:
        dc: Any = dataclasses.dataclass(frozen=True, slots=True)(cls)
        fields = dataclasses.fields(dc)
        names = [f.name for f in fields]
        expected = set(spec.fields) | set(spec.arrays) | ({FREE_ARRAYS} if spec.free_arrays
                                                          else set())
        if set(names) != expected or len(names) != len(expected):
            raise ConfigError(f"view {cls.__name__} of {spec.type}: fields {sorted(names)}, "
                              f"expected the spec's {sorted(expected)}")
        if set(spec.fields) & set(spec.arrays):
            raise ConfigError(f"view {cls.__name__}: {spec.type} names a field and an array "
                              "alike; a view cannot hold both")
        for f in fields:
            required = (spec.fields[f.name].required if f.name in spec.fields
                        else spec.arrays[f.name].required if f.name in spec.arrays else True)
            has_default = f.default is not dataclasses.MISSING
            if required == has_default or (has_default and f.default is not None):
                raise ConfigError(f"view {cls.__name__}.{f.name}: "
                                  + ("optional in the spec, so it needs `= None`" if not required
                                     else "required in the spec, so it takes no default"))
        dc.SPEC = spec
        dc._LAYOUT = tuple((n, 0 if n in spec.fields else 1 if n in spec.arrays else 2)
                           for n in names)
        out: type[V] = dc
        return out

    return wrap


__all__ = ["FREE_ARRAYS", "View", "view_of"]
