"""Fleet: 1, 2, 4 and 8 sim robots feeding one learner on this machine; where ingest and
updates saturate.

For each fleet size N it starts a fleet run (robolearn.processes.ProcessGroup, as `robolearn
up` does): N sim robots, each a driver process (MuJoCo, headless, one 32x32 camera at
10 fps since a run needs a camera and the actor refuses frames older than
actor.max_obs_age_ms) and an actor process (10 Hz, CQN policy on states, recording off,
live frames off), and one learner on states, with make run's learner
(configs/sim_reach_cqn.yaml: learner.utd 1.0, one thread, hidden 256, batch 64+64). No
operator service. After every robot steps and the learner trains, a warm-up, then a
measured window; from outside the run it listens as the run's own processes do:

- learner_status on learner.weights_address (keys of robot 0's actor identity): the
  learner's per-robot tally `robots[*].transitions` and its `update_step`, differenced over
  the window -> transitions_per_s_in (sum over robots, plus per-robot min/max for
  fairness) and learner_updates_per_s; also its utd_held;
- weights on the same socket: the learner's send time (envelope sent_ns, one monotonic
  clock on this machine) of each version when it first went out;
- each robot's actor telemetry (keys of the service identity): per step its jitter_ms and
  the weights_version it acted with. weights_lag_s: from version v's publication to the
  send time of the first step's telemetry that acted with v (published right after that
  step), over every (robot, version) an actor used among the versions published in the
  window; versions an actor skipped (a newer one came first) are counted apart.
  control_jitter_p99_ms: over every robot's steps in the window.
- CPU: each role's cores (learner, actors, drivers, this process) and the machine's.

    python -m benchmarks.bench_fleet                           # 1,2,4,8 robots, 60 s each
    python -m benchmarks.bench_fleet --robots 1,4 --seconds 90 --task pick_cube
    python -m benchmarks.bench_fleet --quick --robots 1,2      # smoke test, not recorded

The learner never makes more updates than learner.utd asks per env step received, so below
its ceiling learner_updates_per_s follows transitions_per_s_in x utd; where it flattens
while transitions keep rising (utd_held < utd) the learner's updates have saturated, and
where transitions_per_s_in stops growing with N the ingest (or the machine running N
robots) has. `--quick` lines are printed, never appended to the results file.

pick_cube learned by 4 robots against 1 at equal total env steps (success against
wall-clock) is `python -m benchmarks.bench_fleet_learning`, on this config and listener.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import zmq

from benchmarks.results import append_result
from robolearn.config import RunConfig, load_config, parse_config
from robolearn.config.fleet import robot_views
from robolearn.processes import ProcessGroup, use_private_addresses
from robolearn.protocol import Subscriber
from robolearn.protocol.messages import LearnerStatus, Weights

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "sim_reach_cqn.yaml"
CAMERA_PX = 32
CAMERA_FPS = 10.0


# -- the config -----------------------------------------------------------------------------
def fleet_config(base: Path, overrides: list[str], workdir: Path, robots: int, task: str,
                 ) -> RunConfig:
    """`base` as a fleet of `robots` sim robots (r0, r1, ...) on states, headless, recording
    off, no service; every socket an ipc:// file under `workdir`."""
    cfg = load_config(base, overrides)
    raw = cfg.model_dump(mode="json")
    raw["name"] = f"bench_fleet_{robots}"
    raw["data_dir"] = str(workdir / "data")
    use_private_addresses(raw, workdir)
    if raw["robot"]["kind"] != "sim":
        raise SystemExit(f"bench_fleet: {base} has robot.kind {raw['robot']['kind']!r}; "
                         "the fleet benchmark runs sim robots")
    raw["robot"]["task"] = task
    # A run needs a camera, and sim cameras are rendered by the sim driver: one, small, at
    # the control rate (frames older than actor.max_obs_age_ms would stop the actor).
    raw["cameras"] = [{"kind": "sim", "name": "front", "width": CAMERA_PX,
                       "height": CAMERA_PX, "fps": CAMERA_FPS}]
    raw["actor"].update(observe_state=True, record=False, live_fps=0, episodes=None,
                        policy={**raw["actor"]["policy"], "kind": "cqn"})
    raw["learner"].update(enabled=True, observation="state")
    raw["server"] = {**raw["server"], "enabled": False}
    raw["fleet"] = {**raw.get("fleet", {}),
                    "robots": [{"name": f"r{i}"} for i in range(robots)]}
    return parse_config(raw)


