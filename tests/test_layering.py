"""The import-linter contracts in pyproject.toml hold for this checkout, and they are live:
one forbidden import added to a copy of the tree breaks the contract that forbids it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with this checkout's contracts, over the packages under `tree`."""
    # lint-imports puts its working directory first on sys.path, so the packages it graphs
    # are the ones under `tree`.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), str(CONFIG), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    # robolearn/ links to the top-level hardware, server and calibration folders; the copy
    # holds their files in place of the links.
    shutil.copytree(ROOT / "robolearn", copy / "robolearn",
                    ignore=shutil.ignore_patterns("__pycache__", "ui"))
    return copy


@pytest.fixture
def probe(tree: Path) -> Iterator[Callable[[str, str], Path]]:
    """A file path inside the copy that the test writes one import into; removed after."""
    written: list[Path] = []

    def write(relative: str, source: str) -> Path:
        path = tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        written.append(path)
        return path

    yield write
    for path in reversed(written):
        path.unlink()
        if path.name == "__init__.py":
            path.parent.rmdir()


def test_this_checkout_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_unchanged_copy_keeps_every_contract(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("module", "source", "contract", "arrow"), [
    # The cycle the layering removed: config must not reach up into the learner.
    ("robolearn/config/probe.py", "import robolearn.learn.observation\n",
     "robolearn's core is layered", "robolearn.config.probe -> robolearn.learn.observation"),
    # store and config are independent siblings.
    ("robolearn/store/probe.py", "import robolearn.config.models\n",
     "robolearn's core is layered", "robolearn.store.probe -> robolearn.config.models"),
    ("robolearn/actor/probe.py", "import robolearn.calibration.results\n",
     "Below the CLI, the core imports none of",
     "robolearn.actor.probe -> robolearn.calibration.results"),
    ("robolearn/server/probe.py", "import robolearn.cli.main\n",
     "robolearn's core is layered", "robolearn.server.probe -> robolearn.cli.main"),
    ("robolearn/server/probe.py", "import robolearn.hardware.opencv\n",
     "reach drivers only through the wire protocol",
     "robolearn.server.probe -> robolearn.hardware.opencv"),
    ("robolearn/calibration/probe.py", "import robolearn.server.app\n",
     "robolearn's core is layered", "robolearn.calibration.probe -> robolearn.server.app"),
    ("robolearn/hardware/probe.py", "import robolearn.actor.loop\n",
     "Drivers import only the bottom of the core",
     "robolearn.hardware.probe -> robolearn.actor.loop"),
])
def test_a_forbidden_import_breaks_its_contract(
    tree: Path, probe: Callable[[str, str], Path], module: str, source: str, contract: str,
    arrow: str,
) -> None:
    probe(module, source)
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
    assert arrow in broken, result.stdout


def test_a_new_core_package_must_be_placed_in_the_layers(
    tree: Path, probe: Callable[[str, str], Path]
) -> None:
    probe("robolearn/newpart/__init__.py", '"""Not yet placed in a layer."""\n')
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "robolearn.newpart" in result.stdout


def test_a_users_own_server_py_takes_no_package_s_place(tmp_path: Path) -> None:
    """hardware, server and calibration import as robolearn.*: modules of the same bare
    names in the working directory (first on sys.path) are never what robolearn loads."""
    for name in ("server", "hardware", "calibration"):
        (tmp_path / f"{name}.py").write_text(f'raise SystemExit("the user\'s {name}.py")\n')
    code = ("import robolearn.cli.main, robolearn.server.app, robolearn.hardware.sim.driver, "
            "robolearn.calibration.session, sys; "
            "print(sorted(n for n in sys.modules if n in ('server', 'hardware', 'calibration')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
