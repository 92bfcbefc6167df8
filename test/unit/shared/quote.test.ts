// Values echoed in error messages reach a terminal: no control character or invisible reordering
// mark may pass through raw (src/shared/quote.ts).
import { describe, expect, it } from 'vitest';
import { escapeControls, quoteBytesForError, quoteForError } from '../../../src/shared/quote.js';

describe('quoteForError and escapeControls', () => {
  it('escapes C0, DEL, C1 and bidi controls, and keeps other text (accents, CJK) as it is', () => {
    expect(quoteForError('a\x1b[2Jb')).toBe('"a\\u001b[2Jb"');
    expect(quoteForError('del\x7f csi\u009b31m')).toBe('"del\\u007f csi\\u009b31m"');
    expect(quoteForError('evil\u202egnp.exe')).toBe('"evil\\u202egnp.exe"');
    expect(quoteForError('café 漢字')).toBe('"café 漢字"');
    expect(escapeControls('line\nnext\t\ufeff')).toBe('line\\u000anext\\u0009\\ufeff');
  });

  it('keeps a value of 64 characters whole, and shortens one of 65 to its first and last 30', () => {
    const whole = 'a'.repeat(64);
    expect(quoteForError(whole)).toBe(`"${whole}"`);
    const long = `${'a'.repeat(30)}b${'c'.repeat(34)}`;
    expect(quoteForError(long)).toBe(`"${'a'.repeat(30)}"…"${'c'.repeat(30)}" (65 characters)`);
  });

  it('escapes both ends of a long value', () => {
    const q = quoteForError(`\u009b${'x'.repeat(100)}\u0007`);
    expect(q).toMatch(/^"\\u009bx+"…"x+\\u0007" \(102 characters\)$/);
  });

  it('quoteBytesForError shows printable ASCII and \\xNN for the rest, at most `max` bytes', () => {
    expect(quoteBytesForError(Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, 0x00, 0x22, 0x5c, 0xe9]))).toBe('"\\x7fELF\\x00\\"\\\\\\xe9"');
    expect(quoteBytesForError(new Uint8Array(30).fill(0x41), 4)).toBe('"AAAA"…');
    expect(quoteBytesForError(new Uint8Array(4).fill(0x41), 4)).toBe('"AAAA"');  // nothing left out: no ellipsis
  });
});
