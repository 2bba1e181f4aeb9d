// What the Preferences page shows of the preference loop (GET /api/preferences/status):
// each model version's agreement with the answers held out of its training.
import type { Schemas } from "../api/client";

type Version = Schemas["PreferenceVersion"];

export interface AgreementCurve {
  /** Model versions that were measured, ascending (the chart's x). */
  versions: number[];
  /** Held-out agreement of each, in [0, 1]. */
  agreement: number[];
}

/** Versions with a held-out agreement, in version order (those without one are left out). */
export function agreementCurve(versions: Version[]): AgreementCurve {
  const measured = versions
    .filter((v) => typeof v.holdout_agreement === "number" && Number.isFinite(v.holdout_agreement))
    .sort((a, b) => a.version - b.version);
  return { versions: measured.map((v) => v.version), agreement: measured.map((v) => v.holdout_agreement as number) };
}

/** "83% on 12 held-out answers (v3)", or why there is no number yet. */
export function agreementText(versions: Version[]): string {
  if (versions.length === 0) return "no preference model yet";
  const newest = versions.reduce((a, b) => (b.version > a.version ? b : a));
  if (typeof newest.holdout_agreement !== "number") return `v${newest.version}: no held-out answers yet`;
  const n = newest.n_holdout;
  return `${(100 * newest.holdout_agreement).toFixed(0)}% on ${n} held-out answer${n === 1 ? "" : "s"} (v${newest.version})`;
}
