import { describe, expect, it } from "vitest";
import { formatLocal, parseUtc } from "./time";

describe("parseUtc", () => {
  it("reads a naive API timestamp as UTC, not local time", () => {
    expect(parseUtc("2026-05-01T12:00:00")).toBe(Date.UTC(2026, 4, 1, 12, 0, 0));
    expect(parseUtc("2026-05-01T12:00:00.250000")).toBe(Date.UTC(2026, 4, 1, 12, 0, 0, 250));
  });

  it("honours an explicit offset or Z", () => {
    expect(parseUtc("2026-05-01T12:00:00Z")).toBe(Date.UTC(2026, 4, 1, 12));
    expect(parseUtc("2026-05-01T14:00:00+02:00")).toBe(Date.UTC(2026, 4, 1, 12));
    expect(parseUtc("2026-05-01T07:00:00-0500")).toBe(Date.UTC(2026, 4, 1, 12));
  });

  it("is NaN for text that is not a time", () => {
    expect(parseUtc("yesterday")).toBeNaN();
  });
});

describe("formatLocal", () => {
  it("shows the UTC instant in the viewer's time zone", () => {
    expect(formatLocal("2026-05-01T12:00:00", "en-GB", "Asia/Tokyo")).toBe("01/05/2026, 21:00:00");
    expect(formatLocal("2026-05-01T12:00:00", "en-GB", "UTC")).toBe("01/05/2026, 12:00:00");
  });

  it("shows a dash for a missing or unreadable time", () => {
    expect(formatLocal(null)).toBe("—");
    expect(formatLocal("not a time")).toBe("—");
  });
});
