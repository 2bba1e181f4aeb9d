import { describe, expect, it } from "vitest";
import { parseLive } from "./liveMessages";

describe("live messages", () => {
  it("reads telemetry text messages", () => {
    const msg = parseLive(JSON.stringify({ type: "telemetry", sent_ns: 1, values: { reward: 0.5 } }));
    expect(msg).toEqual({ kind: "telemetry", values: { reward: 0.5 } });
  });

  it("reads a binary frame: JSON header, newline, JPEG bytes", async () => {
    const header = new TextEncoder().encode(
      JSON.stringify({ type: "frame", camera: "wrist", width: 64, height: 48, episode: 2, step: 7 }) + "\n",
    );
    const jpeg = new Uint8Array([0xff, 0xd8, 0x0a, 0xff, 0xd9]); // a newline inside the JPEG too
    const buf = new Uint8Array(header.length + jpeg.length);
    buf.set(header);
    buf.set(jpeg, header.length);
    const msg = parseLive(buf.buffer);
    expect(msg?.kind).toBe("live_frame");
    if (msg?.kind !== "live_frame") return;
    expect([msg.camera, msg.width, msg.height, msg.episode, msg.step]).toEqual(["wrist", 64, 48, 2, 7]);
    expect(new Uint8Array(await msg.jpeg.arrayBuffer())).toEqual(jpeg);
  });

  it("ignores garbage and unknown types", () => {
    expect(parseLive("not json")).toBeNull();
    expect(parseLive(JSON.stringify({ type: "other" }))).toBeNull();
    expect(parseLive(new Uint8Array([1, 2, 3]).buffer)).toBeNull();
  });
});
