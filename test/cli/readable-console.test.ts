// The default console of `minivisor boot` is readable: the guest's `@mv` protocol lines in words,
// byte counts in binary units, addresses in hex, with a legend first; `--raw-console` prints the
// protocol as the guest wrote it (issue 13).
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { CONSOLE_LEGEND, readableConsoleLine } from '../../src/cli/readable-console.js';
import { capture } from '../helpers/captured-io.js';

describe('readable console', () => {
  it('turns protocol lines into words and leaves other lines alone', () => {
    expect(readableConsoleLine('@mv stage kernel')).toBe('== stage kernel ==');
    expect(readableConsoleLine('@mv stat bitmap_gpa 3110957056')).toMatch(/^ {3}bitmap gpa +0xb96d7000$/);
    expect(readableConsoleLine('@mv stat firmware_accepted_bytes 65011712')).toMatch(/firmware accepted bytes +62 MiB \(65011712 bytes\)$/);
    expect(readableConsoleLine('@mv stat bitmap_bytes 256')).toMatch(/bitmap bytes +256 B$/);
    expect(readableConsoleLine('@mv stat zero_checked_pages 3076')).toMatch(/zero checked pages +3,076$/);
    expect(readableConsoleLine('@mv stat accept_calls_2m 38')).toMatch(/accept calls 2m +38 +\(completed calls/);
    expect(readableConsoleLine('@mv done')).toBe('guest: done');
    expect(readableConsoleLine('@mv fatal out_of_memory')).toBe('guest: FATAL: out_of_memory');
    expect(readableConsoleLine('@mv bogus')).toContain('not a valid @mv line');
    expect(readableConsoleLine('hello from the guest')).toBe('hello from the guest');
  });

  it('is the default for boot; --raw-console prints the protocol lines', async () => {
    const args = ['boot', '--memory', '128M', '--workload', '16M'];
    const readable = capture();
    expect(await main(args, readable)).toBe(0);
    expect(readable.stdout[0]).toBe(CONSOLE_LEGEND);
    expect(readable.stdout.filter((l) => l.startsWith('@mv '))).toEqual([]);
    expect(readable.stdout).toContain('== stage decompressor ==');
    expect(readable.stdout.some((l) => /^ {3}bitmap gpa +0x[0-9a-f]+$/.test(l))).toBe(true);
    const raw = capture();
    expect(await main([...args, '--raw-console'], raw)).toBe(0);
    expect(raw.stdout[0]).toBe('@mv stage firmware');
    expect(raw.stdout).toContain('@mv done');
    // The same console, line for line, up to the summary.
    expect(readable.stdout.indexOf('guest: done') - 1).toBe(raw.stdout.indexOf('@mv done'));
  });
});
