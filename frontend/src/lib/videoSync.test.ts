import { describe, expect, it } from "vitest";
import { frameOf, timeOf, VideoSync } from "./videoSync";

describe("frame and time", () => {
  it("round-trips every frame and clamps to the episode", () => {
    for (let f = 0; f <= 30; f++) expect(frameOf(timeOf(f, 10), 10, 30)).toBe(f);
    expect(frameOf(-1, 10, 30)).toBe(0);
    expect(frameOf(99, 10, 30)).toBe(30);
  });
});

describe("VideoSync", () => {
  it("seeks every video to the middle of the clamped frame and reports it", () => {
    const videos = [document.createElement("video"), document.createElement("video")];
    const frames: number[] = [];
    const sync = new VideoSync(() => [...videos, undefined], 10, 20, (f) => frames.push(f));
    expect(sync.seek(7)).toBe(7);
    expect(videos.map((v) => v.currentTime)).toEqual([0.75, 0.75]);
    expect(sync.seek(99)).toBe(20);
    expect(frames).toEqual([7, 20]);
  });
});
