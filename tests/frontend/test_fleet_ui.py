"""The Fleet page in a real browser against a two-robot fleet: every robot's driver and actor
as processes, the service under uvicorn. The e-stop key stops both robots, confirmed at
each robot's own actor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from robolearn.actor.control import ActorControlClient
from robolearn.config.fleet import robot_views
from tests.frontend.conftest import Stack, running_stack


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory, "e2e_fleet", episodes=2,
                       config={"fleet": {"robots": [{"name": "left"},
                                                    {"name": "right"}]}}) as s:
        yield s


def test_the_fleet_page_takes_over_one_robot_and_stops_all(fleet: Stack) -> None:
    controls = {view.robot_name: ActorControlClient(
        view.actor.control_address,
        view.socket_security(view.actor.control_address, "operator"), timeout_s=2.0)
        for view in robot_views(fleet.cfg)}
    try:
        assert not any(c.status().estop_latched for c in controls.values())
        fleet.browser("fleet")
        for name, control in controls.items():
            status = control.status()
            assert status.estop_latched, f"robot {name} is not latched"
            assert not status.takeover, f"robot {name} is still taken over"
        for control in controls.values():
            control.release_estop()
    finally:
        for control in controls.values():
            control.close()
