// User values echoed in error messages are cut short: a 100,000-digit --seed must not come back
// as a 100 KB error line.
const MAX_ECHO = 64;

/** `value` in double quotes, shortened to its first and last characters when long. */
export function quoteForError(value: string): string {
  if (value.length <= MAX_ECHO) return JSON.stringify(value);
  const half = MAX_ECHO / 2 - 2;
  return `${JSON.stringify(value.slice(0, half))}…${JSON.stringify(value.slice(-half))} (${value.length} characters)`;
}
