"""Engine construction and schema migrations for the robolearn store.

SQLite (the default, one file under the data directory) is opened in WAL mode with foreign
keys enforced; a PostgreSQL URL is used as given. Migrations are the Alembic revisions in
`robolearn/store/migrations/`, run in-process, independent of the working directory.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from robolearn.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DB_FILENAME = "robolearn.db"
# How long a SQLite connection waits for another writer before failing with "locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Arbitrary constant key for pg_advisory_lock: serialises concurrent `upgrade()` calls.
_PG_MIGRATION_LOCK_KEY = 0x726F626F6C726E


def default_url(data_dir: Path) -> str:
    """The SQLite URL of the database file inside `data_dir`."""
    return f"sqlite:///{Path(data_dir).resolve() / DB_FILENAME}"


def make_engine(url: str) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL.

    SQLite connections get WAL journalling (readers never block the episode writer),
    `foreign_keys=ON` and a busy timeout. A bare `postgresql://` URL uses psycopg (v3) when
    psycopg2 is not installed, since `robolearn[postgres]` installs psycopg.

    Raises:
        ConfigError: the URL cannot be parsed or names an unsupported database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"database url {url!r}: cannot be parsed; expected sqlite:///PATH or "
            "postgresql+psycopg://USER:PASS@HOST/DB"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(parsed)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql" and not _importable("psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise ConfigError(
        f"database url {parsed.render_as_string(hide_password=True)!r}: backend {backend!r} "
        "is not supported; use sqlite:///PATH or postgresql+psycopg://..."
    )


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (default: the newest). Idempotent.

    Concurrent callers (several processes opening the same store) are serialised: a lock
    file next to a SQLite database, an advisory lock on PostgreSQL.

    Raises:
        StoreError: the migration failed.
    """
    engine = make_engine(url)
    try:
        with _migration_lock(engine), engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY}
                )
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    except CommandError as exc:
        raise StoreError(
            f"database {engine.url.render_as_string(hide_password=True)}: cannot migrate to "
            f"{revision} ({exc}); was it created by a newer robolearn? upgrade robolearn"
        ) from exc
    except SQLAlchemyError as exc:
        raise StoreError(
            f"database {engine.url.render_as_string(hide_password=True)}: migration to "
            f"{revision} failed ({exc}); check that the database is reachable and writable"
        ) from exc
    finally:
        engine.dispose()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock, migrations still run
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    with open(lock_path, "a+b") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
