"""The Alembic migration creates exactly the tables models.py declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from robolearn.errors import ConfigError
from robolearn.store import Store, default_url, make_engine, upgrade
from robolearn.store.models import Base, Episode, Run

TABLES = {
    "users",
    "runs",
    "episodes",
    "steps",
    "labels",
    "preference_queries",
    "preference_answers",
    "checkpoints",
    "calibrations",
    "audit_log",
    "reward_models",
    "operator_requests",
    "learner_metrics",
}


def schema_diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_migration_creates_every_table(tmp_path: Path) -> None:
    url = default_url(tmp_path)
    upgrade(url)
    engine = make_engine(url)
    try:
        names = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert names == TABLES | {"alembic_version"}


def test_migration_matches_models(tmp_path: Path) -> None:
    url = default_url(tmp_path)
    upgrade(url)
    assert schema_diff(url) == []


def test_upgrade_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # migrations must not depend on the working directory
    url = default_url(tmp_path / "data")
    (tmp_path / "data").mkdir()
    upgrade(url)
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert versions == [("0008",)]


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    url = default_url(tmp_path)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() > 0
    finally:
        engine.dispose()


def test_deleting_a_run_with_episodes_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        run_id = store.create_run("r", {})
        store.begin_episode(run_id, "pick", []).abort("test")
        with pytest.raises(IntegrityError), store.session() as session, session.begin():
            session.delete(session.get(Run, run_id))
        with store.session() as session:
            assert session.get(Episode, 1) is not None


def test_unsupported_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not supported"):
        make_engine("mysql://localhost/x")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        make_engine("not a url")
