"""The web UI is package data of `robolearn.server`: a wheel carries the built UI, an installed
service finds it with importlib.resources, and a service without one says how to build it.
The wheel installs one top-level name, `robolearn`, so a user's own `server.py`,
`hardware.py` or `calibration.py` beside their script cannot take the place of the
project's packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from robolearn.server.app import built_ui

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if built_ui() is None:
        pytest.skip("the web UI is not built: `cd frontend && npm run build` writes server/ui")
    # Built from a copy of what the wheel is made of: setuptools writes build/ and egg-info
    # into the tree it builds, which must not be a checkout others work in.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    # robolearn/ links to the top-level hardware, server and calibration folders: the copy
    # holds their files where the links are, as an sdist does.
    shutil.copytree(ROOT / "robolearn", src / "robolearn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(src)], check=True, cwd=out)
    (found,) = out.glob("robolearn-*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_carries_every_file_of_the_built_ui(wheel: Path) -> None:
    ui = built_ui()
    assert ui is not None
    built = {f"robolearn/server/ui/{p.relative_to(ui).as_posix()}" for p in ui.rglob("*")
             if p.is_file()}
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "robolearn/server/ui/index.html" in names
    assert any(n.startswith("robolearn/server/ui/assets/") for n in names)
    assert built <= names, sorted(built - names)


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"robolearn"}, sorted(tops)
    for package in ("hardware/sim", "server/routers", "calibration"):
        assert f"robolearn/{package}/__init__.py" in names


@pytest.mark.slow
def test_an_installed_wheel_serves_its_own_ui(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True)
    # Run outside the checkout, with the installed copy first on the path: built_ui must
    # find the UI inside that copy, not beside a source tree. The working directory holds
    # a user's own server.py and hardware.py, which must not be what the service imports.
    for name in ("server", "hardware", "calibration"):
        (tmp_path / f"{name}.py").write_text(f'raise SystemExit("the user\'s {name}.py")\n')
    found = subprocess.run(
        [sys.executable, "-c", "from robolearn.server.app import built_ui; print(built_ui())"],
        cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True).stdout.strip()
    assert Path(found) == site / "robolearn" / "server" / "ui"
    assert (Path(found) / "index.html").read_text() == (built_ui() / "index.html").read_text()


def test_a_service_without_a_ui_says_how_to_build_it(app: FastAPI) -> None:
    # The test config names no frontend_dir: the API only, and / explains why.
    page = TestClient(app).get("/")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "serves no web UI" in page.text and "npm run build" in page.text
    assert TestClient(app).get("/api/auth/me").status_code == 401  # the API still answers
