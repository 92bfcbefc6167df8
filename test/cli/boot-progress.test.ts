// The progress line of a long boot: only on a terminal, only after the first second, with the
// stage, accepted bytes, rate and (eager kernel) an ETA; erased before other output (issue 13).
import { describe, expect, it } from 'vitest';
import { BootProgress } from '../../src/cli/boot-progress.js';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/io.js';

function terminal(tty: boolean): CliIo & { raw: string[]; stdout: string[]; stderr: string[] } {
  const raw: string[] = [];
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { raw, stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l), exitCode: 0, errTty: tty, errRaw: (t) => raw.push(t) };
}

const GiB = 1n << 30n;

describe('boot progress line', () => {
  it('says stage, accepted bytes, rate and, for an eager kernel, the time left', () => {
    let now = 0;
    const io = terminal(true);
    const p = new BootProgress(io, { memoryBytes: 64n * GiB, accept: 'eager', now: () => now });
    p.update(() => ({ stage: 'kernel', acceptedBytes: GiB }));
    expect(io.raw).toEqual([]);   // not in the first second
    now = 2000;
    p.update(() => ({ stage: 'kernel', acceptedBytes: 16n * GiB }));
    expect(io.raw).toHaveLength(1);
    // 16 GiB in 2 s is 8 GiB/s; 48 GiB are left: 6 s.
    expect(io.raw[0]).toBe('\rminivisor: kernel, accepted 16 GiB of 64 GiB, 8 GiB/s, ETA 6 s\x1b[K');
    p.clear();
    expect(io.raw[1]).toBe('\r\x1b[K');
  });

  it('gives no ETA for a lazy boot, whose rest is accepted on demand', () => {
    const p = new BootProgress(terminal(true), { memoryBytes: 64n * GiB, accept: 'lazy' });
    expect(p.text({ stage: 'kernel', acceptedBytes: GiB }, 1000)).toBe('minivisor: kernel, accepted 1 GiB of 64 GiB, 1 GiB/s');
  });

  it('gives the ETA only while the kernel accepts and memory is left, in s, min and s, or h and min', () => {
    const p = new BootProgress(terminal(true), { memoryBytes: 64n * GiB, accept: 'eager' });
    const eta = (stage: string, accepted: bigint, ms: number) => p.text({ stage, acceptedBytes: accepted }, ms).split(', ').find((part) => part.startsWith('ETA'));
    expect(eta('firmware', GiB, 1000)).toBeUndefined();
    expect(eta('kernel', 64n * GiB, 1000)).toBeUndefined();
    // At 1 GiB a second: 63 GiB left is 63 s, 60 GiB exactly a minute, 30 GiB half of one.
    expect(eta('kernel', GiB, 1000)).toBe('ETA 1 min 3 s');
    expect(eta('kernel', 4n * GiB, 4000)).toBe('ETA 1 min 0 s');
    expect(eta('kernel', 34n * GiB, 34 * 1000)).toBe('ETA 30 s');
    // 63 GiB left at 1 GiB in 90 s: 5670 s, 1 h 34 min 30 s, shown as 1 h 35 min.
    expect(eta('kernel', GiB, 90_000)).toBe('ETA 1 h 35 min');
    // 63 GiB left at 1 GiB in 1.5 s: 94.5 s.
    expect(eta('kernel', GiB, 1500)).toBe('ETA 1 min 35 s');
  });

  it('shows nothing before its delay, and a clear of a line never shown writes nothing', () => {
    let now = 0;
    const io = terminal(true);
    const p = new BootProgress(io, { memoryBytes: 64n * GiB, accept: 'eager', now: () => now });
    now = 999;
    p.update(() => ({ stage: 'kernel', acceptedBytes: GiB }));
    expect(io.raw).toEqual([]);
    const quiet = terminal(false);
    new BootProgress(quiet, { memoryBytes: 64n * GiB, accept: 'eager' }).clear();
    expect(quiet.raw).toEqual([]);
  });

  it('is silent when stderr is not a terminal', () => {
    let now = 0;
    const io = terminal(false);
    const p = new BootProgress(io, { memoryBytes: 64n * GiB, accept: 'eager', now: () => now });
    now = 5000;
    p.update(() => ({ stage: 'kernel', acceptedBytes: GiB }));
    expect(p.enabled).toBe(false);
    expect([...io.raw, ...io.stderr]).toEqual([]);
  });

  it('a boot on a terminal ends with its line erased, and a boot elsewhere writes nothing to stderr', async () => {
    for (const tty of [true, false]) {
      const io = terminal(tty);
      expect(await main(['boot', '--memory', '128M', '--workload', '16M'], io)).toBe(0);
      expect(io.stderr).toEqual([]);
      // Whatever was drawn (a short boot may draw nothing) was erased again.
      if (io.raw.length > 0) expect(io.raw.at(-1)).toBe('\r\x1b[K');
      if (!tty) expect(io.raw).toEqual([]);
    }
  });
});
