// The reward models' stored metrics, read by the names robolearn/rewards writes:
// ClassifierReport (classifier.py) and PreferenceReport (preference.py). Metrics are free
// JSON on the API (each kind has its own report), so every read checks the shape.
import type { Schemas } from "../api/client";

type Model = Schemas["RewardModelPublic"];

/** The classifier numbers shown, in order, with how to print them. */
export const CLASSIFIER_FIELDS: { key: string; label: string; digits: number }[] = [
  { key: "accuracy", label: "accuracy", digits: 3 },
  { key: "auroc", label: "AUROC", digits: 3 },
  { key: "precision", label: "precision", digits: 3 },
  { key: "recall", label: "recall", digits: 3 },
  { key: "threshold", label: "threshold", digits: 3 },
  { key: "false_positive_rate", label: "false-positive rate", digits: 3 },
  { key: "n_pos", label: "success frames", digits: 0 },
  { key: "n_neg", label: "failure frames", digits: 0 },
  { key: "n_holdout", label: "held-out frames", digits: 0 },
];

export function formatMetric(metrics: Record<string, unknown>, key: string, digits: number): string {
  const v = metrics[key];
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "—";
}

function numbers(v: unknown): number[] | null {
  return Array.isArray(v) && v.every((x) => typeof x === "number") ? (v as number[]) : null;
}

export interface PrCurve {
  /** Ascending recall (the chart's x) with the precision at each point. */
  recall: number[];
  precision: number[];
  /** Index of the classifier's operating point (its threshold), or null if not on the curve. */
  operating: number | null;
}

/**
 * The held-out precision-recall curve of a classifier (`metrics.pr_curve`, thresholds
 * descending), or null for a model that stored none (trained before curves were stored).
 */
export function prCurve(metrics: Record<string, unknown>): PrCurve | null {
  const c = metrics.pr_curve as Record<string, unknown> | undefined;
  const thresholds = numbers(c?.thresholds);
  const recall = numbers(c?.recall);
  const precision = numbers(c?.precision);
  if (!thresholds || !recall || !precision) return null;
  const n = thresholds.length;
  if (n < 2 || recall.length !== n || precision.length !== n) return null;
  // Descending thresholds give non-decreasing recall: already the ascending x uPlot needs.
  const threshold = metrics.threshold;
  let operating: number | null = null;
  if (typeof threshold === "number") {
    // The lowest stored score the threshold admits predicts exactly what the threshold does.
    for (let i = 0; i < n; i++) if (thresholds[i] >= threshold) operating = i;
  }
  return { recall, precision, operating };
}

export interface PreferencePoint {
  id: number;
  run: number | null;
  labels: number;
  accuracy: number;
}

/** Ready preference models as (answered pairs, agreement with them), fewest labels first. */
export function preferencePoints(models: Model[]): PreferencePoint[] {
  return models
    .filter((m) => m.kind === "preference" && m.status === "ready")
    .map((m) => ({ id: m.id, run: m.run_id, labels: m.metrics.n_labels, accuracy: m.metrics.train_accuracy }))
    .filter((p): p is PreferencePoint => typeof p.labels === "number" && typeof p.accuracy === "number")
    .sort((a, b) => a.labels - b.labels || a.id - b.id);
}
