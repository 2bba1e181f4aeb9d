// Shared keyboard helpers: which events belong to the page's shortcuts.

/** True when the key went to a text field (typing there must never trigger a shortcut). */
export function typingInField(event: KeyboardEvent): boolean {
  const target = event.target as HTMLElement | null;
  if (!target || typeof target.closest !== "function") return false;
  return target.closest("input, textarea, select, [contenteditable=''], [contenteditable=true]") !== null;
}

/** True when a modifier is held: browser and OS shortcuts keep their meaning. */
export function hasModifier(event: KeyboardEvent): boolean {
  return event.ctrlKey || event.metaKey || event.altKey;
}
