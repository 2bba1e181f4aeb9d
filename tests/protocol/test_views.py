"""Typed message views: one per registered type, its fields the spec's names and types, read
from messages that went through real sockets."""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import typing
from types import NoneType, UnionType
from typing import Any

import numpy as np
import pytest
import zmq

from robolearn.errors import ConfigError, ProtocolError
from robolearn.protocol import (
    Message,
    Publisher,
    Subscriber,
    decode,
    encode,
    messages,
    registered_types,
    views,
)
from robolearn.protocol.schema import FieldSpec, MessageSpec
from robolearn.protocol.views import FREE_ARRAYS, View, view_of
from tests.protocol.util import arm_state, wait_until

VIEWS: dict[str, type[View]] = {
    cls.SPEC.type: cls for _, cls in inspect.getmembers(messages, inspect.isclass)
    if issubclass(cls, View) and cls is not View
}


def test_every_message_type_has_one_view() -> None:
    specs = {v.type for v in vars(messages).values() if isinstance(v, MessageSpec)}
    assert len(specs) >= 14 and specs <= set(registered_types())
    assert set(VIEWS) == specs


def _members(hint: Any) -> set[Any]:
    """The runtime classes an annotation admits (None as NoneType)."""
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        return set().union(*(_members(a) for a in typing.get_args(hint)))
    return {typing.get_origin(hint) or hint}


@pytest.mark.parametrize("mtype", sorted(VIEWS))
def test_view_annotations_match_the_spec(mtype: str) -> None:
    view = VIEWS[mtype]
    spec = view.SPEC
    hints = typing.get_type_hints(view, {**vars(views), **vars(messages)})
    for f in dataclasses.fields(view):
        admitted = _members(hints[f.name])
        if f.name in spec.fields:
            fs = spec.fields[f.name]
            types = fs.type if isinstance(fs.type, tuple) else (fs.type,)
            want = {NoneType if t is None else t for t in types}
            # A list field arrives as a tuple: the view says Sequence.
            want = {typing.Sequence if t is list else t for t in want}
            admitted = {typing.Sequence if t is collections.abc.Sequence else t
                        for t in admitted}
            if not fs.required:
                want.add(NoneType)
            assert admitted == want, f.name
        elif f.name in spec.arrays:
            want_arr = {np.ndarray} | (set() if spec.arrays[f.name].required else {NoneType})
            assert admitted == want_arr, f.name
            dtype = typing.get_args(typing.get_args(hints[f.name])[1])[0] if \
                spec.arrays[f.name].required else None
            if dtype is not None:
                assert np.dtype(dtype) == spec.arrays[f.name].np_dtype, f.name
        else:
            assert f.name == FREE_ARRAYS and spec.free_arrays


def test_arm_state_read_from_a_real_socket(ctx: zmq.Context) -> None:
    pub = Publisher(ctx, "inproc://views-state", "arm")
    sub = Subscriber(ctx, "inproc://views-state", types=["arm_state"])
    try:
        _, body, arrays = arm_state(42)
        body = {**body, "task": "reach", "task_success": True}
        arrays = {**arrays, "object_state": np.array([0.1, 0.2, 0.3])}

        def got() -> bool:
            pub.publish("arm_state", body, arrays)
            sub.poll()
            return sub.latest("arm_state") is not None

        assert wait_until(got)
        msg = sub.latest("arm_state")
        assert msg is not None
        state = messages.ArmState.from_message(msg)
        assert state.stamp_ns == 42 and state.task == "reach" and state.task_success is True
        assert state.estop is False and state.estop_by is None
        assert np.array_equal(state.ee_pos_m, arrays["ee_pos_m"])
        assert state.object_state is not None and state.object_state.dtype == np.float64
        with pytest.raises(dataclasses.FrozenInstanceError):
            state.estop = True  # type: ignore[misc]
    finally:
        pub.close()
        sub.close()


def test_absent_optional_parts_read_as_none() -> None:
    _, body, arrays = arm_state(1)
    state = messages.ArmState.from_message(decode(encode("arm_state", "a", 0, body, arrays)))
    assert (state.task, state.task_success, state.object_state) == (None, None, None)


def test_free_array_view_reads_its_images() -> None:
    rng = np.random.default_rng(0)
    front = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    body = {"episode": "e", "step": 3, "reward": 1, "terminated": True, "truncated": False,
            "intervention": False, "recorded": False, "task": "reach"}
    arrays = {"action": np.zeros(4, np.float32), "next_low_dim": np.ones(5, np.float32),
              "next_rgb_front": front}
    t = messages.Transition.from_message(decode(encode("transition", "a", 0, body, arrays)))
    assert (t.episode, t.step, t.reward, t.terminated, t.low_dim) == ("e", 3, 1, True, None)
    assert np.array_equal(t.images(["front"])["front"], front)
    with pytest.raises(KeyError):
        t.images(["front"], prefix="rgb_")


def test_a_view_refuses_a_message_of_another_type() -> None:
    msg = decode(encode("episode_stored", "a", 0, {"episode": "e", "episode_id": 1}))
    with pytest.raises(ProtocolError) as err:
        messages.ArmState.from_message(msg)
    assert err.value.reason == "wrong_type"


def test_view_of_refuses_a_class_that_differs_from_its_spec() -> None:
    spec = MessageSpec("views_test", fields={"a": FieldSpec(int),
                                             "b": FieldSpec(str, required=False)})
    with pytest.raises(ConfigError, match="expected the spec's"):
        @view_of(spec)
        class Missing(View):
            a: int

    with pytest.raises(ConfigError, match="needs `= None`"):
        @view_of(spec)
        class NoDefault(View):
            a: int
            b: str | None

    with pytest.raises(ConfigError, match="takes no default"):
        @view_of(spec)
        class Defaulted(View):
            b: str | None = None
            a: int | None = None

    @view_of(spec)
    class Good(View):
        a: int
        b: str | None = None

    good = Good.from_message(_fake(spec, {"a": 1}))
    assert (good.a, good.b) == (1, None)


def _fake(spec: MessageSpec, body: dict[str, Any]) -> Message:
    """A message of an unregistered test spec, checked as a socket would."""
    spec.check_body(body)
    return Message(spec.type, "t", 0, 0, body, {})