# -- listening to the run -------------------------------------------------------------------
@dataclass
class StepSeen:
    sent_ns: int
    jitter_ms: float
    weights_version: int | None
    state: str | None


@dataclass
class Listener:
    """Everything the run publishes that the benchmark reads, each stream on its own
    thread; every message is kept (one message per poll: the subscribers' latest-value
    drain would drop steps that arrive together)."""

    cfg: RunConfig
    weights_every_s: float | None = None
    """Keep a published weights version (blob and all) this often, by its send time, in
    `weights_kept`, and the newest in `weights_last` (None: keep only send times)."""
    stop: threading.Event = field(default_factory=threading.Event)
    statuses: list[tuple[int, LearnerStatus]] = field(default_factory=list)
    weights_sent_ns: dict[int, int] = field(default_factory=dict)
    weights_kept: list[tuple[int, Weights]] = field(default_factory=list)
    weights_last: tuple[int, Weights] | None = None
    steps: dict[str, list[StepSeen]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.threads: list[threading.Thread] = []
        views = robot_views(self.cfg)
        address = self.cfg.learner.weights_address
        security = views[0].socket_security(address, "actor")
        # One subscriber per type: each then hands back every message of its type in order.
        for kind in ("weights", "learner_status"):
            sub = Subscriber(self.ctx, address, types=(kind,), security=security,
                             rcvhwm=100, max_drain=1, name=f"bench-{kind}")
            self._start(self._learner, sub, kind)
        for view in views:
            addr = view.actor.telemetry_address
            sub = Subscriber(self.ctx, addr, types=("telemetry",),
                             security=self.cfg.socket_security(addr, "service"),
                             rcvhwm=10_000, max_drain=1, name=f"bench-{view.robot_name}")
            self._start(self._telemetry, sub, str(view.robot_name))

    def _start(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=self._guarded, args=(target, *args), daemon=True)
        t.start()
        self.threads.append(t)

    def _guarded(self, target: Any, sub: Subscriber, *args: Any) -> None:
        try:
            target(sub, *args)
        except Exception as exc:  # reported with the result; never hangs the benchmark
            self.errors.append(f"{target.__name__}: {type(exc).__name__}: {exc}")
        finally:
            sub.close()

    def _learner(self, sub: Subscriber, kind: str) -> None:
        while not self.stop.is_set():
            msg = sub.wait_new(kind, 0.2)
            if msg is None:
                continue
            if kind == "weights":
                weights = Weights.from_message(msg)
                if weights.version in self.weights_sent_ns:
                    continue  # a republished version keeps its first publication time
                self.weights_sent_ns[weights.version] = msg.sent_ns
                if self.weights_every_s is not None:
                    self._keep(msg.sent_ns, weights)
            else:
                self.statuses.append((msg.sent_ns, LearnerStatus.from_message(msg)))

    def _keep(self, sent_ns: int, weights: Weights) -> None:
        assert self.weights_every_s is not None
        self.weights_last = (sent_ns, weights)
        if (not self.weights_kept
                or sent_ns - self.weights_kept[-1][0] >= self.weights_every_s * 1e9):
            self.weights_kept.append((sent_ns, weights))

    def _telemetry(self, sub: Subscriber, robot: str) -> None:
        seen = self.steps[robot]
        while not self.stop.is_set():
            msg = sub.wait_new("telemetry", 0.2)
            if msg is None or msg.body.get("kind") != "actor":
                continue
            values = msg.body.get("values") or {}
            if "jitter_ms" not in values:  # a heartbeat (e-stop, waiting), not a step
                continue
            seen.append(StepSeen(msg.sent_ns, float(values["jitter_ms"]),
                                 values.get("weights_version"), values.get("state")))

    def latest_status(self) -> LearnerStatus | None:
        return self.statuses[-1][1] if self.statuses else None

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5.0)
        self.ctx.term()


