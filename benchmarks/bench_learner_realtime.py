"""Learner at the robot's pace: the updates per env step (UTD) a real `robolearn up` holds.

Runs the whole system on this machine, as `make run` does: 20 scripted demos first, then
`robolearn up` (the sim driver rendering its cameras, the learner, the actor at its control
rate, the operator service with one signed-in viewer on the Live feed) for a few minutes.
After a warm-up it measures, from what the run stored:

- updates_per_env_step: the UTD the learner held (mean of its learner metrics rows'
  utd_held, each over the learner's ~30 s window), against its target learner.utd;
- updates_per_s, env_steps_per_s, behind_fraction (rows saying it was behind);
- control_jitter_p99_ms: the actor's own period jitter (wake time minus deadline, stored
  with every step) over the same time; and each process's CPU use, in cores.

Before the run, in a fresh process per thread count, it profiles the learner's update at the
config's sizes and at the reference CQN sizes (hidden 512, batch 256+256): seconds per
update, FLOPs, where the time goes (replay sampling, target computation, forward, backward,
optimiser, Polyak; and per module) and the fp32 matmul throughput of this machine at the
same thread counts (the ceiling the update could approach).

    python -m benchmarks.bench_learner_realtime                    # states, make run's config
    python -m benchmarks.bench_learner_realtime --minutes 2 --no-profile
    python -m benchmarks.bench_learner_realtime --observation pixels --encoder pretrained \\
        --config configs/sim_reach_pixels.yaml   # labels and classifier first, as its header
    python -m benchmarks.bench_learner_realtime --set learner.cqn.hidden_dim=512

Floor (states, and pixels through the pretrained encoder): updates_per_env_step >= 1.0
with control_jitter_p99_ms <= 2. The learner never makes more than its target asks (plus
what it owes from the demos at start), so a learner that keeps up holds its target, 1.0 for
make run's config, to within an update.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import yaml
from sqlalchemy import select

from benchmarks.bench_estop import free_port
from benchmarks.results import append_result
from robolearn.config import RunConfig, load_config, parse_config
from robolearn.processes import use_private_addresses
from robolearn.store import Store
from robolearn.store.models import Episode, LearnerMetrics, Step

FLOOR_UTD = 1.0
FLOOR_JITTER_P99_MS = 2.0
# The reference CQN's state-update sizes (the paper's RLBench settings).
REFERENCE = {"hidden_dim": 512, "batch_size": 256, "demo_batch_size": 256}


# -- the update's profile -------------------------------------------------------------------
def matmul_gflops(m: int = 2048, k: int = 2048, n: int = 2048, reps: int = 6) -> float:
    """Dense fp32 [m, k] @ [k, n] matmul throughput on the CPU at the current torch thread
    count."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9


