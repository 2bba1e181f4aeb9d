"""`robolearn user add/list` against a real store; bad input changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from robolearn.server.auth import verify_password
from robolearn.store import Store
from robolearn.store.models import User

CLI = [sys.executable, "-m", "robolearn.cli.main"]


def test_user_add_and_list(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    add = subprocess.run([*CLI, "user", "add", str(cfg), "alice", "--role", "operator",
                          "--password-stdin"], input="a long password\n", capture_output=True,
                         text=True, timeout=60)
    assert add.returncode == 0, add.stderr
    weak = subprocess.run([*CLI, "user", "add", str(cfg), "bob", "--password-stdin"],
                          input="short\n", capture_output=True, text=True, timeout=60)
    assert weak.returncode == 2 and "password" in weak.stderr
    listing = subprocess.run([*CLI, "user", "list", str(cfg)], capture_output=True, text=True,
                             timeout=60)
    assert "alice" in listing.stdout and "bob" not in listing.stdout
    with Store.open(tmp_path / "data") as store, store.session() as db:
        user = db.scalar(select(User).where(User.username == "alice"))
        assert user.role == "operator" and verify_password(user.password_hash,
                                                           "a long password")
