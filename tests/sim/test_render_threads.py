"""Renderers are closed before EGL shuts down: a process that rendered in a worker thread
and in its main thread exits quietly (each renderer freed after EGL's exit handler printed
an ignored EGLError traceback: eight at the end of every test run)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import threading
from robolearn.sim import PandaSim

def render(size):
    sim = PandaSim("reach", image_size=(size, size), cameras=("front",))
    sim.reset(0)
    assert sim.render("front").shape == (size, size, 3)

worker = threading.Thread(target=render, args=(64,))
worker.start()
worker.join()
render(32)
print("rendered")
"""


def test_a_process_that_rendered_in_two_threads_exits_without_egl_errors() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "rendered" in done.stdout, done.stderr
    assert "Exception ignored" not in done.stderr and "EGLError" not in done.stderr, done.stderr
