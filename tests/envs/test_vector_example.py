"""examples/vector_env.py runs the registered ids under SyncVectorEnv and AsyncVectorEnv."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vector_env.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vector_env_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", [[], ["--async"]], ids=["sync", "async"])
def test_vector_example_runs(mode: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    result = load_example().main(["--env-id", "robolearn/Reach-v0", "--num-envs", "2",
                                  "--steps", "12", "--image-size", "16", *mode])
    # Reach's expert succeeds within a few steps, so both sub-envs finish episodes.
    assert result["successes"] >= 2
    assert "'front': (2, 16, 16, 3)" in capsys.readouterr().out
