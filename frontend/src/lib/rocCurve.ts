// The held-out ROC curve a classifier stores (`metrics.roc_curve`, written by
// robolearn/rewards/classifier.py roc_curve) with its operating point: the threshold chosen
// for the target false-positive rate. Metrics are free JSON on the API, so the shape is
// checked here.

export interface RocCurve {
  /** Non-decreasing false-positive rate (the chart's x) with the true-positive rate. */
  fpr: number[];
  tpr: number[];
  /** Index of the classifier's threshold on the curve, or null if it is not on it. */
  operating: number | null;
  /** The false-positive rate the threshold was chosen for, when stored. */
  targetFpr: number | null;
}

function numbers(v: unknown): number[] | null {
  return Array.isArray(v) && v.every((x) => typeof x === "number") ? (v as number[]) : null;
}

/** The stored ROC curve, or null for a model that stored none (trained before they were). */
export function rocCurve(metrics: Record<string, unknown>): RocCurve | null {
  const c = metrics.roc_curve as Record<string, unknown> | undefined | null;
  const thresholds = numbers(c?.thresholds);
  const fpr = numbers(c?.fpr);
  const tpr = numbers(c?.tpr);
  if (!thresholds || !fpr || !tpr) return null;
  const n = thresholds.length;
  if (n < 2 || fpr.length !== n || tpr.length !== n) return null;
  const threshold = metrics.threshold;
  let operating: number | null = null;
  if (typeof threshold === "number") {
    // Thresholds descend: the last one the classifier's threshold admits is its operating point.
    for (let i = 0; i < n; i++) if (thresholds[i] >= threshold) operating = i;
  }
  const target = metrics.target_fpr;
  return { fpr, tpr, operating, targetFpr: typeof target === "number" ? target : null };
}
