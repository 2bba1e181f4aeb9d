import { cleanup, fireEvent, render, screen, within } from "@testing-library/svelte";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Schemas } from "../api/client";
import CalibrationCard from "./CalibrationCard.svelte";
import CalibrationResult from "./CalibrationResult.svelte";

afterEach(cleanup);

type Cal = Schemas["CalibrationPublic"];

const base = { created_at: "2026-05-01T10:00:00Z", file: null, problem: null, data: {}, intrinsics: null, hand_eye: null, workspace: null };

const intrinsics = (id: number, version: number, fx: number): Cal => ({
  ...base,
  id,
  version,
  kind: "intrinsics",
  device: "front",
  file: `calibrations/front/intrinsics_v00${version}.json`,
  intrinsics: {
    image_width: 640,
    image_height: 480,
    camera_matrix: [[fx, 0, 320], [0, fx, 240], [0, 0, 1]],
    dist_coeffs: [0.01, -0.02, 0, 0, 0],
    rms_px: 0.214,
    focal_std_px: 0.4,
    per_view_error_px: [0.2, null, 0.4],
    rejected: { "1": "7 corners (need 8)" },
    coverage: 0.62,
  },
});

const T = [[1, 0, 0, 0.01], [0, 1, 0, -0.02], [0, 0, 1, 0.05], [0, 0, 0, 1]];

describe("CalibrationResult", () => {
  it("shows intrinsics with each view's reprojection error and why a view was rejected", () => {
    render(CalibrationResult, { props: { calibration: intrinsics(1, 1, 512.5) } });
    const summary = screen.getByTestId("intrinsics");
    expect(summary.textContent).toContain("640×480");
    expect(summary.textContent).toContain("fx 512.5");
    expect(screen.getByTestId("rms").textContent).toBe("0.214 px");
    const rows = within(screen.getByTestId("per-view")).getAllByRole("row").slice(1) as HTMLTableRowElement[];
    expect(rows.map((r) => [...r.cells].slice(0, 2).map((c) => c.textContent))).toEqual([
      ["0", "0.200"],
      ["1", "not used: 7 corners (need 8)"],
      ["2", "0.400"],
    ]);
    // Bars scale to the worst view, but never below 1 px: sub-pixel views look small.
    const bars = rows.map((r) => r.querySelector<HTMLElement>(".bar")?.style.width ?? null);
    expect(bars).toEqual(["20%", null, "40%"]);
  });

  it("lists hand-eye residuals per method, smallest first, the used one marked", () => {
    const cal: Cal = {
      ...base, id: 5, version: 1, kind: "hand_eye", device: "wrist",
      hand_eye: {
        mode: "eye_in_hand", method: "park", transform: T, residual_mm: 0.6, residual_deg: 0.08, views: 12,
        methods: {
          tsai: { transform: T, residual_mm: 0.8, residual_deg: 0.1 },
          park: { transform: T, residual_mm: 0.6, residual_deg: 0.08 },
          daniilidis: { transform: T, residual_mm: 1.5, residual_deg: 0.3 },
        },
      },
    };
    render(CalibrationResult, { props: { calibration: cal } });
    const rows = within(screen.getByTestId("methods")).getAllByRole("row").slice(1) as HTMLTableRowElement[];
    expect(rows.map((r) => r.cells[0].textContent)).toEqual(["park ✓", "tsai", "daniilidis"]);
    expect(screen.getByTestId("hand-eye").textContent).toContain("10.0, -20.0, 50.0 mm");
  });

  it("shows the workspace box per axis", () => {
    const cal: Cal = {
      ...base, id: 6, version: 1, kind: "workspace", device: "panda",
      workspace: { workspace_min_m: [0.31, -0.19, 0.01], workspace_max_m: [0.69, 0.19, 0.39], points_m: [[0.3, -0.2, 0], [0.7, 0.2, 0.4]], margin_m: 0.01 },
    };
    render(CalibrationResult, { props: { calibration: cal } });
    const table = screen.getByTestId("workspace");
    expect(table.querySelector("caption")?.textContent).toContain("2 positions, 10.0 mm margin");
    const rows = within(table).getAllByRole("row").slice(1) as HTMLTableRowElement[];
    expect(rows.map((r) => r.cells[3].textContent)).toEqual(["380.0", "380.0", "380.0"]);
  });

  it("shows why stored data cannot be read, and the data itself", () => {
    const cal: Cal = { ...base, id: 7, version: 2, kind: "workspace", device: "panda", problem: "stored data does not read as workspace", data: { note: "by hand" } };
    render(CalibrationResult, { props: { calibration: cal } });
    expect(screen.getByRole("alert").textContent).toContain("does not read as workspace");
    expect(document.body.textContent).toContain('"note": "by hand"');
  });
});

describe("CalibrationCard", () => {
  const group: Schemas["CalibrationDevice"] = {
    kind: "intrinsics",
    device: "front",
    latest: intrinsics(2, 2, 510),
    versions: [
      { id: 2, version: 2, created_at: "2026-05-02T10:00:00Z" },
      { id: 1, version: 1, created_at: "2026-05-01T10:00:00Z" },
    ],
  };

  it("shows the newest version, fetches an older one on request and goes back", async () => {
    const fetchVersion = vi.fn(async (id: number) => intrinsics(id, 1, 500));
    render(CalibrationCard, { props: { group, fetchVersion } });
    expect(screen.getByTestId("intrinsics").textContent).toContain("fx 510.0");
    expect(screen.queryByTestId("old-version")).toBeNull();
    const select = screen.getByLabelText("intrinsics front version") as HTMLSelectElement;
    expect([...select.options].map((o) => o.textContent)).toEqual([
      expect.stringMatching(/^v2 \(in use\)/),
      expect.stringMatching(/^v1 ·/),
    ]);

    await fireEvent.change(select, { target: { value: "1" } });
    expect(fetchVersion).toHaveBeenCalledWith(1);
    await screen.findByTestId("old-version");
    expect(screen.getByTestId("intrinsics").textContent).toContain("fx 500.0");
    expect(document.body.textContent).toContain("calibrations/front/intrinsics_v001.json");

    await fireEvent.change(select, { target: { value: "2" } });
    expect(fetchVersion).toHaveBeenCalledTimes(1);
    expect(screen.queryByTestId("old-version")).toBeNull();
    expect(screen.getByTestId("intrinsics").textContent).toContain("fx 510.0");
  });

  it("says so when an older version cannot be fetched", async () => {
    const fetchVersion = vi.fn(async () => {
      throw new Error("calibration 1: no such calibration");
    });
    render(CalibrationCard, { props: { group, fetchVersion } });
    await fireEvent.change(screen.getByLabelText("intrinsics front version"), { target: { value: "1" } });
    expect((await screen.findByTestId("error")).textContent).toContain("no such calibration");
  });
});
