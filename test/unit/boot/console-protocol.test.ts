import { describe, expect, it } from 'vitest';
import { ConsoleProtocolParser, parseConsoleLine, parseConsoleOutput } from '../../../src/boot/console-protocol.js';

const GOOD = [
  '@mv stage firmware',
  '@mv stat firmware_accepted_bytes 65011712',
  'some ordinary text',
  '@mv stage decompressor',
  '@mv stage kernel',
  '@mv stat accept_calls_2m 38',
  '@mv stat accept_calls_4k 0',
  '@mv done',
  '',
].join('\n');

describe('console protocol', () => {
  it('parses a complete boot into a typed report', () => {
    const r = parseConsoleOutput(GOOD);
    expect(r.stages).toEqual(['firmware', 'decompressor', 'kernel']);
    expect(r.stats).toEqual({ firmware_accepted_bytes: 65011712n, accept_calls_2m: 38n, accept_calls_4k: 0n });
    expect(r.done).toBe(true);
    expect(r.fatal).toBeUndefined();
    expect(r.errors).toEqual([]);
    expect(r.text).toEqual(['some ordinary text']);
  });

  it('accepts bytes split anywhere, CRLF line ends and a final line without newline', () => {
    const p = new ConsoleProtocolParser();
    const bytes = Buffer.from('@mv stage firm' + 'ware\r\n@mv stat x 1\n@mv fatal tdx_accept_failed gpa=0x200000', 'latin1');
    for (const b of bytes) p.push(Uint8Array.of(b));
    const r = p.end();
    expect(r.stages).toEqual(['firmware']);
    expect(r.stats.x).toBe(1n);
    expect(r.fatal).toBe('tdx_accept_failed gpa=0x200000');
  });

  it.each([
    ['@mv stage bios', /unknown stage/],
    ['@mv stat Bad-Name 1', /bad stat name/],
    ['@mv stat x -1', /not a decimal/],
    ['@mv stat x 0x10', /not a decimal/],
    ['@mv stat x 007', /not a decimal/],  // one spelling per value: the guest's formatter writes no leading zeros
    ['@mv stat x 18446744073709551616', /64 bits/],
    ['@mv stat x', /exactly a name and a value/],
    ['@mv stat x 1 2', /exactly a name and a value/],
    ['@mv stat x  1', /exactly a name and a value/],
    ['@mv stat x 1 ', /exactly a name and a value/],
    ['@mv stat  1', /bad stat name ""/],
    ['@mv stat x ', /stat value "" is not a decimal/],
    ['@mv  stage firmware', /unknown verb ""/],
    ['@mv done now', /no arguments/],
    ['@mv fatal', /unknown verb|needs a reason/],
    ['@mv reboot', /unknown verb/],
  ])('flags %j as malformed', (line, why) => {
    const parsed = parseConsoleLine(line);
    expect(parsed.kind).toBe('malformed');
    if (parsed.kind === 'malformed') expect(parsed.why).toMatch(why);
  });

  it('takes a line through pushLine as push takes the line and its newline, whatever is pending or in the line', () => {
    const lines = ['@mv stage firmware', '@mv stat a 1\r', 'text', '', '@mv stat b 2\n@mv stage kernel', '@mv done', '@mv stat c 3'];
    for (const pending of ['', '@mv stat pen']) {
      const byLine = new ConsoleProtocolParser();
      const byPush = new ConsoleProtocolParser();
      byLine.push(pending);
      byPush.push(pending);
      for (const line of lines) {
        byLine.pushLine(line);
        byPush.push(`${line}\n`);
        expect(byLine.report).toEqual(byPush.report);
      }
      expect(byLine.end()).toEqual(byPush.end());
    }
  });

  it('keeps the largest u64 exactly', () => {
    expect(parseConsoleLine('@mv stat max 18446744073709551615')).toEqual({ kind: 'stat', name: 'max', value: (1n << 64n) - 1n });
  });

  it('records protocol violations: stages out of order and lines after done', () => {
    const r = parseConsoleOutput('@mv stage kernel\n@mv stage firmware\n@mv done\n@mv stat late 1\n');
    expect(r.errors).toHaveLength(2);
    expect(r.errors[0]).toMatch(/out of order/);
    expect(r.errors[1]).toMatch(/after done/);
    expect(r.stats.late).toBeUndefined();
  });

  it('takes a fatal reason without the spaces around it', () => {
    expect(parseConsoleLine('@mv fatal  kernel_crc_mismatch 12  ')).toEqual({ kind: 'fatal', reason: 'kernel_crc_mismatch 12' });
  });

  it('reads console bytes as Latin-1, one character per byte, whatever they are', () => {
    const p = new ConsoleProtocolParser();
    p.push(Uint8Array.of(0x68, 0xe9, 0xff, 0x0a));
    expect(p.end().text).toEqual(['h\u00e9\u00ff']);
  });

  it('records a protocol line after fatal as a violation and ignores it', () => {
    const r = parseConsoleOutput('@mv fatal out of memory\n@mv stat late 1\n@mv done\n');
    expect(r.fatal).toBe('out of memory');
    expect(r.stats.late).toBeUndefined();
    expect(r.done).toBe(false);
    expect(r.errors).toEqual(['protocol line after fatal: "@mv stat late 1"', 'protocol line after fatal: "@mv done"']);
  });

  it('flags a stage announced twice, and a stage before the last one announced', () => {
    expect(parseConsoleOutput('@mv stage firmware\n@mv stage firmware\n').errors).toEqual(['stage firmware out of order after firmware']);
    const r = parseConsoleOutput('@mv stage firmware\n@mv stage decompressor\n@mv stage decompressor\n');
    expect(r.errors).toEqual(['stage decompressor out of order after firmware,decompressor']);
  });

  it('parses a trailing line once, however often end() is called', () => {
    const p = new ConsoleProtocolParser();
    p.push('tail');
    p.end();
    expect(p.end().text).toEqual(['tail']);
  });

  it('saves copies: a later fatal, error or line does not reach a saved state, and a saved fatal comes back', () => {
    const p = new ConsoleProtocolParser();
    p.push('@mv fatal first\n');
    const atFatal = p.saveState();
    p.push('@mv stat late 1\n');
    expect(atFatal.report.errors).toEqual([]);
    const fresh = new ConsoleProtocolParser();
    fresh.loadState(atFatal);
    expect(fresh.report.fatal).toBe('first');
    expect(fresh.saveState().report.fatal).toBe('first');
  });

  it('a state with a trailing partial line loads again after end() parsed that line', () => {
    const p = new ConsoleProtocolParser();
    p.push('@mv stage firmware\npartial');
    const saved = p.saveState();
    const copy = structuredClone(saved);
    p.loadState(saved);
    p.end(); // parses "partial" from the loaded state
    expect(p.report.text).toEqual(['partial']);
    p.loadState(saved);
    expect(p.saveState()).toEqual(copy);
  });

  it('treats lines that merely mention @mv as text', () => {
    expect(parseConsoleLine('x @mv done')).toEqual({ kind: 'text', line: 'x @mv done' });
    expect(parseConsoleLine('@mvdone').kind).toBe('text');
  });

  it('loads the same state again and again, whether or not output changed the report in between', () => {
    const p = new ConsoleProtocolParser();
    p.push('@mv stage firmware\nhello\npart');
    const saved = p.saveState();
    const copy = structuredClone(saved);
    p.loadState(saved);
    p.loadState(saved); // nothing changed since: the same state
    expect(p.report).toEqual(copy.report);
    p.push('ial\n@mv stat accepted_bytes 4096\n@mv fatal out of memory\n');
    expect(p.report.fatal).toBe('out of memory');
    expect(saved).toEqual(copy);
    p.loadState(saved);
    expect(p.report).toEqual(copy.report);
    expect(p.saveState()).toEqual(copy);
    // A trailing line parsed by end() is a change too.
    p.push('ial\n@mv done');
    p.end();
    expect(p.report.done).toBe(true);
    p.loadState(saved);
    expect(p.saveState()).toEqual(copy);
    expect(saved).toEqual(copy);
  });

  it('copies stats in their order, and a stat named __proto__ neither becomes one nor changes the prototype', () => {
    const p = new ConsoleProtocolParser();
    p.push('@mv stat b 2\n@mv stat __proto__ 7\n@mv stat a 1\n');
    const saved = p.saveState();
    p.push('@mv stat c 3\n');
    p.loadState(saved);
    p.push('@mv stat d 4\n');
    for (const r of [saved.report, p.report]) {
      expect(Object.getPrototypeOf(r.stats)).toBe(Object.prototype);
      expect(Object.hasOwn(r.stats, '__proto__')).toBe(false);
    }
    expect(Object.entries(saved.report.stats)).toEqual([['b', 2n], ['a', 1n]]);
    expect(Object.entries(p.report.stats)).toEqual([['b', 2n], ['a', 1n], ['d', 4n]]);
  });
});
