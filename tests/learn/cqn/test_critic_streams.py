"""The critic's layouts (learner.cqn.critic_streams): the reference's separate value and
advantage streams, and the earlier shared trunk; each loads only its own weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robolearn.config.cqn import CQNConfig
from robolearn.errors import ConfigError
from robolearn.learn.batch import Batch, ObsSpec
from robolearn.learn.cqn import C2FCritic, CQNAgent
from robolearn.learn.policy import load_policy_checkpoint
from robolearn.learn.weights import pack_policy, unpack_policy

LAYOUTS = ("separate", "shared")
STATE_SPEC = ObsSpec(cameras=(), image_hw=(0, 0), frame_stack=1, low_dim=3)
PIXEL_SPEC = ObsSpec(cameras=("front",), image_hw=(16, 16), frame_stack=1, low_dim=3)
SMALL = dict(feature_dim=8, hidden_dim=16)

# repr_dim R, low_dim P, action_dim D, feature_dim F, hidden H, levels L, bins, atoms
R, P, D, F, H, L, BINS, ATOMS = 12, 5, 2, 4, 8, 3, 3, 5


def make_critic(streams: str, action_sequence: int = 1) -> C2FCritic:
    return C2FCritic(repr_dim=R, low_dim=P, action_dim=D, feature_dim=F, hidden_dim=H,
                     levels=L, bins=BINS, atoms=ATOMS, v_min=-1.0, v_max=1.0,
                     action_sequence=action_sequence, streams=streams)  # type: ignore[arg-type]


def randomise_heads(critic: C2FCritic) -> None:
    """The heads start at zero (a flat critic); give them weights to tell bins apart."""
    for head in (critic.value_head, critic.advantage_head):
        torch.nn.init.normal_(head.weight)
        torch.nn.init.normal_(head.bias)


def tiny_batch(spec: ObsSpec, size: int, action_dim: int, seq: int = 1) -> Batch:
    g = torch.Generator().manual_seed(0)
    rgb = (lambda: torch.randint(0, 256, (size, *spec.rgb_shape), dtype=torch.uint8,
                                 generator=g)) if spec.pixels else (lambda: None)
    low = spec.low_dim_shape[0]
    action_shape = (size, action_dim) if seq == 1 else (size, seq, action_dim)
    return Batch(
        rgb_obs=rgb(), low_dim_obs=torch.randn(size, low, generator=g),
        action=torch.rand(*action_shape, generator=g) * 2 - 1,
        reward=(torch.rand(size, generator=g) < 0.5).float(), discount=torch.full((size,), 0.9),
        next_rgb_obs=rgb(), next_low_dim_obs=torch.randn(size, low, generator=g),
        is_demo=torch.arange(size) % 2 == 0,
    )


def test_separate_streams_have_the_reference_layers() -> None:
    critic = make_critic("separate")
    shapes = {k: tuple(v.shape) for k, v in critic.state_dict().items()}
    in_dim = 2 * F + D + L  # rgb and low-dim bottlenecks, interval centres, level one-hot
    expected: dict[str, tuple[int, ...]] = {}
    for s in ("value_stream", "advantage_stream"):
        expected |= {
            # bottlenecks: Linear without bias, LayerNorm, (Tanh)
            f"{s}.rgb_bottleneck.0.weight": (F, R),
            f"{s}.rgb_bottleneck.1.weight": (F,), f"{s}.rgb_bottleneck.1.bias": (F,),
            f"{s}.low_dim_bottleneck.0.weight": (F, P),
            f"{s}.low_dim_bottleneck.1.weight": (F,), f"{s}.low_dim_bottleneck.1.bias": (F,),
            # MLP: two Linear without bias, each with LayerNorm (and SiLU)
            f"{s}.trunk.0.weight": (H, in_dim),
            f"{s}.trunk.1.weight": (H,), f"{s}.trunk.1.bias": (H,),
            f"{s}.trunk.3.weight": (H, H),
            f"{s}.trunk.4.weight": (H,), f"{s}.trunk.4.bias": (H,),
        }
    expected |= {
        "value_head.weight": (D * ATOMS, H), "value_head.bias": (D * ATOMS,),
        "advantage_head.weight": (D * BINS * ATOMS, H),
        "advantage_head.bias": (D * BINS * ATOMS,),
        "support": (ATOMS,), "level_onehot": (L, L), "step_onehot": (1, 0),
    }
    assert shapes == expected
    assert isinstance(critic.value_stream.trunk[2], torch.nn.SiLU)
    assert isinstance(critic.value_stream.rgb_bottleneck[2], torch.nn.Tanh)
    # Orthogonal init, independently drawn per stream; heads at zero.
    w = critic.value_stream.trunk[3].weight
    assert torch.allclose(w @ w.T, torch.eye(H), atol=1e-5)
    assert not torch.equal(w, critic.advantage_stream.trunk[3].weight)
    for head in (critic.value_head, critic.advantage_head):
        assert torch.all(head.weight == 0) and torch.all(head.bias == 0)


def test_shared_layout_is_one_trunk_for_both_heads() -> None:
    sep, shared = make_critic("separate"), make_critic("shared")
    names = {k.split(".")[0] for k in shared.state_dict()}
    assert names == {"stream", "value_head", "advantage_head", "support", "level_onehot",
                     "step_onehot"}
    n_sep = sum(p.numel() for p in sep.parameters())
    n_shared = sum(p.numel() for p in shared.parameters())
    heads = sum(p.numel() for m in (sep.value_head, sep.advantage_head) for p in m.parameters())
    assert n_sep - heads == 2 * (n_shared - heads)  # two stream bodies against one


@pytest.mark.parametrize("seq", [1, 2], ids=["cqn", "cqn_as"])
def test_separate_forward_matches_a_brute_force_dueling_sum(seq: int) -> None:
    """Each stream run by hand on one input vector per (sample, level, sequence step); value
    and advantage combined per (dimension, bin, atom) with explicit loops."""
    torch.manual_seed(0)
    critic = make_critic("separate", action_sequence=seq)
    randomise_heads(critic)
    batch, level_ids = 2, torch.tensor([0, 2])
    rgb, low = torch.randn(batch, R), torch.randn(batch, P)
    centres = torch.rand(batch, len(level_ids), seq * D) * 2 - 1
    with torch.no_grad():
        q_logits = critic(critic.obs_features(rgb, low), centres, level_ids)
    assert q_logits.shape == (batch, len(level_ids), seq * D, BINS, ATOMS)

    def stream_out(stream: torch.nn.Module, head: torch.nn.Linear, b: int, li: int
                   ) -> torch.Tensor:
        """[K, head outputs] for sample b at level level_ids[li]."""
        obs = torch.cat([stream.rgb_bottleneck(rgb[b]), stream.low_dim_bottleneck(low[b])])
        rows = []
        for k in range(seq):
            step = torch.eye(seq)[k] if seq > 1 else torch.zeros(0)
            x = torch.cat([obs, centres[b, li, k * D:(k + 1) * D], step,
                           torch.eye(L)[level_ids[li]]])
            rows.append(stream.trunk(x))
        h = torch.stack(rows)  # [K, H]
        if seq > 1:
            h = stream.gru(h[None])[0][0]  # across the K steps
        return head(h)

    with torch.no_grad():
        for b in range(batch):
            for li in range(len(level_ids)):
                v = stream_out(critic.value_stream, critic.value_head, b, li)  # [K, D·A]
                a = stream_out(critic.advantage_stream, critic.advantage_head, b, li)
                for k in range(seq):
                    for d in range(D):
                        for atom in range(ATOMS):
                            advs = [float(a[k, (d * BINS + j) * ATOMS + atom])
                                    for j in range(BINS)]
                            mean_adv = sum(advs) / BINS
                            for j in range(BINS):
                                want = float(v[k, d * ATOMS + atom]) + advs[j] - mean_adv
                                got = float(q_logits[b, li, k * D + d, j, atom])
                                assert got == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("seq", [1, 3], ids=["cqn", "cqn_as"])
@pytest.mark.parametrize("streams", LAYOUTS)
def test_untrained_critic_is_flat(streams: str, seq: int) -> None:
    torch.manual_seed(0)
    critic = make_critic(streams, action_sequence=seq)
    feat = critic.obs_features(torch.randn(4, R), torch.randn(4, P))
    q_logits = critic(feat, torch.rand(4, L, seq * D) * 2 - 1, torch.arange(L))
    qs = critic.q_values(q_logits)  # [B, L, K·D, bins]
    assert torch.all(q_logits == 0)
    assert torch.allclose(qs, torch.zeros_like(qs))  # the support's mean, everywhere
    assert critic.greedy_bins(feat).shape == (4, L, seq * D)


def test_cqn_as_streams_each_have_their_gru() -> None:
    torch.manual_seed(0)
    critic = make_critic("separate", action_sequence=3)
    assert critic.value_stream.gru is not None and critic.advantage_stream.gru is not None
    assert critic.value_stream.gru is not critic.advantage_stream.gru
    randomise_heads(critic)
    feat = critic.obs_features(torch.randn(1, R), torch.randn(1, P))
    centres = torch.zeros(1, 1, 3 * D)
    base = critic(feat, centres, torch.tensor([1]))
    centres[..., :D] = 0.5  # change step 0's centres only
    moved = critic(feat, centres, torch.tensor([1]))
    assert not torch.allclose(base[:, :, D:], moved[:, :, D:])  # later steps see it


@pytest.mark.parametrize("seq", [1, 2], ids=["cqn", "cqn_as"])
@pytest.mark.parametrize("streams", LAYOUTS)
def test_both_layouts_train(streams: str, seq: int) -> None:
    torch.manual_seed(0)
    cfg = CQNConfig(frame_stack=1, lr=1e-3, action_sequence=seq, critic_streams=streams,
                    **SMALL)  # type: ignore[arg-type]
    agent = CQNAgent(cfg, STATE_SPEC, action_dim=2)
    assert agent.critic.streams == streams == agent.critic_target.streams
    batch = tiny_batch(STATE_SPEC, 16, 2, seq)
    losses = [float(agent.update(batch)["loss"]) for _ in range(25)]
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    action = agent.act(None, np.zeros(3, np.float32), step=0, eval_mode=True)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)


@pytest.mark.parametrize("streams", LAYOUTS)
def test_pixel_agent_trains_with_either_layout(streams: str) -> None:
    torch.manual_seed(0)
    cfg = CQNConfig(frame_stack=1, critic_streams=streams, **SMALL)  # type: ignore[arg-type]
    agent = CQNAgent(cfg, PIXEL_SPEC, action_dim=2)
    batch = tiny_batch(PIXEL_SPEC, 8, 2)
    for _ in range(3):
        metrics = agent.update(batch)
    assert all(bool(torch.isfinite(v)) for v in metrics.values())


def agents(seq: int = 1) -> dict[str, CQNAgent]:
    return {s: CQNAgent(CQNConfig(frame_stack=1, action_sequence=seq, critic_streams=s,
                                  **SMALL),  # type: ignore[arg-type]
                        STATE_SPEC, action_dim=2) for s in LAYOUTS}


@pytest.mark.parametrize("seq", [1, 2], ids=["cqn", "cqn_as"])
@pytest.mark.parametrize("mine", LAYOUTS)
def test_checkpoint_of_the_other_layout_is_refused_by_name(
    mine: str, seq: int, tmp_path: Path
) -> None:
    by_layout = agents(seq)
    other = next(s for s in LAYOUTS if s != mine)
    agent = by_layout[mine]
    msg = rf"'{other}' critic layout.*learner\.cqn\.critic_streams: {other}"
    with pytest.raises(ConfigError, match=msg):
        agent.load_state_dict(by_layout[other].state_dict())
    # The actor's --checkpoint path.
    path = tmp_path / "ckpt_000000001.pt"
    torch.save({"agent": by_layout[other].state_dict(), "counters": {"version": 1}}, path)
    with pytest.raises(ConfigError, match=msg):
        load_policy_checkpoint(agent, path)
    # Weights as published to the actor.
    parts = unpack_policy(*pack_policy(by_layout[other].policy_state_dict()))
    with pytest.raises(ConfigError, match=msg):
        agent.load_policy_state_dict(parts)
    # The same layout loads.
    torch.save({"agent": CQNAgent(agent.cfg, STATE_SPEC, 2).state_dict(), "counters": {}}, path)
    load_policy_checkpoint(agent, path)


def test_shared_checkpoint_from_before_the_option_still_loads_as_shared() -> None:
    """Before learner.cqn.critic_streams the one trunk sat on the critic itself
    (critic.trunk.*, critic.gru.*); such a checkpoint is the 'shared' layout."""
    torch.manual_seed(0)
    by_layout = agents(seq=2)
    old = by_layout["shared"]
    randomise_heads(old.critic)
    state = old.state_dict()
    state["networks"] = {k.replace("critic.stream.", "critic.").replace(
        "critic_target.stream.", "critic_target."): v for k, v in state["networks"].items()}
    assert any(k.startswith("critic.trunk.") for k in state["networks"])
    assert any(k.startswith("critic.gru.") for k in state["networks"])
    fresh = CQNAgent(old.cfg, STATE_SPEC, action_dim=2)
    fresh.load_state_dict(state)
    for a, b in zip(fresh.critic.state_dict().values(), old.critic.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="'shared' critic layout"):
        by_layout["separate"].load_state_dict(state)
