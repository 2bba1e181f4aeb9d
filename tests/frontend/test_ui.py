"""The operator web UI in a real browser against the real service, actor and sim robot.

Each test runs one spec of frontend/e2e/ in Chromium, then checks here, in the database or
at the actor, that what the page showed really happened. Screenshots of every page go to
frontend/test-results/ (E2E_ARTIFACTS overrides).
"""

from __future__ import annotations

from sqlalchemy import select

from robolearn.store.models import AuditEntry, Episode, Label, PreferenceAnswer, Run, User
from robolearn.store.operator_requests import get_request, open_request
from tests.frontend.conftest import Stack


def test_login_and_every_page(stack: Stack) -> None:
    stack.browser("pages")
    for page in ("login", "live", "runs", "episodes", "preferences", "reward-models",
                 "learning", "calibration", "users"):
        assert (stack.artifacts / f"{page}.png").stat().st_size > 0


def test_viewer_sees_no_controls(stack: Stack) -> None:
    stack.browser("viewer")


def test_preferences_answered_with_the_keyboard_are_stored(stack: Stack) -> None:
    stack.browser("preferences")
    with stack.store() as store, store.session() as db:
        operator = db.scalar(select(User).where(User.username == "operator"))
        rows = list(db.scalars(select(PreferenceAnswer)
                               .where(PreferenceAnswer.user_id == operator.id)
                               .order_by(PreferenceAnswer.id)))
    live = [r.answer for r in rows if not r.undone]
    # ← → ↓ S ←, then U undid the last ← and ← answered that pair again.
    assert live == ["left", "right", "equal", "skip", "left"]
    assert [r.answer for r in rows if r.undone] == ["left"]
    assert len({r.query_id for r in rows}) == 5


def test_success_frames_labelled_while_playing_are_stored(stack: Stack) -> None:
    stack.browser("label")
    with stack.store() as store, store.session() as db:
        labels = list(db.scalars(select(Label).where(Label.episode_id == stack.episode_id)))
        operator = db.scalar(select(User).where(User.username == "operator"))
    assert labels, "holding L while the video played stored no label"
    assert {lb.label for lb in labels} == {"success"}
    assert {lb.user_id for lb in labels} == {operator.id}
    frames = sorted(lb.step_index for lb in labels)
    assert len(frames) == len(set(frames)), f"a frame was labelled twice: {frames}"


def test_live_frames_and_estop_from_the_ui_latch_the_sim_driver(stack: Stack) -> None:
    control = stack.control()
    try:
        assert not control.status().estop_latched
        stack.browser("live")
        # The actor's status reflects the driver's confirmed latch.
        assert control.status().estop_latched
        control.release_estop()
    finally:
        control.close()


def test_replay_in_sim_from_the_episode_page_is_stored_and_compared(stack: Stack) -> None:
    with stack.store() as store:
        # Not the labelling test's episode: each test owns what it changes.
        source = store.list_episodes(status="complete")[1]
    stack.browser("replay", E2E_REPLAY_EPISODE=str(source.id))
    with stack.store() as store, store.session() as db:
        replays = list(db.scalars(select(Episode).where(Episode.source_episode_id == source.id)))
        operator = db.scalar(select(User).where(User.username == "operator"))
        entries = list(db.scalars(select(AuditEntry).where(AuditEntry.action == "replay.start")))
    (replay,) = replays
    assert replay.status == "complete" and replay.policy == "replay-joints"
    assert replay.num_steps == source.num_steps
    assert [(e.user_id, e.target) for e in entries] == [(operator.id, f"episode:{source.id}")]


def test_operator_request_banner_resolves_the_request(stack: Stack) -> None:
    with stack.store() as store, store.session() as db:
        request = open_request(db, stack.run_id, "no_progress",
                               "e2e: success probability flat for 40 steps")
        db.commit()
    stack.browser("requests")
    with stack.store() as store, store.session() as db:
        done = get_request(db, request.id)
        operator = db.scalar(select(User).where(User.username == "operator"))
    assert done is not None and done.status == "resolved"
    assert done.resolution == "human_reset" and done.user_id == operator.id


def test_learning_page_plots_the_learner_samples(stack: Stack) -> None:
    stack.browser("learning")
    assert (stack.artifacts / "learning-curves.png").stat().st_size > 0


def test_one_time_password_change_and_runs_from_allowed_configs(stack: Stack) -> None:
    stack.browser("security")
    with stack.store() as store, store.session() as db:
        fresh = db.scalar(select(User).where(User.username == "fresh"))
        assert fresh.must_change_password is False
        run = db.scalar(select(Run).where(Run.name == "from the ui"))
        assert run is not None and run.status == "created"  # refused start: nothing ran
        created = db.scalar(select(AuditEntry).where(AuditEntry.action == "run.create",
                                                     AuditEntry.target == f"run:{run.id}"))
        assert created.detail["config"] == "e2e_sim"
