"""robolearn: real-robot learning with a ZeroMQ control loop, a CQN learner and an operator UI."""
