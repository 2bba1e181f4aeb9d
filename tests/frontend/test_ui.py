"""The operator web UI in a real browser against the real service, actor and sim robot.

Each test runs one spec of frontend/e2e/ in Chromium, then checks here, in the database or
at the actor, that what the page showed really happened. Screenshots of every page go to
frontend/test-results/ (E2E_ARTIFACTS overrides).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import zmq
from sqlalchemy import func, select

from robolearn.protocol import Subscriber
from robolearn.store.models import AuditEntry, Episode, Label, PreferenceAnswer, Run, User
from robolearn.store.operator_requests import get_request, open_request
from tests.frontend.conftest import Stack


def test_login_and_every_page(stack: Stack) -> None:
    stack.browser("pages")
    for page in ("login", "live", "runs", "episodes", "preferences", "reward-models",
                 "learning", "calibration", "users", "audit"):
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
        assert run is not None and run.status == "created"  # nothing ran
        assert run.config["actor"]["episodes"] == 3  # the setting changed in the form
        created = db.scalar(select(AuditEntry).where(AuditEntry.action == "run.create",
                                                     AuditEntry.target == f"run:{run.id}"))
        assert created.detail["config"] == "e2e_sim"
        assert created.detail["overrides"] == {"actor.episodes": 3}
        assert db.scalar(select(func.count()).select_from(AuditEntry)
                         .where(AuditEntry.action == "run.start")) == 0


def test_a_takeover_ends_by_itself_when_its_browser_is_killed(stack: Stack,
                                                              tmp_path: Path) -> None:
    # The browser dies mid-takeover (SIGKILL with W held): nothing sends "End takeover", so
    # only the actor's deadman (actor.takeover_timeout_ms without operator input) can hand
    # the arm back to the policy.
    cfg = stack.cfg
    killed_at = tmp_path / "killed_at"
    control = stack.control()
    ctx = zmq.Context()
    address = cfg.actor.telemetry_address
    telemetry = Subscriber(ctx, address, types=("telemetry",),
                           security=cfg.socket_security(address, "service"))
    try:
        before = control.status()
        assert not before.takeover and not before.estop_latched, before
        with stack.store() as store, store.session() as db:
            last_audit = db.scalar(select(func.max(AuditEntry.id))) or 0
            last_episode = db.scalar(select(func.max(Episode.id))) or 0
        stack.browser("takeover", E2E_KILLED_AT=str(killed_at))
        killed_s = int(killed_at.read_text()) / 1000
        # Generous: the deadman's timeout plus seconds for a loaded machine.
        deadline_s = killed_s + cfg.actor.takeover_timeout_ms / 1000 + 8.0
        while (status := control.status()).takeover:
            assert time.time() < deadline_s, (
                f"the takeover outlived its killed browser by {time.time() - killed_s:.1f} s")
            time.sleep(0.1)
        assert not status.estop_latched
        # Telemetry (what the Live page shows) says why it ended.
        values: dict = {}
        while time.time() < deadline_s + 5.0:
            msg = telemetry.wait_new("telemetry", timeout_s=1.0)
            if msg is not None:
                values = dict(msg.body["values"])
                if values.get("takeover") is False and values.get("takeover_ended"):
                    break
        assert "no operator input" in str(values.get("takeover_ended")), values

        with stack.store() as store, store.session() as db:
            entries = list(db.scalars(select(AuditEntry).where(
                AuditEntry.id > last_audit, AuditEntry.action.like("control.%"))))
            users = {u.id: u.username for u in db.scalars(select(User))}
        # The start is the operator's; no stop: nobody ended it through the service.
        assert [(e.action, users.get(e.user_id), e.target) for e in entries] == [
            ("control.takeover_start", "operator", "actor")]

        # The held W reached the arm: steps the operator steered are recorded as
        # interventions, moving forward (+x) only; the policy drives the episodes after.
        steered, after = _takeover_episodes(stack, last_episode)
        forward = steered[:, 0] > 0
        assert forward.any(), steered
        np.testing.assert_array_equal(steered[:, 1:3], 0.0)
        assert after, "no episode without interventions after the takeover ended"
    finally:
        try:
            status = control.status()
            if status.takeover:
                control.takeover(False, operator="test cleanup")
            if status.estop_latched:
                control.release_estop(operator="test cleanup")
        finally:
            telemetry.close()
            ctx.term()
            control.close()


def _takeover_episodes(stack: Stack, last_episode: int,
                       timeout_s: float = 60.0) -> tuple[np.ndarray, list[int]]:
    """The actions of every intervention step in episodes after `last_episode`, and the ids
    of complete episodes after the last one with interventions that have none (waits for
    both)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with stack.store() as store:
            episodes = [e for e in store.list_episodes(status="complete")
                        if e.id > last_episode]
            steered_ids = [e.id for e in episodes if e.has_intervention]
            after = [e.id for e in episodes
                     if steered_ids and e.id > max(steered_ids) and not e.has_intervention]
            if after:
                actions = []
                for episode_id in steered_ids:
                    arrays = store.load_episode(episode_id).arrays
                    actions.append(arrays["action"][arrays["intervention"]])
                return np.concatenate(actions), after
        assert time.monotonic() < deadline, (
            f"timed out after {timeout_s} s waiting for the takeover's episodes; "
            f"complete since: {[(e.id, e.has_intervention) for e in episodes]}")
        time.sleep(0.5)
