"""Child process for test_crash.py: records episodes forever until it is SIGKILLed.

Usage: python crash_writer.py DATA_DIR SEED

Prints one line per event, flushed, so the parent can time its kill:
  ready | begin ID | finishing ID | done ID SECONDS
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from robolearn.store import Store

CAMERAS = ["wrist_cam", "front_cam"]
STEPS = 12
SIZE = (240, 320)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    data_dir, seed = Path(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(seed)
    # Smooth-ish frames (a moving gradient plus noise): realistic sizes for npz and x264.
    base = np.add.outer(np.arange(SIZE[0]), np.arange(SIZE[1])).astype(np.uint8)
    with Store.open(data_dir) as store:
        run_id = store.create_run(f"crash-{seed}", {"seed": seed})
        say("ready")
        while True:
            writer = store.begin_episode(run_id, "pick", CAMERAS, seed=int(rng.integers(1 << 30)))
            say(f"begin {writer.episode_id}")
            for t in range(STEPS):
                noise = rng.integers(0, 32, (*SIZE, 3), dtype=np.uint8)
                images = {
                    c: (base[..., None] + noise + t + i).astype(np.uint8)
                    for i, c in enumerate(CAMERAS)
                }
                writer.add_step(
                    images,
                    rng.normal(size=7),
                    rng.uniform(-1, 1, 4),
                    0.0,
                    False,
                    stamp_ns=time.monotonic_ns(),
                )
            final = {c: base[..., None].repeat(3, axis=2) for c in CAMERAS}
            say(f"finishing {writer.episode_id}")
            start = time.perf_counter()
            writer.finish(final, rng.normal(size=7), "success")
            say(f"done {writer.episode_id} {time.perf_counter() - start:.4f}")


if __name__ == "__main__":
    main()
