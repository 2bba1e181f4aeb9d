"""The same migration and round trip against PostgreSQL, when a server is provided.

Set ROBOLEARN_TEST_POSTGRES_URL (e.g. postgresql+psycopg://user:pass@localhost/robolearn_test)
to an EMPTY scratch database: the test drops and recreates every robolearn table in it.
Needs `pip install robolearn[postgres]`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robolearn.store import Store, make_engine, upgrade

from .conftest import CAMERAS, NO_POSTGRES, POSTGRES_URL, empty_postgres, record
from .test_schema import TABLES, schema_diff

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason=NO_POSTGRES)


@pytest.fixture
def postgres_url() -> str:
    return empty_postgres()


def test_postgres_migration_matches_models(postgres_url: str) -> None:
    upgrade(postgres_url)
    upgrade(postgres_url)  # idempotent
    assert schema_diff(postgres_url) == []
    engine = make_engine(postgres_url)
    try:
        from sqlalchemy import inspect

        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_postgres_round_trip(postgres_url: str, tmp_path: Path) -> None:
    with Store.open(tmp_path, postgres_url) as store:
        run_id = store.create_run("pg", {"k": [1, 2]})
        writer = store.begin_episode(run_id, "pick", CAMERAS, seed=3, is_demo=True)
        episode_id, expected = record(writer, 4, np.random.default_rng(0))
        data = store.load_episode(episode_id)
        for key, array in expected.items():
            np.testing.assert_array_equal(data.arrays[key], array, err_msg=key)
        assert store.get_episode(episode_id) == data.record == writer.record
        assert data.record.created_at.tzinfo is not None
        assert store.count_steps(episode_id) == 4
        assert store.list_runs()[0].config == {"k": [1, 2]}
        abandoned = store.begin_episode(run_id, "pick", [])
        abandoned._lock.release(unlink=False)  # as if its process had died
        assert store.recover() == 1
        assert store.get_episode(abandoned.episode_id).status == "incomplete"
