"""Run several robolearn sim tasks side by side with Gymnasium's vector envs.

python examples/vector_env.py --env-id robolearn/PickCube-v0 --num-envs 4 --async

Each sub-env is `gym.make("robolearn/<Task>-v0")`: the MuJoCo Panda in-process (in this
process for SyncVectorEnv, one worker process each for AsyncVectorEnv). Observations come
batched per key (`obs["front"]` is [N, H, W, 3], `obs["proprio"]` [N, 8]); finished
sub-envs reset themselves on the next step. The policy here is the task's scripted expert,
so the printed success count shows the envs working; swap in your own.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np


def make_env(env_id: str, image_size: int, pixels: bool, observe_state: bool,
             max_episode_steps: int) -> Callable[[], gym.Env]:
    """A picklable constructor for one sub-env (AsyncVectorEnv sends it to a worker)."""
    def thunk() -> gym.Env:
        # Importing robolearn registers its ids; a spawned worker does it here itself.
        import robolearn  # noqa: F401

        return gym.make(env_id, image_size=(image_size, image_size),
                        cameras=("front", "wrist") if pixels else (),
                        observe_state=observe_state, max_episode_steps=max_episode_steps)
    return thunk


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Step a vector of envs with the scripted expert; returns what it printed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env-id", default="robolearn/Reach-v0")
    p.add_argument("--num-envs", type=int, default=2)
    p.add_argument("--steps", type=int, default=50, help="vector steps to run")
    p.add_argument("--image-size", type=int, default=64, help="square camera images, px")
    p.add_argument("--no-pixels", action="store_true", help="proprio + state only (no render)")
    p.add_argument("--max-episode-steps", type=int, default=50)
    p.add_argument("--async", dest="use_async", action="store_true",
                   help="one worker process per env (AsyncVectorEnv)")
    args = p.parse_args(argv)

    fns = [make_env(args.env_id, args.image_size, not args.no_pixels, True,
                    args.max_episode_steps) for _ in range(args.num_envs)]
    # "spawn": each worker starts clean and makes its own MuJoCo renderer (an EGL context
    # does not survive a fork).
    envs: gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv = (
        gym.vector.AsyncVectorEnv(fns, context="spawn") if args.use_async
        else gym.vector.SyncVectorEnv(fns))
    try:
        obs, _ = envs.reset(seed=0)
        shapes = {k: v.shape for k, v in obs.items()}
        successes, episodes = 0, 0
        start = time.perf_counter()
        for _ in range(args.steps):
            # The expert reads privileged state, so ask each sub-env directly; a learned
            # policy would map `obs` to a [num_envs, action_dim] batch instead.
            actions = np.stack(envs.call("expert_action"))
            obs, reward, terminated, truncated, _ = envs.step(actions)
            successes += int(np.sum(terminated & (reward > 0)))
            episodes += int(np.sum(terminated | truncated))
        elapsed = time.perf_counter() - start
    finally:
        envs.close()
    result = {"episodes": episodes, "successes": successes,
              "env_steps_per_s": args.steps * args.num_envs / elapsed}
    print(f"{args.env_id} x{args.num_envs} ({'async' if args.use_async else 'sync'}): "
          f"observation shapes {shapes}; {episodes} episodes ended, {successes} succeeded, "
          f"{result['env_steps_per_s']:.0f} env steps/s")
    return result


if __name__ == "__main__":
    main()
