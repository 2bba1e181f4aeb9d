"""Property-based fuzzing of the OpenAPI spec (schemathesis): no 5xx anywhere, and nothing
stored that breaks the tables' rules. Bounded examples per operation to stay fast."""

from __future__ import annotations

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from sqlalchemy import select

from robolearn.server.users import USERNAME_RE
from robolearn.store import Store
from robolearn.store.models import Episode, Label, PreferenceAnswer, User
from tests.server.conftest import Actor, add_query, record_episode

EXAMPLES = 12
# Start real processes, wait on a dead actor's timeout, train a model, or end the session
# the fuzzer itself uses: covered by their own tests instead.
SKIP = {"runs-start_run", "runs-stop_run", "runs-pause_run", "runs-resume_run",
        "reward_models-train_classifier", "auth-logout", "auth-change_password",
        # Runs the MuJoCo sim in a job: tests/server/routers/test_replays.py covers it.
        "replays-start_replay",
        # The actor's newest telemetry: 503 without a live actor, by design; tests/server/
        # test_live.py serves it from a real publisher.
        "live-latest_telemetry"}
# Control routes talk to a live actor (503/504 without one, by design): tests/server/
# test_control.py drives them against a real actor.
SKIP_TAGS = ("control-",)


def test_openapi_fuzz_no_5xx_no_garbage(app: FastAPI, users: dict[str, Actor],
                                        store: Store) -> None:
    run = store.create_run("r", {})
    a, b = record_episode(store, run), record_episode(store, run, outcome="failure")
    for _ in range(3):
        add_query(store, run, a, b)
    token = users["admin"].post("/api/auth/tokens", json={}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        op_id = operation.definition.raw.get("operationId")
        if op_id in SKIP or op_id.startswith(SKIP_TAGS):
            continue
        tested += 1

        def check(case: schemathesis.Case) -> None:
            response = case.call(headers=auth)
            if response.status_code >= 500:
                failures.append(f"{case.operation.label}: {response.status_code} "
                                f"{response.text[:300]}")

        given(case=operation.as_strategy())(
            settings(max_examples=EXAMPLES, deadline=None, database=None,
                     suppress_health_check=list(HealthCheck))(check))()
    assert tested >= 20
    assert failures == []
    with store.session() as db:
        for user in db.scalars(select(User)):
            assert USERNAME_RE.match(user.username), user.username
        for label in db.scalars(select(Label)):
            episode = db.get(Episode, label.episode_id)
            assert 0 <= label.step_index <= episode.num_steps
            assert label.camera is None or label.camera in episode.cameras
        assert {x.answer for x in db.scalars(select(PreferenceAnswer))} <= {
            "left", "right", "equal", "skip"}
