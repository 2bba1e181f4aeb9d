"""Episode lists, detail, step scalars and MP4 Range requests, on real recorded episodes."""

from __future__ import annotations

import pytest

from robolearn.store import Store
from tests.server.conftest import Actor, record_episode


@pytest.fixture
def episodes(store: Store) -> dict[str, int]:
    run_a = store.create_run("a", {})
    run_b = store.create_run("b", {})
    return {
        "ok": record_episode(store, run_a, steps=6, outcome="success"),
        "fail": record_episode(store, run_a, steps=4, outcome="failure", intervention=True,
                               direction="backward"),
        "other": record_episode(store, run_b, steps=5, outcome="timeout", task="push"),
        "run_a": run_a,
    }


def ids(r) -> list[int]:
    assert r.status_code == 200, r.text
    return [e["id"] for e in r.json()["items"]]


def test_list_filters_and_pages(users: dict[str, Actor], episodes: dict[str, int]) -> None:
    v = users["viewer"]
    assert ids(v.get("/api/episodes")) == [episodes["other"], episodes["fail"], episodes["ok"]]
    assert set(ids(v.get(f"/api/episodes?run_id={episodes['run_a']}"))) == {
        episodes["ok"], episodes["fail"]}
    assert ids(v.get("/api/episodes?task=push")) == [episodes["other"]]
    assert ids(v.get("/api/episodes?outcome=failure")) == [episodes["fail"]]
    assert ids(v.get("/api/episodes?intervention=true")) == [episodes["fail"]]
    assert ids(v.get("/api/episodes?direction=backward")) == [episodes["fail"]]
    page = v.get("/api/episodes?limit=2&offset=1").json()
    assert page["total"] == 3 and [e["id"] for e in page["items"]] == [episodes["fail"],
                                                                       episodes["ok"]]
    assert v.get("/api/episodes?outcome=bogus").status_code == 422
    assert v.get("/api/episodes?limit=100000").status_code == 422


def test_detail_and_steps(users: dict[str, Actor], episodes: dict[str, int]) -> None:
    v = users["viewer"]
    d = v.get(f"/api/episodes/{episodes['ok']}").json()
    assert d["num_steps"] == 6 and d["outcome"] == "success" and d["labels"] == 0
    assert set(d["video_urls"]) == {"front", "wrist"}
    s = v.get(f"/api/episodes/{episodes['ok']}/steps").json()
    assert s["index"] == list(range(6))
    assert s["reward"] == [float(t) for t in range(6)]
    assert s["success_prob"][3] == pytest.approx(0.5)
    assert s["scalars"]["latency_ms"] == [3.0] * 6
    assert v.get("/api/episodes/999999").status_code == 404


def test_video_range_requests(users: dict[str, Actor], episodes: dict[str, int],
                              store: Store) -> None:
    v = users["viewer"]
    url = f"/api/episodes/{episodes['ok']}/video/front"
    data = store.video_path(episodes["ok"], "front").read_bytes()
    size = len(data)
    full = v.get(url)
    assert full.status_code == 200 and full.content == data
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "video/mp4"
    part = v.get(url, headers={"Range": "bytes=10-99"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 10-99/{size}"
    assert part.content == data[10:100]
    tail = v.get(url, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == data[-50:]
    open_end = v.get(url, headers={"Range": f"bytes={size - 7}-"})
    assert open_end.status_code == 206 and open_end.content == data[-7:]
    clipped = v.get(url, headers={"Range": f"bytes=0-{size * 2}"})
    assert clipped.status_code == 206 and clipped.content == data
    for bad in (f"bytes={size}-", "bytes=50-10", "bytes=-0", "bytes=abc"):
        r = v.get(url, headers={"Range": bad})
        assert r.status_code == 416, bad
        assert r.headers["content-range"] == f"bytes */{size}"
    multi = v.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert multi.status_code == 200 and multi.content == data
    assert v.get(f"/api/episodes/{episodes['ok']}/video/nocam").status_code == 404
