import { describe, expect, it } from "vitest";
import type { Schemas } from "../api/client";
import { formatMetric, preferencePoints, prCurve } from "./rewardMetrics";

type Model = Schemas["RewardModelPublic"];

const model = (id: number, kind: string, status: string, metrics: Record<string, unknown>): Model => ({
  id, run_id: 1, kind, version: id, status, metrics, error: null, created_at: "2026-01-01T00:00:00Z",
});

describe("prCurve", () => {
  // As ClassifierReport stores it: thresholds descending, recall non-decreasing.
  const metrics = {
    threshold: 0.55,
    precision: 0.8,
    recall: 0.5,
    pr_curve: { thresholds: [0.9, 0.7, 0.6, 0.5, 0.2], precision: [1, 1, 0.8, 0.6, 0.4], recall: [0.25, 0.5, 0.5, 0.75, 1] },
  };

  it("reads the stored curve and finds the threshold's operating point on it", () => {
    const c = prCurve(metrics)!;
    expect(c.recall).toEqual([0.25, 0.5, 0.5, 0.75, 1]);
    expect(c.precision).toEqual([1, 1, 0.8, 0.6, 0.4]);
    // 0.6 is the lowest stored score at or above 0.55: the report's precision and recall.
    expect(c.operating).toBe(2);
    expect([c.precision[c.operating!], c.recall[c.operating!]]).toEqual([metrics.precision, metrics.recall]);
  });

  it("is null for a model without a curve or with a malformed one", () => {
    expect(prCurve({ threshold: 0.5 })).toBeNull();
    expect(prCurve({ pr_curve: { thresholds: [0.9, 0.1], precision: [1], recall: [0, 1] } })).toBeNull();
    expect(prCurve({ pr_curve: { thresholds: [0.9, "x"], precision: [1, 1], recall: [0, 1] } })).toBeNull();
  });

  it("has no operating point when the threshold admits no stored score", () => {
    expect(prCurve({ ...metrics, threshold: 0.95 })!.operating).toBeNull();
  });
});

describe("preferencePoints", () => {
  it("plots ready preference models by the names PreferenceReport stores", () => {
    const points = preferencePoints([
      model(3, "preference", "ready", { n_labels: 40, train_accuracy: 0.9 }),
      model(2, "preference", "failed", {}),
      model(1, "preference", "ready", { n_labels: 10, train_accuracy: 0.7 }),
      model(4, "classifier", "ready", { n_labels: 5, train_accuracy: 0.1 }),
      model(5, "preference", "ready", { accuracy: 0.5 }),
    ]);
    expect(points.map((p) => [p.labels, p.accuracy])).toEqual([[10, 0.7], [40, 0.9]]);
  });
});

describe("formatMetric", () => {
  it("prints numbers and a dash for missing or non-finite values", () => {
    expect(formatMetric({ a: 0.12345, n: 12 }, "a", 3)).toBe("0.123");
    expect(formatMetric({ n: 12 }, "n", 0)).toBe("12");
    expect(formatMetric({ b: NaN }, "b", 3)).toBe("—");
    expect(formatMetric({}, "c", 3)).toBe("—");
  });
});
