import { describe, expect, it } from "vitest";
import { wantedQuery, withoutQuery } from "./preferenceClaim";

describe("a preference query opened by link", () => {
  it("reads the query id of #/preferences?query=ID", () => {
    expect(wantedQuery(new URLSearchParams("query=42"))).toBe(42);
    expect(wantedQuery(new URLSearchParams("run=3&query=7"))).toBe(7);
    for (const bad of ["", "query=", "query=0", "query=-3", "query=1.5", "query=abc", "query=1e3",
      "query=1234567890123456"]) {
      expect(wantedQuery(new URLSearchParams(bad)), bad).toBeNull();
    }
  });

  it("drops the id from the hash once the query is answered", () => {
    expect(withoutQuery("#/preferences?query=42")).toBe("#/preferences");
    expect(withoutQuery("#/preferences?run=3&query=42")).toBe("#/preferences?run=3");
    expect(withoutQuery("#/preferences")).toBe("#/preferences");
  });
});
