"""A fleet across three hosts, made of real Linux network namespaces on this machine: the
learner, the service and PostgreSQL on one, a robot on each of the other two. Every socket
crosses a (virtual) network with CURVE and the allow-list; each host has its own data
directory and only its own secret keys. Killing every process of a robot host and starting
it again loses no completed episode, and the learner keeps what it received.

Needs root (it creates the namespaces) and PostgreSQL's server binaries; skips otherwise."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from robolearn.store import Store
from tests.cli.test_run_processes import wait_for
from tests.learn.test_learner_process import TINY_CQN
from tests.server.conftest import PASSWORD, add_user

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
IPS = {"hub": "10.77.0.11", "left": "10.77.0.12", "right": "10.77.0.13"}
PG_PORT = 5433
EPISODES = 4

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or not PG_BIN,
    reason="needs root, iproute2 and PostgreSQL's server binaries (make test installs them)")


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def hosts() -> Iterator[dict[str, str]]:
    """Three namespaces joined by a bridge in a fourth ("the switch"); name -> namespace."""
    tag = f"rl{os.getpid() % 100000}"
    switch = f"{tag}-sw"
    names = {h: f"{tag}-{h}" for h in IPS}
    made: list[str] = []
    try:
        sh("ip", "netns", "add", switch)
        made.append(switch)
        sh("ip", "netns", "exec", switch, "ip", "link", "add", "br0", "type", "bridge")
        sh("ip", "netns", "exec", switch, "ip", "link", "set", "br0", "up")
        for i, (host, ns) in enumerate(names.items()):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            outer, inner = f"{tag}o{i}", f"{tag}i{i}"
            sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            sh("ip", "link", "set", outer, "netns", switch)
            sh("ip", "link", "set", inner, "netns", ns)
            sh("ip", "netns", "exec", switch, "ip", "link", "set", outer, "master", "br0", "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{IPS[host]}/24", "dev", inner)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield names
    finally:
        for ns in reversed(made):
            for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                      text=True).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


@pytest.fixture
def postgres(hosts: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A PostgreSQL server on the hub host: (URL the hosts use, URL for this test's
    checks, over its Unix socket)."""
    bin_dir = PG_BIN[-1]
    root = Path(tempfile.mkdtemp(prefix="robolearn-pg-hosts-"))
    root.chmod(0o755)
    shutil.chown(root, "postgres")
    as_pg = ["ip", "netns", "exec", hosts["hub"], "runuser", "-u", "postgres", "--"]
    try:
        sh(*as_pg, str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "robolearn",
           "--auth=trust")
        with open(root / "data" / "pg_hba.conf", "a") as hba:
            hba.write("host all all 10.77.0.0/24 trust\n")
        sh(*as_pg, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-l",
           str(root / "log"), "-w", "-o",
           f"-p {PG_PORT} -k {root} -c listen_addresses={IPS['hub']}", "start")
        sh(*as_pg, str(bin_dir / "createdb"), "-h", str(root), "-p", str(PG_PORT), "-U",
           "robolearn", "fleet")
        yield (f"postgresql+psycopg://robolearn@{IPS['hub']}:{PG_PORT}/fleet",
               f"postgresql+psycopg://robolearn@/fleet?host={root}&port={PG_PORT}")
    finally:
        subprocess.run([*as_pg, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m",
                        "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def fleet_config(base: Path, host: str, database_url: str, server_port: int) -> Path:
    """The one fleet config, as host `host` has it: its own data and keys directories."""
    hub = IPS["hub"]
    raw = {
        "name": "fleet_hosts",
        "data_dir": str(base / host / "data"),
        "database_url": database_url,
        "security": {"keys_dir": str(base / host / "keys")},
        "robot": {"kind": "sim", "task": "reach", "state_address": "tcp://127.0.0.1:7551",
                  "command_address": "tcp://127.0.0.1:7552",
                  "frames_address": "tcp://127.0.0.1:7553"},
        "cameras": [{"kind": "sim", "name": "front", "width": 32, "height": 32, "fps": 10}],
        "actor": {"observe_state": True, "episode_steps": 20, "episodes": EPISODES,
                  "policy": {"kind": "cqn"}, "telemetry_address": "tcp://127.0.0.1:7560",
                  "control_address": "tcp://127.0.0.1:7561"},
        "learner": {"enabled": True, "observation": "state", "min_transitions": 10,
                    "utd": 0.5, "cqn": TINY_CQN,
                    "transitions_address": f"tcp://{hub}:7570",
                    "weights_address": f"tcp://{hub}:7571"},
        "server": {"enabled": True, "host": hub, "port": server_port},
        "fleet": {"robots": [{"name": "left", "host": IPS["left"]},
                             {"name": "right", "host": IPS["right"]}]},
    }
    path = base / f"{host}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def up(ns: str, config: Path, *roles: str, log: Path) -> subprocess.Popen[bytes]:
    args = [a for r in roles for a in ("--role", r)]
    with open(log, "ab") as out:
        return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m",
                                 "robolearn.cli.main", "--log-level", "info", "up",
                                 str(config), *args], stdout=out, stderr=out)


