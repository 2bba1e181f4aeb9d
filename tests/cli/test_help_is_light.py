"""`robolearn --help` and every `robolearn COMMAND --help` answer without loading the heavy
libraries a command needs only once it runs (the learner's, the sim's, the service's, the
database's, the video codecs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from robolearn.cli.main import build_parser

HEAVY = ("torch", "mujoco", "fastapi", "uvicorn", "sqlalchemy", "alembic", "cv2", "av",
         "tensorboard", "wandb")

PROBE = """
import json, sys
from robolearn.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


def loaded_by(*argv: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], *[[c, "--help"] for c in commands()]],
                         ids=lambda argv: " ".join(argv))
def test_help_loads_no_heavy_library(argv: list[str]) -> None:
    heavy = loaded_by(*argv) & set(HEAVY)
    assert not heavy, f"robolearn {' '.join(argv)} imported {sorted(heavy)}"


def test_the_probe_sees_what_a_running_command_loads(tmp_path: Path) -> None:
    # The check above could pass by never seeing anything: a command that runs loads them.
    assert "sqlalchemy" in loaded_by("episodes", "list", "--data-dir", str(tmp_path))
