// The Preferences page opened on one query (`#/preferences?query=ID`, as the Fleet page's
// queue links it): which query the link asks for, and the link without it once answered.

/** The preference query id a link asks for, or null (absent or not a positive integer). */
export function wantedQuery(params: URLSearchParams): number | null {
  const raw = params.get("query");
  return raw !== null && /^[1-9]\d{0,14}$/.test(raw) ? Number(raw) : null;
}

/** The page's hash without the query id, so a reload after answering asks for the next pair
 * instead of the answered one. */
export function withoutQuery(hash: string): string {
  const [path, search = ""] = hash.split("?");
  const params = new URLSearchParams(search);
  params.delete("query");
  const rest = params.toString();
  return rest ? `${path}?${rest}` : path;
}
