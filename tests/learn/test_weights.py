import numpy as np
import pytest
import torch

from robolearn.learn.weights import ROW_BYTES, pack_state_dict, unpack_state_dict
from robolearn.protocol import decode, encode


def test_round_trip_over_the_wire_keeps_every_tensor_exact() -> None:
    state = {"enc.w": torch.randn(64, 25_600), "steps": torch.arange(7),
             "scalar": torch.tensor(2.5), "mask": torch.tensor([True, False]),
             "half": torch.randn(3, 3).double()}
    layout, blob = pack_state_dict(state)
    assert blob.shape[1] == ROW_BYTES
    frames = encode("weights", "learner", 1,
                    {"session": "s", "version": 3, "update_step": 10, "env_steps": 20,
                     "layout": layout},
                    {"blob": blob})
    msg = decode([f if isinstance(f, bytes) else bytes(memoryview(f)) for f in frames])
    out = unpack_state_dict(list(msg.body["layout"]), msg.arrays["blob"])
    assert out.keys() == state.keys()
    for k in state:
        assert out[k].dtype == state[k].dtype and torch.equal(out[k], state[k])


def test_layout_pointing_outside_the_blob_is_refused() -> None:
    layout, blob = pack_state_dict({"w": torch.zeros(10)})
    layout[0][3] = blob.size  # offset past the end
    with pytest.raises(ValueError, match="outside"):
        unpack_state_dict(layout, blob)
    with pytest.raises(ValueError, match="dtype"):
        unpack_state_dict([["w", "<U4", [1], 0]], np.zeros((1, ROW_BYTES), np.uint8))


def test_policy_parts_survive_packing_even_when_empty() -> None:
    from robolearn.learn.weights import pack_policy, unpack_policy

    parts = {"state_encoder": {}, "critic": {"w": torch.randn(3, 2), "b": torch.zeros(2)}}
    layout, blob = pack_policy(parts)
    out = unpack_policy(layout, blob)
    assert set(out) == {"state_encoder", "critic"}
    assert out["state_encoder"] == {}
    assert torch.equal(out["critic"]["w"], parts["critic"]["w"])
