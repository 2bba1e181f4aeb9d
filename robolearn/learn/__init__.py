"""The learner: CQN (coarse-to-fine Q-network) with demonstrations, its replay buffers and
the learner process."""
