"""`robolearn actor --run-id` and `robolearn up --run-id`: record into an existing run, and
refuse one that does not exist with a clear error (real processes, real SQLite file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from robolearn.store import Store

CLI = [sys.executable, "-m", "robolearn.cli.main", "--log-level", "warning"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=90)


def test_actor_refuses_an_unknown_run_id_and_records_nothing(write_config) -> None:
    cfg = write_config()
    proc = run_cli("actor", str(cfg), "--run-id", "7")
    assert proc.returncode == 2
    assert "run 7 does not exist" in proc.stderr
    with Store.open(Path(yaml.safe_load(cfg.read_text())["data_dir"])) as store:
        assert store.list_runs() == []


def test_up_passes_the_run_id_to_its_actor(write_config) -> None:
    cfg = write_config(server={"enabled": False})
    proc = run_cli("up", str(cfg), "--run-id", "9")
    # Refused before anything is spawned (up claims the run's row for itself first).
    assert proc.returncode == 2
    assert "run 9 does not exist" in proc.stderr