# -- one fleet size -------------------------------------------------------------------------
def _cpu_s(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
        return float(t.user + t.system + t.children_user + t.children_system)
    except psutil.Error:
        return float("nan")


def _machine_busy_s() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _role(child_name: str) -> str:
    return "actors" if child_name.startswith("actor") else (
        "drivers" if child_name.startswith("driver") else child_name)


def _pct(values: list[float], q: float, digits: int = 3) -> float | None:
    return round(float(np.percentile(values, q)), digits) if values else None


def wait_quiet(max_wait_s: float, below_cores: float = 0.5) -> float:
    """Wait up to `max_wait_s` for the machine to be idle (under `below_cores` busy over
    3 s), so one fleet size does not measure another's processes or someone else's job;
    returns the busy cores last seen."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy0 = _machine_busy_s()
        time.sleep(3.0)
        busy = (_machine_busy_s() - busy0) / 3.0
        if busy < below_cores or time.monotonic() > deadline:
            return busy


def run_fleet(base: Path, overrides: list[str], robots: int, task: str, seconds: float,
              warmup_s: float, start_timeout_s: float, log_level: str,
              quiet_wait_s: float = 120.0) -> dict[str, Any]:
    """Start a fleet of `robots`, wait until every robot steps and the learner trains,
    warm up, measure `seconds`, stop it; the numbers of that window."""
    busy_before = wait_quiet(quiet_wait_s)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix=f"rl-fleet{robots}-") as tmp:
        cfg = fleet_config(base, overrides, Path(tmp), robots, task)
        group = ProcessGroup(cfg, log_level=log_level)
        listener = Listener(cfg)
        names = [str(v.robot_name) for v in robot_views(cfg)]
        try:
            t_start = time.monotonic()
            group.start_drivers()
            group.start_learner()
            group.start_actor()
            # Up: every robot's actor steps with learner weights, and the learner trains.
            while True:
                if (done := group.exited()):
                    raise RuntimeError(f"fleet of {robots}: process(es) exited: {done}")
                status = listener.latest_status()
                stepping = all(any(s.weights_version for s in listener.steps[n][-3:])
                               for n in names)
                if stepping and status is not None and status.state == "training":
                    break
                if time.monotonic() - t_start > start_timeout_s:
                    raise RuntimeError(
                        f"fleet of {robots}: not up after {start_timeout_s:.0f} s (learner "
                        f"{status.state if status else 'silent'}; robots stepping with "
                        f"weights: {[n for n in names if listener.steps[n]]})")
                time.sleep(0.2)
            up_s = time.monotonic() - t_start
            print(f"  {robots} robot(s) up in {up_s:.0f} s; warming up {warmup_s:.0f} s",
                  flush=True)
            time.sleep(warmup_s)
            procs = {c.name: psutil.Process(c.proc.pid) for c in group.children}
            me = psutil.Process()
            cpu0 = {n: _cpu_s(p) for n, p in procs.items()}
            me0, busy0 = _cpu_s(me), _machine_busy_s()
            t0_ns = time.monotonic_ns()
            time.sleep(seconds)
            t1_ns = time.monotonic_ns()
            cpu1 = {n: _cpu_s(p) for n, p in procs.items()}
            me1, busy1 = _cpu_s(me), _machine_busy_s()
            # The versions published near the window's end are taken up after it.
            time.sleep(min(5.0, seconds))
            if (done := group.exited()):
                raise RuntimeError(f"fleet of {robots}: process(es) exited: {done}")
        finally:
            listener.close()
            group.stop()
    wall_s = (t1_ns - t0_ns) / 1e9
    cores: dict[str, float] = defaultdict(float)
    for n in cpu0:
        cores[_role(n)] += (cpu1[n] - cpu0[n]) / wall_s
    cores["bench"] = (me1 - me0) / wall_s
    cores["machine"] = (busy1 - busy0) / wall_s
    # Work outside the run (other users' jobs) competes for the same cores.
    cores["others"] = cores["machine"] - sum(v for k, v in cores.items() if k != "machine")
    result = measure(listener, names, t0_ns, t1_ns)
    return {
        "robots": robots, **result,
        "cpu_cores": {k: round(v, 3) for k, v in sorted(cores.items())},
        "up_s": round(up_s, 1),
        "busy_cores_before": round(busy_before, 2),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "listener_errors": listener.errors,
    }


def measure(listener: Listener, names: list[str], t0_ns: int, t1_ns: int) -> dict[str, Any]:
    """The window [t0_ns, t1_ns]'s numbers from what the listener heard."""
    statuses = [(t, s) for t, s in listener.statuses if t0_ns <= t <= t1_ns]
    if len(statuses) < 2:
        raise RuntimeError(f"{len(statuses)} learner_status message(s) in the window: is the "
                           "learner publishing?")
    (ta, first), (tb, last) = statuses[0], statuses[-1]
    span_s = (tb - ta) / 1e9
    per_robot_in: dict[str, float] = {}
    for n in names:
        a = (first.robots or {}).get(n, {}).get("transitions", 0)
        b = (last.robots or {}).get(n, {}).get("transitions", 0)
        per_robot_in[n] = (b - a) / span_s
    transitions_in = sum(per_robot_in.values())
    updates_per_s = (last.update_step - first.update_step) / span_s
    window_s = (t1_ns - t0_ns) / 1e9

    jitter: list[float] = []
    per_robot_out: dict[str, float] = {}
    not_running = 0
    lags: list[float] = []
    used = skipped = 0
    published = {v: t for v, t in listener.weights_sent_ns.items() if t0_ns <= t <= t1_ns}
    for n in names:
        steps = listener.steps[n]
        in_window = [s for s in steps if t0_ns <= s.sent_ns <= t1_ns]
        jitter += [s.jitter_ms for s in in_window]
        not_running += sum(s.state not in (None, "running") for s in in_window)
        per_robot_out[n] = len(in_window) / window_s
        first_use: dict[int, int] = {}
        for s in steps:
            if s.weights_version is not None:
                first_use.setdefault(s.weights_version, s.sent_ns)
        for v, sent in published.items():
            if v in first_use:
                lags.append((first_use[v] - sent) / 1e9)
                used += 1
            else:
                skipped += 1
    return {
        "transitions_per_s_in": round(transitions_in, 2),
        "learner_updates_per_s": round(updates_per_s, 2),
        "weights_lag_s_p99": _pct(lags, 99),
        "control_jitter_p99_ms": _pct(jitter, 99),
        # -- more of the same window
        "per_robot_transitions_per_s_min": round(min(per_robot_in.values()), 2),
        "per_robot_transitions_per_s_max": round(max(per_robot_in.values()), 2),
        "per_robot_transitions_per_s": {n: round(v, 2) for n, v in per_robot_in.items()},
        "env_steps_per_s_out": round(sum(per_robot_out.values()), 2),
        "utd_held": None if last.utd_held is None else round(last.utd_held, 3),
        "utd_target": last.utd_target,
        "learner_updates_per_transition": round(updates_per_s / transitions_in, 3)
        if transitions_in else None,
        "weights_lag_s_p50": _pct(lags, 50),
        "weights_lag_s_max": round(max(lags), 3) if lags else None,
        "weights_versions_published": len(published),
        "weights_lag_pairs": used,
        "weights_versions_skipped": skipped,
        "control_jitter_p50_ms": _pct(jitter, 50, 4),
        "control_jitter_max_ms": round(max(jitter), 3) if jitter else None,
        "control_steps": len(jitter),
        "steps_not_running": not_running,
        "status_span_s": round(span_s, 1),
    }


# -- main -----------------------------------------------------------------------------------
def fleet_sizes(text: str) -> list[int]:
    """`--robots` of the fleet benchmarks: comma-separated robot counts, each >= 1."""
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"wants comma-separated robot counts >= 1 like 1,2,4,8, got {text!r}")
    return sizes


