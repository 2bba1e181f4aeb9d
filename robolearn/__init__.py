"""robolearn: real-robot learning with a ZeroMQ control loop, a CQN learner and an operator UI."""

from robolearn.envs import register_envs as _register_envs

# Gymnasium ids (robolearn/Reach-v0, ...): entry-point strings only, so this stays light.
_register_envs()
