import { describe, expect, it } from "vitest";
import type { Schemas } from "../api/client";
import { agreementCurve, agreementText } from "./preferenceAgreement";

type Version = Schemas["PreferenceVersion"];

const version = (v: number, agreement: number | null, holdout = 4): Version => ({
  model_id: 10 + v, version: v, created_at: "2026-01-01T00:00:00Z", n_labels: 8, n_holdout: holdout,
  holdout_agreement: agreement, train_accuracy: 0.9,
});

describe("agreementCurve", () => {
  it("orders the measured versions and leaves out those without held-out answers", () => {
    const c = agreementCurve([version(3, 0.75), version(1, null, 0), version(2, 0.5)]);
    expect(c).toEqual({ versions: [2, 3], agreement: [0.5, 0.75] });
  });
});

describe("agreementText", () => {
  it("reads the newest version", () => {
    expect(agreementText([version(1, 0.5), version(2, 0.8333, 12)])).toBe("83% on 12 held-out answers (v2)");
    expect(agreementText([version(1, 1, 1)])).toBe("100% on 1 held-out answer (v1)");
  });

  it("says why there is no number", () => {
    expect(agreementText([])).toBe("no preference model yet");
    expect(agreementText([version(1, null, 0)])).toBe("v1: no held-out answers yet");
  });
});
