"""Run the CQN learner: transitions in, weights out, checkpoints on the way.

Example:
    robolearn learner configs/sim_reach_cqn.yaml --resume

Trains on CUDA when present, else on the CPU. SIGTERM or Ctrl-C writes a checkpoint before
exiting; `--resume` continues from the newest checkpoint in learner.checkpoint_dir with the
same counters and the same episodes in the replay buffers.
"""

from __future__ import annotations

import argparse
import logging
import os

from robolearn.cli.common import add_config_args, config_from_args, stop_on_signals

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("learner", help="run the CQN learner process", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--max-updates", type=int, help="stop after this many updates (total)")
    p.add_argument("--run-id", type=int, metavar="N",
                   help="write learner metrics for this existing run (default: the run of "
                   "the newest episode the actor stores)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import torch  # torch only for this command
    import zmq

    from robolearn.learn.cqn.cpu import keep_freed_memory
    from robolearn.learn.learner import Learner

    cfg = config_from_args(args)
    if cfg.learner.threads is not None:
        torch.set_num_threads(cfg.learner.threads)
    if cfg.learner.nice:
        os.nice(cfg.learner.nice)
    # The update allocates and frees tensors of hundreds of MB: keeping freed memory mapped
    # saves about a third of a CPU update. Safe here: this process does nothing else.
    keep_freed_memory()
    stop = stop_on_signals()
    ctx = zmq.Context()
    learner = Learner(cfg, ctx, resume=args.resume, run_id=args.run_id)
    log.info("learner on %s (%s threads): observation %s, hidden %d, batch %d+%d, UTD "
             "target %s", learner.device, torch.get_num_threads(), cfg.learner.observation,
             cfg.learner.cqn.hidden_dim, cfg.learner.cqn.batch_size,
             cfg.learner.cqn.demo_batch_size, cfg.learner.utd)
    try:
        learner.run(stop, max_updates=args.max_updates)
    finally:
        learner.close()
        ctx.term()
    return 0
