"""The classifier's stored ROC curve agrees with its metrics at every threshold."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.rewards.classifier import binary_metrics, roc_curve


def test_roc_curve_matches_metrics_at_each_threshold() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(400) < 0.3
    probs = np.round(np.where(labels, rng.normal(0.7, 0.15, 400), rng.normal(0.4, 0.15, 400)),
                     2)
    curve = roc_curve(probs, labels, max_points=1000)
    assert (curve.fpr[0], curve.tpr[0]) == (0.0, 0.0)
    assert (curve.fpr[-1], curve.tpr[-1]) == (1.0, 1.0)
    assert curve.fpr == sorted(curve.fpr) and curve.tpr == sorted(curve.tpr)
    assert curve.thresholds[0] > probs.max()
    for t, fpr, tpr in zip(curve.thresholds, curve.fpr, curve.tpr, strict=True):
        m = binary_metrics(probs, labels, t)
        assert (fpr, tpr) == pytest.approx((m["false_positive_rate"], m["recall"]))
    # Thinned, the operating point of a threshold between two scores survives.
    scores = sorted(set(probs.tolist()), reverse=True)
    middle = (scores[10] + scores[11]) / 2
    thin = roc_curve(probs, labels, threshold=middle, max_points=5)
    i = thin.thresholds.index(scores[10])
    m = binary_metrics(probs, labels, middle)
    assert (thin.fpr[i], thin.tpr[i]) == pytest.approx((m["false_positive_rate"], m["recall"]))
