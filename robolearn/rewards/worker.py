"""A reward worker: one dense shaping source scored in its own OS process.

A source slower than the control period (a CLIP ViT on the CPU takes ~0.6 s a frame, a
10 Hz loop has 0.1 s for everything) cannot run inline. The actor pushes each step's inputs
to the worker and moves on; the worker scores whatever is queued as one batch and pushes
the values back, and the actor files them under their step when they arrive.

Wires (robolearn.protocol, loopback, both bound by the actor so their addresses exist before
the worker starts)::

    actor  --reward_request (episode, step, task, frames, inputs)-->  worker   PUSH -> PULL
    actor  <--reward_values (ready | values of steps | failed)------  worker   PULL <- PUSH

Example (what StepRewards does)::

    worker = RewardWorker(rewards_cfg, "clip", ctx)    # spawns, then waits for "ready"
    worker.submit("ep-1", 0, "pick up the cube", {"front": frame}, {})
    for msg in worker.poll():                          # never waits
        ...  # a RewardValues view: values.episode, values.step, values.value
    worker.close()
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq

from robolearn.config.rewards import RewardsConfig
from robolearn.errors import RewardModelError
from robolearn.protocol import Message, Puller, Pusher
from robolearn.protocol.messages import RewardRequest, RewardValues

if TYPE_CHECKING:  # loads torch; the worker process imports it itself
    from robolearn.rewards.service import RewardService

log = logging.getLogger(__name__)

_IDLE_POLL_S = 0.5  # how often an idle worker checks that its actor still exists
_CLOSE_WAIT_S = 5.0


def worker_config(rewards: RewardsConfig, source: str) -> RewardsConfig:
    """The rewards section a worker for `source` loads: that one term, inline, no sparse.

    Model paths must already be resolved (the worker has no store to look them up in).
    """
    term = next(t for t in rewards.shaping if t.source == source)
    return rewards.model_copy(update={
        "sparse": "none", "success_frames": 1,
        "shaping": (term.model_copy(update={"process": "inline"}),),
    })


# -- the worker process ---------------------------------------------------------------


def serve(rewards_json: str, source: str, requests_address: str, results_address: str,
          max_batch: int, parent_pid: int) -> int:
    """The worker process's main function: load the source, then score batches until the
    actor closes it (SIGTERM) or disappears. Returns the exit code."""
    import torch

    from robolearn.rewards.service import RewardService

    # One thread: the worker shares the machine's cores with the control loop it serves,
    # and a second intra-op thread only contends with it (measured in StepRewards).
    torch.set_num_threads(1)
    ctx = zmq.Context()
    name = f"reward_worker_{source}"
    requests = Puller(ctx, requests_address, bind=False, name=name)
    results = Pusher(ctx, results_address, name)
    try:
        try:
            service = RewardService(RewardsConfig.model_validate_json(rewards_json))
        except Exception as exc:  # any load failure goes back to the actor as the reason
            _fail(results, source, f"cannot load the {source} reward model: "
                                   f"{type(exc).__name__}: {exc}")
            return 1
        results.send("reward_values", {"source": source, "status": "ready"})
        while True:
            msg = requests.recv(_IDLE_POLL_S)
            if msg is None:
                if os.getppid() != parent_pid:  # orphaned: the actor died without closing us
                    return 0
                continue
            batch = [msg]
            while len(batch) < max_batch and (more := requests.recv(0.0)) is not None:
                batch.append(more)
            try:
                _score(service, source, batch, results)
            except Exception as exc:
                _fail(results, source, f"{source} inference failed: {type(exc).__name__}: {exc}")
                return 1
    finally:
        requests.close()
        results.close()
        ctx.term()


def _fail(results: Pusher, source: str, error: str) -> None:
    log.error("reward worker %s: %s", source, error)
    results.send("reward_values", {"source": source, "status": "failed", "error": error[:2000]})


def _score(service: RewardService, source: str, batch: list[Message], results: Pusher) -> None:
    """Score one drained batch: one inference call per (task, input shapes) group, one
    reply per episode of each group."""
    groups: dict[tuple[str, tuple[tuple[str, tuple[int, ...]], ...]], list[RewardRequest]] = {}
    for msg in batch:
        if msg.type != "reward_request":
            log.warning("reward worker %s: ignoring %s from %s", source, msg.type, msg.sender)
            continue
        request = RewardRequest.from_message(msg)
        shapes = tuple(sorted((k, a.shape) for k, a in request.arrays.items()))
        groups.setdefault((request.task, shapes), []).append(request)
    for (task, _), msgs in groups.items():
        names = sorted(msgs[0].arrays)
        stacked = {k: np.stack([m.arrays[k] for m in msgs]) for k in names}  # [B, ...]
        frames = {k.removeprefix("frame_"): v for k, v in stacked.items()
                  if k.startswith("frame_")}
        inputs = {k.removeprefix("input_"): v for k, v in stacked.items()
                  if k.startswith("input_")}
        try:
            out = service.score(frames, task, step_inputs=inputs or None)
        except RewardModelError as exc:
            # Malformed requests (a camera or an input missing): their values stay missing
            # and the actor counts them; the worker goes on with the next batch.
            log.error("reward worker %s: dropped %d steps: %s", source, len(msgs), exc)
            continue
        values = np.asarray(out.values[source], np.float32)
        by_episode: dict[str, list[int]] = {}
        for i, m in enumerate(msgs):
            by_episode.setdefault(m.episode, []).append(i)
        for episode, rows in by_episode.items():
            results.send("reward_values", {"source": source, "status": "values",
                                           "episode": episode}, {
                "step": np.array([msgs[i].step for i in rows], np.int64),
                "value": values[rows],
            })


# -- the actor's handle -----------------------------------------------------------------


class RewardWorker:
    """Starts and feeds one worker process; never blocks the caller after start-up.

    The worker is a multiprocessing "spawn" child, not a `fork`: the actor has threads
    (control server), a ZeroMQ context and possibly a renderer or torch thread pools,
    none of which survive a fork safely. A spawn child (not a CLI subprocess) gets its
    validated config as an argument, needs no console entry, and is a daemon that dies
    with the actor.

    Args:
        rewards: the run's rewards section with model paths resolved (`worker_config`
            picks the one term).
        source: the shaping source this worker runs.
        ctx: the actor's ZeroMQ context.

    Raises:
        RewardModelError: the worker failed to load its model, died, or was not ready
            within rewards.worker_start_timeout_s (nothing is left running).
    """

    def __init__(self, rewards: RewardsConfig, source: str, ctx: zmq.Context[Any]) -> None:
        self.source = source
        self.failed: str | None = None  # why the worker stopped, once it has
        self.submitted = 0
        self.dropped = 0
        cfg = worker_config(rewards, source)
        # ipc:// files in a fresh 0700 directory: only this user's processes can connect
        # (a loopback tcp port would take scores from any local process, and they become
        # rewards the learner trains on).
        self._sock_dir = Path(tempfile.mkdtemp(prefix="robolearn-reward-"))
        # The queue bound is the actor's: a slow worker fills it and new steps are dropped
        # (counted, their values missing) instead of growing the actor's memory.
        self._requests = Pusher(ctx, f"ipc://{self._sock_dir}/requests", "actor", bind=True,
                                sndhwm=rewards.worker_queue)
        self._results = Puller(ctx, f"ipc://{self._sock_dir}/results",
                               name=f"reward_results_{source}")
        spawn = multiprocessing.get_context("spawn")
        self.process = spawn.Process(
            target=serve, name=f"reward-worker-{source}", daemon=True,
            args=(cfg.model_dump_json(), source, self._requests.address,
                  self._results.address, rewards.worker_batch, os.getpid()),
        )
        try:
            self.process.start()
            self._wait_ready(rewards.worker_start_timeout_s)
        except BaseException:
            self.close()
            raise
        log.info("reward worker %s ready (pid %d)", source, self.process.pid)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self._results.recv(0.2)
            if msg is not None and msg.type == "reward_values":
                values = RewardValues.from_message(msg)
                if values.source == self.source and values.status == "ready":
                    return
                if values.source == self.source and values.status == "failed":
                    raise RewardModelError(f"reward worker {self.source}: "
                                           f"{values.error or ''}")
            if not self.process.is_alive():
                raise RewardModelError(
                    f"reward worker {self.source}: exited with code {self.process.exitcode} "
                    "while loading its model; run the source inline (process: inline) to "
                    "see the error in the actor's log")
        raise RewardModelError(
            f"reward worker {self.source}: not ready after {timeout_s:.0f} s; raise "
            "rewards.worker_start_timeout_s if the model takes longer to load")

    def submit(self, episode: str, step: int, task: str, frames: Mapping[str, np.ndarray],
               inputs: Mapping[str, np.ndarray]) -> bool:
        """Queue one step's inputs without waiting.

        Returns:
            False when the step was not queued (the worker failed, or its queue is full).
        """
        if self.failed is not None:
            return False
        arrays = {f"frame_{k}": np.ascontiguousarray(v) for k, v in frames.items()}
        arrays |= {f"input_{k}": np.asarray(v, np.float32).reshape(-1)
                   for k, v in inputs.items()}
        sent = self._requests.send("reward_request",
                                   {"episode": episode, "step": step, "task": task}, arrays)
        if sent:
            self.submitted += 1
        else:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("reward worker %s is not keeping up: %d steps dropped (their "
                            "values will be missing)", self.source, self.dropped)
        return sent

    def poll(self) -> list[RewardValues]:
        """Values that arrived (status "values", with episode, step and value), without
        waiting; notices a dead worker (sets `failed` and logs the error once)."""
        out: list[RewardValues] = []
        if self._results.closed:
            return out
        while (msg := self._results.recv(0.0)) is not None:
            if msg.type != "reward_values":
                continue
            values = RewardValues.from_message(msg)
            if values.source != self.source:
                continue
            if values.status == "values":
                if values.episode is None or values.step is None or values.value is None:
                    log.warning("reward worker %s: values without episode, step or value; "
                                "ignored", self.source)
                    continue
                out.append(values)
            elif values.status == "failed":
                self._set_failed(values.error or "no reason given")
        if self.failed is None and not self.process.is_alive():
            self._set_failed(f"the process exited with code {self.process.exitcode}")
        return out

    def _set_failed(self, reason: str) -> None:
        if self.failed is None:
            self.failed = reason
            log.error("reward worker %s failed: %s; its shaping term is missing from the "
                      "reward until the worker is restarted before the next episode (up "
                      "to rewards.worker_restarts times; inline sources go on)",
                      self.source, reason)

    def close(self) -> None:
        """Stop the process and close the sockets (idempotent)."""
        if self.process.pid is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(_CLOSE_WAIT_S)
            if self.process.is_alive():
                log.warning("reward worker %s ignored SIGTERM; killing it", self.source)
                self.process.kill()
                self.process.join(_CLOSE_WAIT_S)
        self._requests.close()
        self._results.close()
        shutil.rmtree(self._sock_dir, ignore_errors=True)
