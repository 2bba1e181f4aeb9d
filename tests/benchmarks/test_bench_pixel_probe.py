"""bench_pixel_probe --quick: every variant's pooling trains on real encoded sim frames and is
scored on unseen scenes; nothing is appended to the results file."""

from __future__ import annotations

import argparse
import math

import pytest

from benchmarks import bench_pixel_probe
from benchmarks.results import RESULTS_FILE


def test_quick_probe_scores_every_variant_on_unseen_scenes() -> None:
    before = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else ""
    record = bench_pixel_probe.main(
        ["--quick", "--variants", "embeddings:16:front", "keypoints:8:front,side"])
    assert (RESULTS_FILE.read_text() if RESULTS_FILE.exists() else "") == before
    variants = record["metrics"]["variants"]
    assert sorted(variants) == ["embeddings:16:front", "keypoints:8:front,side"]
    for scores in variants.values():
        assert math.isfinite(scores["mean_error_cm"]) and scores["mean_error_cm"] > 0
        assert 0.0 <= scores["within_3cm"] <= 1.0


@pytest.mark.parametrize("text", ["keypoints:4:front", "mean:8:front", "keypoints:8:top",
                                  "keypoints:8"])
def test_a_bad_variant_says_what_is_wanted(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="POOLING:STRIDE:CAMERAS"):
        bench_pixel_probe.parse_variant(text)
