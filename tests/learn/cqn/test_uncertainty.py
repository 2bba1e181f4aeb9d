"""CQNAgent.last_uncertainty: the std of the C51 return distribution of the greedy action."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robolearn.config.cqn import CQNConfig
from robolearn.errors import PolicyFault
from robolearn.learn.batch import ObsSpec
from robolearn.learn.cqn import CQNAgent

STATE_SPEC = ObsSpec(cameras=(), image_hw=(0, 0), frame_stack=1, low_dim=2)
SMALL = dict(feature_dim=16, hidden_dim=64)
OBS = np.zeros(STATE_SPEC.low_dim_shape, np.float32)


def agent_of(**overrides: object) -> CQNAgent:
    torch.manual_seed(0)
    return CQNAgent(CQNConfig(frame_stack=1, **SMALL, **overrides), STATE_SPEC, action_dim=3)


def test_untrained_critic_is_as_unsure_as_the_uniform_distribution() -> None:
    agent = agent_of()
    support = torch.linspace(agent.cfg.v_min, agent.cfg.v_max, agent.cfg.atoms)
    uniform_std = float(((support - support.mean()) ** 2).mean().sqrt())  # about 1.18
    for eval_mode in (True, False):
        agent.act(None, OBS, step=10, eval_mode=eval_mode)
        assert agent.last_uncertainty == pytest.approx(uniform_std, rel=1e-5)
    assert not agent.critic_target._forward_hooks  # act leaves no hook behind


def test_std_follows_the_value_heads_distribution() -> None:
    agent = agent_of()
    head = agent.critic_target.value_head.bias.data.view(3, agent.atoms)  # [D, atoms]
    with torch.no_grad():
        head[:, 0] = head[:, -1] = 40.0  # half the mass at v_min, half at v_max
    agent.act(None, OBS, step=10, eval_mode=True)
    assert agent.last_uncertainty == pytest.approx((agent.cfg.v_max - agent.cfg.v_min) / 2,
                                                   rel=1e-4)
    with torch.no_grad():
        head.zero_()
        head[:, agent.atoms // 2] = 40.0  # all mass on one atom: certain of the return
        head[0, agent.atoms // 2] = 0.0
        head[0, 0] = head[0, -1] = 40.0  # ...except one dimension, split 50/50 as above
    agent.act(None, OBS, step=10, eval_mode=True)
    assert agent.last_uncertainty == pytest.approx(2.0 / 3, rel=1e-4)  # (2 + 0 + 0) / 3


def test_no_value_when_the_critic_did_not_choose_the_action() -> None:
    agent = agent_of(num_expl_steps=5)
    agent.act(None, OBS, step=10, eval_mode=False)
    assert agent.last_uncertainty is not None
    agent.act(None, OBS, step=0, eval_mode=False)  # uniform random exploration
    assert agent.last_uncertainty is None
    agent.act(None, OBS, step=10, eval_mode=False)
    with torch.no_grad():
        agent.critic_target.value_head.bias.fill_(float("nan"))
    with pytest.raises(PolicyFault):
        agent.act(None, OBS, step=10, eval_mode=True)
    assert agent.last_uncertainty is None and agent.last_q is None
