"""The Fleet page in a real browser against a two-robot fleet: every robot's driver and actor
as processes, the service under uvicorn. The e-stop key stops both robots, confirmed at
each robot's own actor; a pending preference query waits in the operator's queue, J opens it
on the Preferences page, and its answer is stored with how long it waited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from robolearn.actor.control import ActorControlClient
from robolearn.config.fleet import robot_views
from robolearn.store import preferences
from tests.frontend.conftest import Stack, running_stack


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory,
        "e2e_fleet",
        episodes=2,
        config={"fleet": {"robots": [{"name": "left"}, {"name": "right"}]}},
    ) as s:
        yield s


@pytest.fixture(scope="module")
def pref_query(fleet: Stack) -> tuple[int, str]:
    """A pending preference query of two clips of one robot's episode, and that robot."""
    with fleet.store() as store:
        episode = store.list_episodes(run_id=fleet.run_id, status="complete")[0]
        assert episode.robot in ("left", "right")
        with store.session() as db:
            [query] = preferences.add_queries(
                db, fleet.run_id, [((episode.id, 0, 4), (episode.id, 5, 9))]
            )
            db.commit()
            return query.id, episode.robot


@pytest.fixture(scope="module")
def controls(fleet: Stack) -> Iterator[dict[str | None, ActorControlClient]]:
    clients = {
        view.robot_name: ActorControlClient(
            view.actor.control_address,
            view.socket_security(view.actor.control_address, "operator"),
            timeout_s=2.0,
        )
        for view in robot_views(fleet.cfg)
    }
    try:
        yield clients
    finally:
        for control in clients.values():
            control.close()


@pytest.fixture(scope="module")
def browsed(
    fleet: Stack, pref_query: tuple[int, str], controls: dict[str | None, ActorControlClient]
) -> None:
    """fleet.e2e.ts, run once: the takeover and e-stop, then the preference query."""
    assert not any(c.status().estop_latched for c in controls.values())
    query_id, robot = pref_query
    fleet.browser("fleet", E2E_PREF_QUERY=str(query_id), E2E_PREF_ROBOT=robot)


def test_the_fleet_page_takes_over_one_robot_and_stops_all(
    browsed: None, controls: dict[str | None, ActorControlClient]
) -> None:
    for name, control in controls.items():
        status = control.status()
        assert status.estop_latched, f"robot {name} is not latched"
        assert not status.takeover, f"robot {name} is still taken over"
    for control in controls.values():
        control.release_estop()


def test_j_opens_the_queued_preference_query_and_its_wait_is_stored(
    browsed: None, fleet: Stack, pref_query: tuple[int, str]
) -> None:
    query_id, _robot = pref_query
    with fleet.store() as store, store.session() as db:
        query = preferences.get_query(db, query_id)
        assert query is not None and query.status == "answered"
        [answer] = [
            a for a in preferences.list_answers(db, run_id=fleet.run_id) if a.query_id == query_id
        ]
        assert (answer.answer, answer.undone) == ("left", False)
        assert answer.user_id is not None
        assert preferences.answer_waits_s(db, [answer.id])[answer.id] > 0.0
