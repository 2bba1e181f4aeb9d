"""The learner's episode assembler: actor episodes rebuilt from their transition messages.

Episodes arrive step by step from any number of actors (one `transition` message per step).
`EpisodeAssembler` holds each one's steps until it is whole: its last step came, its store
id came (`episode_stored`; it lets a resumed learner find the episode again) or was waited
out, and, when the run has worker-run shaping terms, its late rewards came
(`episode_rewards`) or were waited out. It then hands the episode out as an
`AssembledEpisode`, which `stream_into` feeds to the replay.

It refuses what cannot belong to the run: steps of another source's episode, arrays not in
the learner's observation layout, steps missing or out of order. Pending steps are bounded
per source and in total (`PendingLimits`), so an episode that never ends (a dead or forged
sender) cannot grow memory without bound.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robolearn.config import RunConfig
from robolearn.learn.batch import ObsSpec
from robolearn.learn.replay import DemoAndOnline
from robolearn.learn.replay.loading import StoreEpisode
from robolearn.protocol import Message
from robolearn.protocol.messages import EpisodeRewards, EpisodeStored, Transition

log = logging.getLogger(__name__)

# How long a finished episode waits for the actor's `episode_stored` (its store id, which
# lets a resumed learner find it again) before it is handed out without one.
STORED_WAIT_S = 5.0

Source = tuple[str | None, str]
"""Who sent a message: (authenticated peer, sender field). Steps of one episode must all
come from one source; pending limits apply per source."""


class ThrottledWarnings:
    """At most one warning per kind every `every_s`, counting those left out: a flood of
    bad messages must not flood the log (or slow the learner down writing it)."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0) -> None:
        self.logger = logger
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warn(self, kind: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.every_s:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return
        skipped = self._skipped.pop(kind, 0)
        self._last[kind] = now
        if skipped:
            self.logger.warning(msg + " (and %d more like it in the last %.0f s)", *args,
                                skipped, now - (last or now))
        else:
            self.logger.warning(msg, *args)


@dataclass(frozen=True)
class PendingLimits:
    """How much the assembler holds in unfinished episodes before dropping the oldest.

    Attributes:
        max_steps: steps per source.
        max_bytes: array bytes per source.
        max_steps_total: steps of all sources together (sources of many senders,
            unauthenticated with any sender name, share it).
    """

    max_steps: int
    max_bytes: int
    max_steps_total: int

    @classmethod
    def for_run(cls, cfg: RunConfig, spec: ObsSpec, action_dim: int,
                late_rewards: bool) -> PendingLimits:
        """An actor streams one episode while its finished ones wait (store id, late
        rewards): at most episode_steps + wait_s · control_hz steps of it are held; twice
        that leaves room for a slow learner. Bytes: two observations per step."""
        wait_s = STORED_WAIT_S + (cfg.rewards.late_wait_s if late_rewards else 0.0)
        max_steps = 2 * (cfg.actor.episode_steps + math.ceil(wait_s * cfg.actor.control_hz))
        height, width = spec.image_hw
        obs_bytes = len(spec.cameras) * height * width * 3 + 4 * spec.low_dim
        # All sources together: every robot of a fleet streaming at once, and room for three.
        robots = max(1, len(cfg.fleet.robots))
        return cls(max_steps=max_steps,
                   max_bytes=max_steps * (2 * obs_bytes + 4 * action_dim),
                   max_steps_total=(robots + 3) * max_steps)


@dataclass(frozen=True)
class AssembledEpisode:
    """A whole actor episode, as its messages came.

    Attributes:
        key: the actor's episode key. source: who sent it.
        first: its first transition (which carries the first observation too).
        steps: one transition message per step, in order.
        episode_id: its store id, if the actor stored it and said so in time.
        reward_delta: [T] worker-run shaping values to add to the inline rewards, when the
            run has such terms (zeros where they did not come in time).
        loaded_before: it was stored before this learner started and loaded from the store
            then; its transitions are the same experience a second time (its steps still
            count, as if they had come before the load).
    """

    key: str
    source: Source
    first: Transition
    steps: list[Transition]
    episode_id: int | None
    reward_delta: np.ndarray | None
    loaded_before: bool = False

    @property
    def num_steps(self) -> int:
        return len(self.steps)

    @property
    def episode_return(self) -> float:
        delta = 0.0 if self.reward_delta is None else float(self.reward_delta.sum())
        return sum(t.reward for t in self.steps) + delta

    @property
    def success(self) -> bool:
        return any(t.terminated for t in self.steps)

    @property
    def intervention(self) -> bool:
        return any(t.intervention for t in self.steps)

    def as_store_episode(self, spec: ObsSpec, cameras: tuple[str, ...]) -> StoreEpisode:
        """The episode as the buffers load one (what the learner keeps of it): its frames,
        proprioception, actions, the rewards it trained on and its flags.

        Raises:
            KeyError, ValueError: it has no store id, or a message lacks an array.
        """
        if self.episode_id is None:
            raise ValueError(f"episode {self.key}: no store id to keep it under")
        low_dim = self.first.low_dim
        if low_dim is None:
            raise KeyError(f"episode {self.key}: its first transition has no low_dim")

        def frame(t: Transition, prefix: str) -> np.ndarray:
            images = t.images(cameras, prefix)
            return np.stack([images[c].transpose(2, 0, 1) for c in cameras]) if cameras \
                else np.zeros((0, 3, *spec.image_hw), np.uint8)

        delta = self.reward_delta
        reward = np.array([t.reward for t in self.steps], np.float32)
        if delta is not None:
            reward = reward + delta.astype(np.float32)
        return StoreEpisode(
            episode_id=self.episode_id,
            pixels=np.stack([frame(self.first, "rgb_"),
                             *(frame(t, "next_rgb_") for t in self.steps)]),
            low_dim=np.stack([low_dim, *(t.next_low_dim for t in self.steps)]),
            action=np.stack([t.action for t in self.steps]), reward=reward,
            success=self.success,
            intervention=np.array([t.intervention for t in self.steps], bool))

    def stream_into(self, replay: DemoAndOnline, cameras: tuple[str, ...]) -> None:
        """Feed the episode to the replay step by step (`cameras` in view order; none for a
        state-only agent).

        Raises:
            KeyError, ValueError: a message lacks an array or the replay refuses one; the
                replay keeps the steps fed so far as a truncated episode.
        """
        def rgb(t: Transition, prefix: str) -> dict[str, np.ndarray] | None:
            return t.images(cameras, prefix) if cameras else None

        low_dim = self.first.low_dim
        if low_dim is None:
            raise KeyError(f"episode {self.key}: its first transition has no low_dim")
        replay.start_episode(rgb(self.first, "rgb_"), low_dim, episode_id=self.episode_id)
        delta = self.reward_delta
        for i, t in enumerate(self.steps):
            # The transition carried the inline reward; worker terms come as a delta.
            reward = t.reward + (float(delta[i]) if delta is not None else 0.0)
            replay.add(t.action, reward, rgb(t, "next_rgb_"), t.next_low_dim,
                       terminated=t.terminated, truncated=t.truncated,
                       intervention=t.intervention)


@dataclass
class _Pending:
    """Steps of one actor episode, held until its last step (and its store id) arrive."""

    source: Source
    first: Transition | None = None
    last_seq: int = -1  # wire seq of its newest step: they only go up
    nbytes: int = 0  # array bytes held
    steps: list[Transition] = field(default_factory=list)
    done_at: float | None = None
    stored: bool = False  # its store id came, or none will (not recorded, or waited out)
    episode_id: int | None = None
    # Worker-run shaping rewards to add per transition (episode_rewards), when the run has
    # such terms; the episode waits for them (rewards.late_wait_s).
    reward_delta: np.ndarray | None = None

    def assembled(self, key: str, loaded_before: bool = False) -> AssembledEpisode:
        assert self.first is not None
        return AssembledEpisode(key, self.source, self.first, self.steps, self.episode_id,
                                self.reward_delta, loaded_before)


class EpisodeAssembler:
    """Rebuilds actor episodes from transition, episode_stored and episode_rewards messages.

    Each message method returns the episode that message completed, or None.

    Args:
        spec: the learner's observation layout (a transition must carry exactly it).
        action_dim: D.
        limits: pending limits (`PendingLimits.for_run`).
        late_rewards: every episode waits for its episode_rewards (the run has worker-run
            shaping terms), at most `late_wait_s` after its last step.
        loaded: store episode id -> whether the learner already holds it (loaded from the
            store at start); such an episode is handed out marked `loaded_before`.
    """

    def __init__(self, spec: ObsSpec, action_dim: int, limits: PendingLimits, *,
                 late_rewards: bool = False, late_wait_s: float = 0.0,
                 loaded: Callable[[int], bool] = lambda episode_id: False) -> None:
        self.spec = spec
        self.action_dim = action_dim
        self.limits = limits
        self.late_rewards = late_rewards
        self.late_wait_s = late_wait_s
        self._loaded = loaded
        self._pending: dict[str, _Pending] = {}  # oldest first
        self._load: dict[Source, list[int]] = {}  # source -> [pending steps, bytes]
        self._pending_steps = 0
        self._warnings = ThrottledWarnings(log)

    @property
    def pending_steps(self) -> int:
        """Steps held in unfinished episodes, all sources."""
        return self._pending_steps

    @property
    def pending_episodes(self) -> int:
        """Episodes held: still streaming, or finished and waiting."""
        return len(self._pending)

    # -- messages -----------------------------------------------------------------------
    def transition(self, msg: Message, source: Source) -> AssembledEpisode | None:
        """Take one step of an episode."""
        t = Transition.from_message(msg)
        key, step = t.episode, t.step
        pending = self._pending.get(key)
        if pending is not None and pending.source != source:
            # Someone else's episode key: never let it restart or extend that episode.
            self._warnings.warn("foreign", "learner: refused a step of episode %s from %s: "
                                "the episode is %s's", key, source, pending.source)
            return None
        problem = self._transition_problem(t, step == 0)
        if problem is not None:
            self._warnings.warn("malformed", "learner: dropped a transition of %s from %s: %s",
                                key, source, problem)
            self._drop(key)
            return None
        if step == 0:
            self._drop(key)
            pending = self._pending[key] = _Pending(source=source, first=t)
        elif (pending is None or len(pending.steps) != step or pending.done_at is not None
              or msg.seq <= pending.last_seq):
            # Joined mid-episode (learner restarted), a step went missing, or steps out of
            # order or past the end: drop it; an episode recorded in the store is loaded
            # from there by a resumed learner.
            self._drop(key)
            return None
        nbytes = sum(a.nbytes for a in t.arrays.values())
        pending.steps.append(t)
        self._pending_steps += 1
        pending.last_seq = msg.seq
        pending.nbytes += nbytes
        load = self._load.setdefault(source, [0, 0])
        load[0] += 1
        load[1] += nbytes
        self._enforce_limits(source)
        if key not in self._pending:
            return None  # it was the oldest and went over the limits itself
        if t.terminated or t.truncated:
            pending.done_at = time.monotonic()
            pending.stored = not t.recorded  # else wait for its store id
            return self._complete(key)
        return None

    def stored(self, msg: Message, source: Source) -> AssembledEpisode | None:
        """Take an episode_stored: a finished episode's store id."""
        note = EpisodeStored.from_message(msg)
        key = note.episode
        ready = self._pending.get(key)
        if ready is None or ready.done_at is None or ready.source != source:
            return None
        episode_id = note.episode_id
        if self._loaded(episode_id):
            # Stored before this learner started and loaded from the store then.
            self._drop(key)
            return ready.assembled(key, loaded_before=True)
        ready.stored, ready.episode_id = True, episode_id
        return self._complete(key)

    def rewards(self, msg: Message, source: Source) -> AssembledEpisode | None:
        """Take an episode_rewards: a finished episode's worker-run shaping values."""
        rewards = EpisodeRewards.from_message(msg)
        key = rewards.episode
        pending = self._pending.get(key)
        delta = rewards.reward_delta
        if pending is not None and pending.source != source:
            pending = None  # not the sender of its steps
        if pending is None or pending.done_at is None:
            log.warning("learner: episode_rewards for %s, which is not waiting (dropped, or "
                        "added without them after rewards.late_wait_s); ignored", key)
            return None
        if delta.shape != (len(pending.steps),):
            log.warning("learner: episode_rewards for %s has %d values for %d transitions; "
                        "ignored", key, delta.shape[0], len(pending.steps))
            return None
        if rewards.missing:
            log.warning("learner: episode %s: %d worker reward values missing (delta 0 there)",
                        key, rewards.missing)
        pending.reward_delta = delta
        return self._complete(key)

    def flush(self, now: float | None = None) -> list[AssembledEpisode]:
        """Finished episodes whose store id never came (the actor died before storing) or
        whose late rewards did not come within `late_wait_s`, handed out without them."""
        now = time.monotonic() if now is None else now
        done = []
        for key, p in list(self._pending.items()):
            if p.done_at is None:
                continue
            if not p.stored and now - p.done_at > STORED_WAIT_S:
                p.stored = True
            if (self.late_rewards and p.reward_delta is None
                    and now - p.done_at > self.late_wait_s):
                log.warning("learner: episode %s: no worker rewards after %.0f s; added with "
                            "its inline rewards only", key, self.late_wait_s)
                p.reward_delta = np.zeros(len(p.steps), np.float32)
            episode = self._complete(key)
            if episode is not None:
                done.append(episode)
        return done

    # -- internals ----------------------------------------------------------------------
    def _complete(self, key: str) -> AssembledEpisode | None:
        """Hand out a finished episode once its store id and its late rewards (if the run
        has worker-run shaping terms) are in."""
        ep = self._pending[key]
        if ep.done_at is None or not ep.stored:
            return None
        if self.late_rewards and ep.reward_delta is None:
            return None
        self._drop(key)
        return ep.assembled(key)

    def _transition_problem(self, t: Transition, first: bool) -> str | None:
        """Why a transition cannot belong to this run's episodes, or None: its arrays must
        be exactly those the actor sends, in this learner's observation layout."""
        spec = self.spec
        expected: dict[str, tuple[int, ...]] = {"action": (self.action_dim,),
                                                "next_low_dim": (spec.low_dim,)}
        images = ("next_rgb_", "rgb_") if first else ("next_rgb_",)
        for prefix in images:
            expected |= {f"{prefix}{c}": (*spec.image_hw, 3) for c in spec.cameras}
        if first:
            expected["low_dim"] = (spec.low_dim,)
        if set(t.arrays) != set(expected):
            return f"arrays {sorted(t.arrays)}, expected {sorted(expected)}"
        for name, shape in expected.items():
            array = t.arrays[name]
            if array.shape != shape or (name.startswith(("rgb_", "next_rgb_"))
                                        and array.dtype != np.uint8):
                return f"{name} is {array.dtype} {array.shape}, expected {shape}"
        return None

    def _drop(self, key: str) -> _Pending | None:
        ep = self._pending.pop(key, None)
        if ep is not None:
            self._pending_steps -= len(ep.steps)
            load = self._load[ep.source]
            load[0] -= len(ep.steps)
            load[1] -= ep.nbytes
            if load[0] <= 0:
                del self._load[ep.source]
        return ep

    def _enforce_limits(self, source: Source) -> None:
        """Drop the oldest pending episodes while `source`, or all sources together, hold
        more than the limits."""
        limits = self.limits
        while True:
            load = self._load.get(source, [0, 0])
            if load[0] > limits.max_steps or load[1] > limits.max_bytes:
                what = f"{source} holds {load[0]} steps / {load[1]} bytes in unfinished " \
                       f"episodes (limit {limits.max_steps} / {limits.max_bytes})"
                victim = next(k for k, p in self._pending.items() if p.source == source)
            elif sum(n for n, _ in self._load.values()) > limits.max_steps_total:
                what = (f"all senders together hold more than {limits.max_steps_total}"
                        " steps in unfinished episodes")
                victim = next(iter(self._pending))
            else:
                return
            dropped = self._drop(victim)
            assert dropped is not None
            self._warnings.warn("limit", "learner: dropped pending episode %s (%d steps) of "
                                "%s: %s. An episode that never finishes, or a sender "
                                "flooding the learner", victim, len(dropped.steps),
                                dropped.source, what)
