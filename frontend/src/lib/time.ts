// The service's timestamps are UTC; SQLite hands them back without an offset
// ("2026-05-01T12:00:00"), which `new Date()` would read as local time. Every page reads
// them through here.

const HAS_OFFSET = /(?:[zZ]|[+-]\d\d:?\d\d)$/;

/** Milliseconds since the epoch of an API timestamp; a naive one is UTC. NaN if unreadable. */
export function parseUtc(stamp: string): number {
  return Date.parse(HAS_OFFSET.test(stamp) ? stamp : `${stamp}Z`);
}

/** An API timestamp as local date and time for people ("—" when missing or unreadable). */
export function formatLocal(stamp: string | null | undefined, locale?: string, timeZone?: string): string {
  if (!stamp) return "—";
  const ms = parseUtc(stamp);
  if (!Number.isFinite(ms)) return "—";
  return new Date(ms).toLocaleString(locale, timeZone ? { timeZone } : undefined);
}