def _table(runs: list[dict[str, Any]]) -> str:
    cols = [("robots", "robots", "{}"), ("transitions_per_s_in", "trans/s in", "{:.1f}"),
            ("env_steps_per_s_out", "steps/s out", "{:.1f}"),
            ("per_robot_transitions_per_s_min", "robot min", "{:.2f}"),
            ("per_robot_transitions_per_s_max", "robot max", "{:.2f}"),
            ("learner_updates_per_s", "updates/s", "{:.2f}"), ("utd_held", "utd held", "{}"),
            ("weights_lag_s_p99", "lag p99 s", "{}"),
            ("control_jitter_p99_ms", "jitter p99 ms", "{}")]
    lines = ["  ".join(f"{h:>13}" for _, h, _ in cols) + "  cpu cores"]
    for r in runs:
        cells = [("-" if r.get(k) is None else f.format(r[k])) for k, _, f in cols]
        cpu = " ".join(f"{k} {v:.2f}" for k, v in r["cpu_cores"].items())
        lines.append("  ".join(f"{c:>13}" for c in cells) + "  " + cpu)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robots", type=fleet_sizes, default="1,2,4,8",
                   help="fleet sizes, comma-separated")
    p.add_argument("--seconds", type=float, default=60.0, help="measured window per size, s")
    p.add_argument("--warmup", type=float, default=20.0,
                   help="s after every robot steps and the learner trains, before measuring")
    p.add_argument("--task", choices=["reach", "pick_cube"], default="reach")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                   help="the template: its learner and actor settings")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--start-timeout", type=float, default=300.0,
                   help="s for a fleet to come up before the benchmark gives up")
    p.add_argument("--quiet-wait", type=float, default=120.0,
                   help="s to wait, before each size, for the machine to go idle")
    p.add_argument("--log-level", default="warning", help="the run's processes' log level")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: short window, learner ready after 20 transitions; "
                   "printed, not appended to the results file")
    args = p.parse_args(argv)
    sizes: list[int] = args.robots
    overrides = list(args.overrides)
    seconds, warmup = args.seconds, args.warmup
    if args.quick:
        seconds, warmup = min(seconds, 6.0), min(warmup, 2.0)
        overrides += ["learner.min_transitions=20", "learner.publish_every=5"]
    load = os.getloadavg()
    runs = []
    for n in sizes:
        print(f"fleet of {n}: starting", flush=True)
        runs.append(run_fleet(args.config, overrides, n, args.task, seconds, warmup,
                              args.start_timeout, args.log_level,
                              0.0 if args.quick else args.quiet_wait))
        print(_table(runs[-1:]), flush=True)
    cfg = fleet_config(args.config, overrides, Path("/nonexistent"), 1, args.task)
    lcfg = cfg.learner
    metrics = {"runs": runs, "task": args.task,
               "ingest_ceiling_transitions_per_s": max(r["transitions_per_s_in"]
                                                       for r in runs),
               "updates_ceiling_per_s": max(r["learner_updates_per_s"] for r in runs)}
    context = {
        "window_s": seconds, "warmup_s": warmup, "quiet_wait_s": args.quiet_wait,
        "config": str(args.config.resolve().relative_to(REPO)
                      if args.config.resolve().is_relative_to(REPO) else args.config),
        "overrides": overrides, "task": args.task, "control_hz": cfg.actor.control_hz,
        "episode_steps": cfg.actor.episode_steps, "record": cfg.actor.record,
        "policy": "cqn (states)", "cameras": f"1 sim {CAMERA_PX}x{CAMERA_PX}@{CAMERA_FPS:g}fps",
        "live_fps": 0, "server": False, "demos": 0,
        "learner": {"utd": lcfg.utd, "threads": lcfg.threads, "nice": lcfg.nice,
                    "hidden_dim": lcfg.cqn.hidden_dim, "batch_size": lcfg.cqn.batch_size,
                    "demo_batch_size": lcfg.cqn.demo_batch_size,
                    "publish_every": lcfg.publish_every,
                    "min_transitions": lcfg.min_transitions},
        "weights_lag": "learner's send time of version v to the send time of the telemetry "
        "of each robot's first step acting with v (one monotonic clock)",
        "load_avg_before": [round(x, 2) for x in load],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(_table(runs))
    if args.quick:
        print("--quick: not appended to the results file")
        return {"benchmark": "fleet", "metrics": metrics, "context": context}
    return append_result("fleet", metrics, **context)


if __name__ == "__main__":
    main()
