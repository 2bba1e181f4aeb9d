// Messages of the live WebSocket (/ws/live, server/live.py): actor telemetry and camera
// frames. Parsing lives here alone so a change of the bridge's framing touches one file.
import type { Schemas } from "../api/client";

/** The actor's telemetry values: the service's `Telemetry` schema (robolearn/actor/
 * telemetry.py, generated into schema.d.ts), partial because an older or starting actor
 * may leave keys out. */
export type TelemetryValues = Partial<Schemas["Telemetry"]>;

export interface Telemetry {
  kind: "telemetry";
  values: TelemetryValues;
}

export interface LiveFrame {
  kind: "live_frame";
  camera: string;
  width: number;
  height: number;
  episode: number;
  step: number;
  jpeg: Blob;
}

export interface LiveStatus {
  kind: "status";
  detail: string;
  ok: boolean;
}

export type LiveMessage = Telemetry | LiveFrame | LiveStatus;

function base64ToBytes(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const dec = new TextDecoder();

/**
 * One WebSocket message -> a LiveMessage, or null if it is not one we show.
 * Text messages are JSON objects with a `type` (telemetry); a binary message is a camera
 * frame: a JSON header, one newline byte, then the JPEG bytes (server/live.py).
 */
export function parseLive(data: string | ArrayBuffer): LiveMessage | null {
  let header: Record<string, unknown>;
  let jpeg: Uint8Array<ArrayBuffer> | null = null;
  try {
    if (typeof data === "string") {
      header = JSON.parse(data);
    } else {
      const bytes = new Uint8Array(data);
      const nl = bytes.indexOf(0x0a);
      if (nl < 0) return null;
      header = JSON.parse(dec.decode(bytes.subarray(0, nl)));
      jpeg = new Uint8Array(data.slice(nl + 1));
    }
  } catch {
    return null;
  }
  const type = header.type ?? header.kind;
  const body = (header.body as Record<string, unknown> | undefined) ?? header;
  if (type === "telemetry") {
    const values = (body.values as TelemetryValues | undefined) ?? {};
    return { kind: "telemetry", values };
  }
  if (type === "frame" || type === "live_frame") {
    if (jpeg === null) {
      const b64 = body.jpeg ?? body.jpeg_b64;
      if (typeof b64 !== "string") return null;
      jpeg = base64ToBytes(b64);
    }
    return {
      kind: "live_frame",
      camera: String(body.camera ?? "camera"),
      width: Number(body.width ?? 0),
      height: Number(body.height ?? 0),
      episode: Number(body.episode ?? -1),
      step: Number(body.step ?? -1),
      jpeg: new Blob([jpeg], { type: "image/jpeg" }),
    };
  }
  if (type === "status" || type === "error") {
    return { kind: "status", detail: String(body.detail ?? ""), ok: type === "status" };
  }
  return null;
}

export function liveUrl(loc: Location = location): string {
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws/live`;
}

/** A number from telemetry, or null. */
export function num(values: TelemetryValues, key: keyof Schemas["Telemetry"] & string): number | null {
  const v = (values as Record<string, unknown>)[key];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

export function fmt(v: number | null, digits = 2, unit = ""): string {
  return v === null ? "—" : `${v.toFixed(digits)}${unit}`;
}