def test_a_fleet_across_three_hosts_loses_no_completed_episode(
        tmp_path: Path, hosts: dict[str, str], postgres: tuple[str, str]) -> None:
    db_url, check_url = postgres
    configs = {h: fleet_config(tmp_path, h, db_url, 8180) for h in IPS}
    # Keys made once, each host getting the public keys and only its own secrets.
    keyring = fleet_config(tmp_path, "keyring", db_url, 8180)
    sh(sys.executable, "-m", "robolearn.cli.main", "keys", "create", str(keyring))
    own = {"hub": ["learner", "service"], "left": ["driver-left", "actor-left"],
           "right": ["driver-right", "actor-right"]}
    for host, identities in own.items():
        sh(sys.executable, "-m", "robolearn.cli.main", "keys", "export", str(keyring),
           "--out", str(tmp_path / host / "keys"), *(a for i in identities
                                                     for a in ("--identity", i)))
    assert not (tmp_path / "left" / "keys" / "actor-right.key_secret").exists()

    logs = {h: tmp_path / f"{h}.log" for h in IPS}
    hub = up(hosts["hub"], configs["hub"], "learner", "service", log=logs["hub"])
    try:
        wait_for(lambda: hub.poll() is not None or "operator service: http://" in
                 logs["hub"].read_text(), 120, "the hub's learner and service")
        assert hub.poll() is None, logs["hub"].read_text()[-3000:]
        # Its learner is listening once it has opened its trackers (after binding).
        wait_for(lambda: (tmp_path / "hub" / "data" / "tensorboard").is_dir(), 120,
                 "the hub's learner to start")

        def complete(robot: str) -> list:
            with Store.open(tmp_path / "check", check_url) as store:
                return [e for e in store.list_episodes() if e.robot == robot]

        right = up(hosts["right"], configs["right"], "robot:right", log=logs["right"])
        left = up(hosts["left"], configs["left"], "robot:left", log=logs["left"])
        wait_for(lambda: len(complete("left")) >= 2 or left.poll() is not None, 180,
                 "two complete episodes from the left robot")
        # The left host dies: every process in its namespace, at once.
        pids = subprocess.run(["ip", "netns", "pids", hosts["left"]], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            os.kill(int(pid), signal.SIGKILL)
        left.wait(30)
        before = {e.id for e in complete("left")}
        assert len(before) >= 2
        time.sleep(1.0)
        # ...and comes back: it joins the same run and goes on with new seeds.
        left = up(hosts["left"], configs["left"], "robot:left", log=logs["left"])
        assert left.wait(240) == 0, logs["left"].read_text()[-3000:]
        assert right.wait(240) == 0, logs["right"].read_text()[-3000:]
        after = complete("left")
        assert before <= {e.id for e in after}  # no completed episode was lost
        assert len(after) >= len(before) + EPISODES
        assert len({e.seed for e in after}) == len(after)  # no scene twice
        episodes = after + complete("right")
        # Each host holds its own robot's files; the hub holds none of them.
        for e in episodes:
            assert (tmp_path / e.robot / "data" / e.npz_path).is_file(), e
        assert not list((tmp_path / "hub" / "data").glob("runs/**/*.npz"))
        kept = tmp_path / "hub" / "data" / "learner_episodes"
        wait_for(lambda: len(list(kept.glob("*.npz"))) >= len(episodes) - 1, 60,
                 "the learner to keep the episodes it received")
        # The service on the hub plays a video recorded on the left host, asking that host.
        with Store.open(tmp_path / "check", check_url) as store:
            add_user(store, "viewer", "viewer")
        files = subprocess.Popen(["ip", "netns", "exec", hosts["left"], sys.executable, "-m",
                                  "robolearn.cli.main", "files", str(configs["left"]),
                                  "--robot", "left"])
        try:
            shown = after[-1]
            mp4 = ((tmp_path / "left" / "data" / shown.npz_path).parent
                   / f"{shown.id}_front.mp4")
            got = subprocess.run(
                ["ip", "netns", "exec", hosts["hub"], sys.executable, "-c", FETCH,
                 f"http://{IPS['hub']}:8180", str(shown.id), PASSWORD],
                capture_output=True, text=True, timeout=120)
            assert got.returncode == 0, got.stderr[-2000:]
            status, body = got.stdout.split()
            data = mp4.read_bytes()
            assert status == "206" and body == data[100:1100].hex()
        finally:
            files.send_signal(signal.SIGTERM)
            files.wait(30)
    finally:
        if hub.poll() is None:
            hub.send_signal(signal.SIGTERM)
        assert hub.wait(60) == 0, logs["hub"].read_text()[-3000:]
    with Store.open(tmp_path / "check", check_url) as store:
        [run] = store.list_runs()
        assert run.status == "stopped"
        assert {e.run_id for e in store.list_episodes()} == {run.id}


# Run on the hub: sign in, then ask the service for 1000 bytes of the video from byte 100.
FETCH = """
import sys, time, httpx
url, episode, password = sys.argv[1], sys.argv[2], sys.argv[3]
r = httpx.post(url + "/api/auth/login", json={"username": "viewer", "password": password})
r.raise_for_status()
for _ in range(50):  # the robot host's file server may still be starting
    v = httpx.get(f"{url}/api/episodes/{episode}/video/front", cookies=r.cookies,
                  headers={"Range": "bytes=100-1099"}, timeout=30)
    if v.status_code != 502:
        break
    time.sleep(0.2)
print(v.status_code, v.content.hex())
"""
