"""What "replay in sim" through the operator service costs on top of the replay itself.

    python -m benchmarks.bench_replay_api --quick

Records a scripted-expert pick_cube episode (84x84 front + wrist), replays it in joint mode
in-process (the library), then through the service (POST /api/episodes/{id}/replays: a
`robolearn replay` child process run by the job board) and reports both wall times, the
service's overhead (child start-up, store open), and the latency of the comparison the UI
loads (GET /api/replays/{id}). Appends to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from benchmarks.bench_sim_replay import _record
from benchmarks.results import append_result
from robolearn.config import parse_config
from robolearn.playback import replay_episode
from robolearn.server.app import create_app
from robolearn.server.auth import CSRF_HEADER
from robolearn.server.users import create_user

_PASSWORD = "bench password 123"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one service replay, 5 GETs")
    parser.add_argument("--steps", type=int, default=60, help="episode length cap")
    args = parser.parse_args()
    repeats, gets = (1, 5) if args.quick else (3, 20)
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config({"name": "bench_replay_api", "data_dir": str(Path(tmp) / "data"),
                               "server": {"development": True}})
        app = create_app(config, token_secret=b"bench-secret-" + b"x" * 32)
        store, services = app.state.services.store, app.state.services
        with TestClient(app) as client:
            with store.session() as db:
                create_user(db, "bench", _PASSWORD, "operator")
                db.commit()
            login = client.post("/api/auth/login",
                                json={"username": "bench", "password": _PASSWORD}).json()
            headers = {CSRF_HEADER: login["csrf_token"]}
            episode_id = _record(store, "pick_cube", 3, args.steps)
            steps = store.get_episode(episode_id).num_steps

            start = time.perf_counter()
            replay_episode(store, episode_id, mode="joints")
            library_s = time.perf_counter() - start

            service_s: list[float] = []
            for _ in range(repeats):
                start = time.perf_counter()
                job = client.post(f"/api/episodes/{episode_id}/replays", headers=headers,
                                  json={"mode": "joints"}).json()["job"]
                services.jobs.submit(lambda: None).result()  # the board runs jobs in order
                service_s.append(time.perf_counter() - start)
                state = client.get(f"/api/replays/jobs/{job}").json()
                assert state["status"] == "done", state
            replay_id = state["result"]["replay_episode_id"]

            latencies = []
            for _ in range(gets):
                start = time.perf_counter()
                assert client.get(f"/api/replays/{replay_id}").status_code == 200
                latencies.append(time.perf_counter() - start)
    service = statistics.median(service_s)
    print(append_result("replay_api", {
        "library_replay_s": library_s,
        "service_replay_s": service,
        "service_overhead_s": service - library_s,
        "service_steps_per_s": steps / service,
        "comparison_get_p50_ms": statistics.median(latencies) * 1e3,
        "comparison_get_max_ms": max(latencies) * 1e3,
    }, task="pick_cube", mode="joints", steps=steps, image_size=[84, 84],
        service_repeats=repeats, transport="TestClient in-process, replay in a child process"))


if __name__ == "__main__":
    main()