class _ModuleTimer:
    """Wall time per leaf module of the agent's networks: forward with grad, forward without
    (target side, greedy passes), and backward. CPU ops run synchronously, so the time
    between a module's pre-hook and hook is its own."""

    def __init__(self, networks: Any) -> None:
        import torch

        self.ms: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._handles = []
        self._t0: dict[tuple[str, str], float] = {}
        for net_name, net in networks.items():
            for name, module in net.named_modules():
                if any(True for _ in module.children()) or not name:
                    continue
                key = f"{net_name}.{name}"
                self._handles += [
                    module.register_forward_pre_hook(self._pre(key, "forward")),
                    module.register_forward_hook(self._post(key, "forward")),
                ]
                if any(p.requires_grad for p in module.parameters()) or isinstance(
                        module, torch.nn.LayerNorm | torch.nn.SiLU | torch.nn.Tanh):
                    self._handles += [
                        module.register_full_backward_pre_hook(self._pre(key, "backward")),
                        module.register_full_backward_hook(self._post(key, "backward")),
                    ]

    def _pre(self, key: str, phase: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            self._t0[(key, phase)] = time.perf_counter()
        return hook

    def _post(self, key: str, phase: str) -> Callable[..., None]:
        import torch

        def hook(*_: Any) -> None:
            t0 = self._t0.pop((key, phase), None)
            if t0 is None:
                return
            if phase == "forward" and not torch.is_grad_enabled():
                phase_name = "forward_nograd"
            else:
                phase_name = phase
            self.ms[key][phase_name] += (time.perf_counter() - t0) * 1e3
        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


@contextmanager
def _timed(out: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    out[name] = out.get(name, 0.0) + (time.perf_counter() - t0) * 1e3


def profile_update(cfg_json: dict[str, Any], threads: int, updates: int) -> dict[str, Any]:
    """Seconds per update and where they go, for the config's agent at `threads` threads.
    Runs in its own process (see `profile_in_fresh_process`)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from robolearn.learn.cqn import CQNAgent
    from robolearn.learn.cqn.cpu import keep_freed_memory
    from robolearn.learn.observation import obs_spec_for
    from robolearn.learn.replay import DemoAndOnline, ReplayBuffer

    keep_freed_memory()  # as the learner process does
    torch.set_num_threads(threads)
    # The module timer's backward hooks on the first layers (whose inputs need no grad)
    # make torch warn once per module; the timing is what is wanted.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    torch.manual_seed(0)
    cfg = parse_config(cfg_json)
    cqn, spec = cfg.learner.cqn, obs_spec_for(cfg)
    action_dim = cfg.actor.action_scale.action_dim
    agent = CQNAgent(cqn, spec, action_dim, "cpu")
    # A replay filled with random 50-step episodes: sampling is part of every update.
    rng = np.random.default_rng(0)
    # encoder "pretrained": the buffers keep the frozen model's features, as the learner's.
    kw = {"nstep": cqn.nstep, "discount": cqn.discount, "action_sequence": cqn.action_sequence,
          "frame_encoder": agent.frame_encoder}
    online = ReplayBuffer(spec, action_dim, 20_000, seed=0, **kw)
    demos = ReplayBuffer(spec, action_dim, 20_000, seed=1, is_demo=True, **kw)

    def rgb() -> dict[str, np.ndarray] | None:
        if not spec.pixels:
            return None
        return {c: rng.integers(0, 256, (*spec.image_hw, 3), dtype=np.uint8)
                for c in spec.cameras}

    for buffer, episodes in ((online, 40), (demos, 20)):
        for _ in range(episodes):
            buffer.start_episode(rgb(), rng.standard_normal(spec.low_dim).astype(np.float32))
            for t in range(50):
                buffer.add(rng.uniform(-1, 1, action_dim).astype(np.float32), float(t == 49),
                           rgb(), rng.standard_normal(spec.low_dim).astype(np.float32),
                           terminated=t == 49, truncated=False)
    replay = DemoAndOnline(online, demos, cqn.batch_size, cqn.demo_batch_size)
    batch = replay.sample()
    for _ in range(3):
        agent.update(replay.sample())
    with FlopCounterMode(display=False) as counter:
        agent.update(batch)
    flops = counter.get_flop_counts()

    # Plain updates, as the learner makes them (sampling included, then without).
    t0 = time.perf_counter()
    for _ in range(updates):
        agent.update(replay.sample())
    s_per_update = (time.perf_counter() - t0) / updates
    t0 = time.perf_counter()
    for _ in range(updates):
        replay.sample()
    sample_ms = (time.perf_counter() - t0) / updates * 1e3

    # Phases: wrappers on this agent instance and the optimiser's step hooks.
    phases: dict[str, float] = {}
    target_distribution, update_target = agent.target_distribution, agent.update_target

    def timed_target(b: Any) -> Any:
        with _timed(phases, "target_ms"):
            return target_distribution(b)

    def timed_polyak() -> None:
        with _timed(phases, "polyak_ms"):
            update_target()

    agent.target_distribution, agent.update_target = timed_target, timed_polyak  # type: ignore[method-assign]
    step_t0: list[float] = []
    agent.optimizer.register_step_pre_hook(lambda *_: step_t0.append(time.perf_counter()))
    agent.optimizer.register_step_post_hook(lambda *_: phases.__setitem__(
        "optimizer_ms", phases.get("optimizer_ms", 0.0)
        + (time.perf_counter() - step_t0.pop()) * 1e3))
    timer = _ModuleTimer(agent.networks)
    t0 = time.perf_counter()
    for _ in range(updates):
        agent.update(batch)
    hooked_ms = (time.perf_counter() - t0) / updates * 1e3
    timer.remove()
    per = {k: v / updates for k, v in phases.items()}
    backward_ms = sum(m.get("backward", 0.0) for m in timer.ms.values()) / updates
    forward_ms = hooked_ms - sum(per.values()) - backward_ms
    modules = {
        name: {phase: round(ms / updates, 3) for phase, ms in sorted(times.items())}
        for name, times in sorted(timer.ms.items(), key=lambda kv: -sum(kv[1].values()))
    }
    # FLOPs by module, leaves only; torch's counter names modules from their class, so the
    # online and the target critic (both C2FCritic) are counted together.
    leaves = [k for k in flops if k != "Global" and not any(
        o.startswith(k + ".") for o in flops)]
    gflop_by_module = {k: round(sum(flops[k].values()) / 1e9, 3) for k in sorted(
        leaves, key=lambda k: -sum(flops[k].values()))}
    total_flop = sum(flops.get("Global", {}).values())
    by_op = {str(op): round(n / 1e9, 3) for op, n in flops.get("Global", {}).items()}
    return {
        "threads": threads,
        "hidden_dim": cqn.hidden_dim, "batch": [cqn.batch_size, cqn.demo_batch_size],
        "s_per_update": round(s_per_update, 4),
        "updates_per_s": round(1 / s_per_update, 2),
        "gflop_per_update": round(total_flop / 1e9, 3),
        "gflops_achieved": round(total_flop / 1e9 / (s_per_update - sample_ms / 1e3), 1),
        "matmul_gflops": round(matmul_gflops(), 1),
        # The update's largest matmul: every sample at every level through the advantage head.
        "matmul_gflops_head_shape": round(matmul_gflops(
            (cqn.batch_size + cqn.demo_batch_size) * cqn.levels, cqn.hidden_dim,
            action_dim * cqn.action_sequence * cqn.bins * cqn.atoms, reps=20), 1),
        "gflop_by_op": by_op,
        "gflop_by_module": gflop_by_module,
        "phases_ms": {
            "replay_sample": round(sample_ms, 2),
            "target (no grad: next obs, greedy c2f pass, target critic, C51 projection)":
                round(per.get("target_ms", 0.0), 2),
            "forward + losses (with grad)": round(forward_ms, 2),
            "backward": round(backward_ms, 2),
            "optimizer (fused AdamW)": round(per.get("optimizer_ms", 0.0), 2),
            "polyak": round(per.get("polyak_ms", 0.0), 2),
            "hooked_update_total": round(hooked_ms, 2),
        },
        "modules_ms": modules,
    }


def profile_in_fresh_process(cfg_json: dict[str, Any], threads: int,
                             updates: int) -> dict[str, Any]:
    """`profile_update` in a new process: a learner trains one shape in one process."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(profile_update, cfg_json, threads, updates).result()


# -- the real-time run ----------------------------------------------------------------------
def run_config(base: Path, overrides: list[str], workdir: Path, observation: str,
               encoder: str) -> RunConfig:
    """The config to run: `base` with overrides, its data and sockets under `workdir`."""
    cfg = load_config(base, overrides)
    raw = cfg.model_dump(mode="json")
    raw["name"] = "bench_learner_realtime"
    raw["data_dir"] = str(workdir / "data")
    use_private_addresses(raw, workdir)
    raw["server"] = {**raw["server"], "port": free_port(), "enabled": True}
    raw["learner"]["observation"] = observation
    raw["learner"]["enabled"] = True
    if encoder != "none":
        raw["learner"]["cqn"]["encoder"] = encoder
    return parse_config(raw)


class Viewer(threading.Thread):
    """One operator on the Live page: signed in, reading the live feed over WebSocket."""

    def __init__(self, url: str, cookie: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.cookie, self.stop_event = url, cookie, stop
        self.messages = 0
        self.error: str | None = None

    def run(self) -> None:
        from websockets.sync.client import connect

        from robolearn.server.auth import SESSION_COOKIE

        try:
            with connect(self.url.replace("http", "ws") + "/ws/live", max_size=None,
                         additional_headers={"Cookie": f"{SESSION_COOKIE}={self.cookie}"}) as ws:
                while not self.stop_event.is_set():
                    try:
                        ws.recv(timeout=0.5)
                    except TimeoutError:
                        continue
                    self.messages += 1
        except Exception as exc:  # reported with the result, never hangs the benchmark
            self.error = f"{type(exc).__name__}: {exc}"


def _children(pid: int) -> dict[str, psutil.Process]:
    """The run's processes by role (driver, learner, actor, serve) and `up` itself."""
    roles = {"up": psutil.Process(pid)}
    for child in roles["up"].children(recursive=True):
        try:
            cmd = child.cmdline()
        except psutil.Error:
            continue
        for role in ("driver", "learner", "actor", "serve"):
            if role in cmd:
                roles[role] = child
    return roles


def _machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _cpu_s(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for role, p in procs.items():
        try:
            t = p.cpu_times()
            out[role] = t.user + t.system
        except psutil.Error:
            out[role] = float("nan")
    return out


def run_realtime(cfg: RunConfig, config_path: Path, minutes: float, warmup_s: float,
                 demos: int, viewers: int) -> dict[str, Any]:
    env = {**os.environ, "ROBOLEARN_SERVER_SECRET": "r" * 48}
    cli = [sys.executable, "-m", "robolearn.cli.main", "--log-level", "warning"]
    learned = cfg.rewards.sparse == "classifier"
    if demos:
        t0 = time.monotonic()
        # A classifier-rewarded config's demos end as its header says (five frames after).
        done = ["--set", "rewards.success_frames=5"] if learned else []
        subprocess.run([*cli, "demos", "collect", "--config", str(config_path), "-n",
                        str(demos), *done], check=True, env=env, stdout=subprocess.DEVNULL)
        print(f"{demos} demos collected in {time.monotonic() - t0:.0f} s", flush=True)
    if learned:  # the config header's steps 2 and 3: labels, then the classifier
        t0 = time.monotonic()
        subprocess.run([*cli, "reward", "label-sim", str(config_path), "--max-positives",
                        "200"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run([*cli, "reward", "train-classifier", str(config_path)], check=True,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"success classifier trained in {time.monotonic() - t0:.0f} s", flush=True)
    # The Live viewers' account (a viewer, as an observer is): made before the service
    # starts, since a store with users (label-sim's operator) gets no one-time admin.
    viewer_password = secrets.token_urlsafe(18)
    subprocess.run([*cli, "user", "add", str(config_path), "bench-viewer", "--role", "viewer",
                    "--password-stdin"], input=viewer_password + "\n", text=True, check=True,
                   env=env, stdout=subprocess.DEVNULL)
    up = subprocess.Popen([*cli, "up", str(config_path)], stdout=subprocess.PIPE, text=True,
                          env=env, start_new_session=True)
    lines: list[str] = []
    got_url = threading.Event()

    def drain() -> None:  # children share this pipe: it must never fill up
        assert up.stdout is not None
        for line in up.stdout:
            lines.append(line)
            if "operator service for run" in line:
                got_url.set()

    threading.Thread(target=drain, daemon=True).start()
    stop_viewers = threading.Event()
    started: list[Viewer] = []
    try:
        if not got_url.wait(120):
            raise RuntimeError(f"robolearn up did not start its service: {''.join(lines)}")
        url = next(w for line in lines for w in line.split() if w.startswith("http://"))
        with httpx.Client(base_url=url, timeout=10) as http:
            while True:
                try:
                    http.get("/api/auth/me")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            r = http.post("/api/auth/login",
                          json={"username": "bench-viewer", "password": viewer_password})
            r.raise_for_status()
            cookie = http.cookies.get("robolearn_session") or next(iter(http.cookies.values()))
        for _ in range(viewers):
            v = Viewer(url, cookie, stop_viewers)
            v.start()
            started.append(v)
        time.sleep(warmup_s)
        procs = _children(up.pid)
        t_warm_ns, cpu0, wall0 = time.monotonic_ns(), _cpu_s(procs), time.monotonic()
        busy0 = _machine_busy_s()
        t_warm_utc = dt.datetime.now(dt.UTC)
        print(f"measuring for {minutes:.1f} min (processes: {sorted(procs)})", flush=True)
        time.sleep(minutes * 60)
        cpu1, busy1, wall = _cpu_s(procs), _machine_busy_s(), time.monotonic() - wall0
        if up.poll() is not None:
            raise RuntimeError(f"robolearn up exited early ({up.returncode})")
    finally:
        stop_viewers.set()
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
        up.wait(120)
    cores = {role: round((cpu1[role] - cpu0[role]) / wall, 3) for role in cpu0}
    machine = (busy1 - busy0) / wall
    # Other work on the machine (other users' jobs) competes for the same cores: a number
    # measured beside it says less about the run than one measured alone.
    cores["machine"] = round(machine, 3)
    cores["others"] = round(machine - sum(v for k, v in cores.items() if k != "machine"), 3)
    return {**measure_store(cfg, t_warm_ns, t_warm_utc), "cpu_cores": cores,
            "viewer_messages": sum(v.messages for v in started),
            "viewer_errors": [v.error for v in started if v.error]}


def measure_store(cfg: RunConfig, t_warm_ns: int, t_warm_utc: dt.datetime) -> dict[str, Any]:
    """UTD rows and step jitter recorded after the warm-up (steps by their monotonic stamp,
    learner rows by their UTC time)."""
    with Store.open(cfg.data_dir, cfg.database_url) as store, store.session() as db:
        rows = list(db.scalars(select(LearnerMetrics).order_by(LearnerMetrics.id)))
        jitter = [s.scalars.get("jitter_ms") for s in db.scalars(
            select(Step).join(Episode).where(Episode.is_demo.is_(False),
                                             Step.stamp_ns >= t_warm_ns))]
        period = [s.stamp_ns for s in db.scalars(
            select(Step).join(Episode).where(Episode.is_demo.is_(False),
                                             Step.stamp_ns >= t_warm_ns)
            .order_by(Step.stamp_ns))]
    # SQLite hands back naive datetimes; the store writes UTC.
    measured = [r for r in rows if (r.created_at if r.created_at.tzinfo else
                                    r.created_at.replace(tzinfo=dt.UTC)) >= t_warm_utc]
    if not measured:
        raise RuntimeError("no learner metrics row after the warm-up: did the learner run?")
    held = [r.utd_held for r in measured if r.utd_held is not None]
    jit = np.asarray([j for j in jitter if j is not None], dtype=np.float64)
    first, last = measured[0], measured[-1]
    span_s = (last.created_at - first.created_at).total_seconds()
    return {
        "updates_per_env_step": round(float(np.mean(held)), 3) if held else None,
        "updates_per_env_step_min": round(float(np.min(held)), 3) if held else None,
        "utd_target": last.utd_target,
        "updates_per_s": round((last.update_step - first.update_step) / span_s, 2)
        if span_s > 0 else None,
        "env_steps_per_s": round(float(np.mean([r.env_steps_per_s for r in measured
                                                if r.env_steps_per_s is not None])), 2),
        "behind_fraction": round(sum(r.utd_behind for r in measured) / len(measured), 3),
        "learner_rows": len(measured),
        "updates_total": last.update_step, "env_steps_total": last.env_steps,
        "control_jitter_p99_ms": round(float(np.percentile(jit, 99)), 3) if jit.size else None,
        "control_jitter_p50_ms": round(float(np.percentile(jit, 50)), 4) if jit.size else None,
        "control_jitter_max_ms": round(float(jit.max()), 3) if jit.size else None,
        "control_steps": int(jit.size),
        "steps_recorded_per_s": round((len(period) - 1) / ((period[-1] - period[0]) / 1e9), 2)
        if len(period) > 1 else None,
    }


# -- main -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=Path("configs/sim_reach_cqn.yaml"))
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--observation", choices=["state", "pixels"], default="state")
    p.add_argument("--encoder", choices=["none", "scratch", "pretrained"], default=None,
                   help="pixel encoder (learner.cqn.encoder); none for states (default)")
    p.add_argument("--minutes", type=float, default=4.0, help="measured time, min")
    p.add_argument("--warmup", type=float, default=90.0,
                   help="s from the service's start to the measurement (start-up, demos owed)")
    p.add_argument("--demos", type=int, default=20, help="scripted demos collected first")
    p.add_argument("--viewers", type=int, default=1, help="signed-in viewers of Live")
    p.add_argument("--no-profile", action="store_true", help="skip the update profile")
    p.add_argument("--profile-updates", type=int, default=10,
                   help="timed updates per profile (after 3 warm-up updates)")
    args = p.parse_args(argv)
    encoder = args.encoder or ("none" if args.observation == "state" else "scratch")
    if args.observation == "state" and encoder != "none":
        p.error("--encoder is for pixels; states use none")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="rl-rt-") as tmp:
        workdir = Path(tmp)
        cfg = run_config(args.config, args.overrides, workdir, args.observation, encoder)
        config_path = workdir / "run.yaml"
        config_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        profile: dict[str, Any] = {}
        if not args.no_profile:
            cfg_json = cfg.model_dump(mode="json")
            ref = {**cfg_json, "learner": {**cfg_json["learner"], "cqn": {
                **cfg_json["learner"]["cqn"], **REFERENCE}}}
            for label, c in (("config", cfg_json), ("reference", ref)):
                for threads in (1, 2):
                    prof = profile_in_fresh_process(c, threads, args.profile_updates)
                    profile[f"{label}_{threads}t"] = prof
                    print(f"update {label} (hidden {prof['hidden_dim']}, batch "
                          f"{prof['batch']}), {threads} thread(s): "
                          f"{prof['s_per_update'] * 1e3:.1f} ms, {prof['gflop_per_update']} "
                          f"GFLOP, {prof['gflops_achieved']} GFLOP/s of "
                          f"{prof['matmul_gflops']} (matmul; "
                          f"{prof['matmul_gflops_head_shape']} at the head's shape)", flush=True)
        realtime = run_realtime(cfg, config_path, args.minutes, args.warmup, args.demos,
                                args.viewers)
    lcfg = cfg.learner
    metrics = {"observation": args.observation, "encoder": encoder, **realtime,
               "update_profile": profile}
    # The floor holds for states and for pretrained pixels (the scratch CNN is GPU work).
    floor_met = ((args.observation == "state" or encoder == "pretrained")
                 and realtime["updates_per_env_step"] is not None
                 and round(realtime["updates_per_env_step"], 2) >= FLOOR_UTD
                 and realtime["control_jitter_p99_ms"] is not None
                 and realtime["control_jitter_p99_ms"] <= FLOOR_JITTER_P99_MS)
    record = append_result(
        "learner_realtime", metrics,
        config=str(args.config), overrides=args.overrides, minutes=args.minutes,
        warmup_s=args.warmup, demos=args.demos, viewers=args.viewers,
        control_hz=cfg.actor.control_hz, realtime_priority=cfg.actor.realtime_priority,
        cameras=[f"{c.name} {c.image_hw[1]}x{c.image_hw[0]}@{getattr(c, 'fps', '?')}"
                 for c in cfg.cameras],
        learner={"utd": lcfg.utd, "threads": lcfg.threads, "nice": lcfg.nice,
                 "hidden_dim": lcfg.cqn.hidden_dim,
                 "batch_size": lcfg.cqn.batch_size,
                 "demo_batch_size": lcfg.cqn.demo_batch_size},
        floor={"updates_per_env_step": FLOOR_UTD, "control_jitter_p99_ms": FLOOR_JITTER_P99_MS},
        floor_met=floor_met, load_avg_before=[round(x, 2) for x in load],
        load_avg_after=[round(x, 2) for x in os.getloadavg()],
    )
    shown = {k: v for k, v in metrics.items() if k != "update_profile"}
    print(yaml.safe_dump(shown, sort_keys=False))
    for name, prof in profile.items():
        print(f"-- update profile {name}: {prof['s_per_update'] * 1e3:.1f} ms/update "
              f"({prof['updates_per_s']}/s), {prof['gflop_per_update']} GFLOP, "
              f"{prof['gflops_achieved']} GFLOP/s, matmul ceiling {prof['matmul_gflops']} "
              f"({prof['matmul_gflops_head_shape']} at the head's shape)")
        for phase, ms in prof["phases_ms"].items():
            print(f"   {phase:78s} {ms:8.2f} ms")
        for module, times in list(prof["modules_ms"].items())[:8]:
            print(f"   {module:40s} {times}")
    print(f"floor ({args.observation}): UTD >= {FLOOR_UTD} with jitter p99 <= "
          f"{FLOOR_JITTER_P99_MS} ms: "
          f"{'met' if floor_met else 'MISSED'}")
    return record


if __name__ == "__main__":
    main()
