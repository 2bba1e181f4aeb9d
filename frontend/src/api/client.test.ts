import { describe, expect, it } from "vitest";
import { detailOf } from "./client";

describe("detailOf", () => {
  it("names the field of a field error and not of a model-level one", () => {
    const error = {
      detail: [
        { loc: ["body", "squares_x"], msg: "Input should be greater than or equal to 3" },
        { loc: ["body"], msg: "Value error, marker_length_m 0.04 must be smaller than square_length_m 0.03" },
      ],
    };
    expect(detailOf(error, 422)).toBe(
      "squares_x: Input should be greater than or equal to 3; " +
        "Value error, marker_length_m 0.04 must be smaller than square_length_m 0.03",
    );
  });

  it("passes a plain detail through", () => {
    expect(detailOf({ detail: "camera 'x': not in this run's config" }, 404)).toBe(
      "camera 'x': not in this run's config",
    );
  });
});
