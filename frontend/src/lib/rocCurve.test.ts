import { describe, expect, it } from "vitest";
import { rocCurve } from "./rocCurve";

describe("rocCurve", () => {
  it("reads the stored curve and marks the threshold's operating point", () => {
    const c = rocCurve({
      threshold: 0.6,
      target_fpr: 0.05,
      roc_curve: { thresholds: [1.0, 0.9, 0.7, 0.5, 0.1], fpr: [0, 0, 0, 0.5, 1], tpr: [0, 0.5, 1, 1, 1] },
    });
    expect(c).not.toBeNull();
    expect(c?.operating).toBe(2);
    expect(c?.targetFpr).toBe(0.05);
    expect(c?.fpr).toEqual([0, 0, 0, 0.5, 1]);
  });

  it("is null for a model without a curve or with a malformed one", () => {
    expect(rocCurve({ threshold: 0.5 })).toBeNull();
    expect(rocCurve({ roc_curve: null })).toBeNull();
    expect(rocCurve({ roc_curve: { thresholds: [1, 0], fpr: [0], tpr: [0, 1] } })).toBeNull();
  });
});
