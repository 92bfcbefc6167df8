// User values echoed in error messages are cut short: a 100,000-digit --seed must not come back
// as a 100 KB error line. And they are escaped: what a file or a flag holds must not reach the
// terminal as control characters (ECMA-48 C0 and C1 controls start escape sequences that move the
// cursor, clear the screen or set the window title) or as invisible reordering marks.
const MAX_ECHO = 64;

/**
 * C0 controls, DEL, C1 controls (U+0080–U+009F: ECMA-48 §5.3 gives e.g. CSI both as ESC [ and as
 * the single U+009B), bidirectional marks, embeddings, overrides and isolates (Unicode UAX #9), and
 * the zero-width no-break space / byte-order mark.
 */
// eslint-disable-next-line no-control-regex
const UNSAFE_FOR_TERMINAL = /[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** `text` with every character a terminal would act on or hide written as \uXXXX (newlines too). */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE_FOR_TERMINAL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `value` in double quotes, escaped, and shortened to its first and last characters when long. */
export function quoteForError(value: string): string {
  // JSON.stringify escapes the C0 controls, the quote and the backslash; the rest is ours.
  if (value.length <= MAX_ECHO) return escapeControls(JSON.stringify(value));
  const half = MAX_ECHO / 2 - 2;
  return `${escapeControls(JSON.stringify(value.slice(0, half)))}…${escapeControls(JSON.stringify(value.slice(-half)))} (${value.length} characters)`;
}

/** The first bytes of `bytes` in double quotes: printable ASCII as itself, every other byte as \xNN. */
export function quoteBytesForError(bytes: Uint8Array, max = 24): string {
  let text = '';
  for (const b of bytes.subarray(0, max)) {
    if (b === 0x22 || b === 0x5c) text += `\\${String.fromCharCode(b)}`;
    else if (b >= 0x20 && b < 0x7f) text += String.fromCharCode(b);
    else text += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return `"${text}"${bytes.length > max ? '…' : ''}`;
}
