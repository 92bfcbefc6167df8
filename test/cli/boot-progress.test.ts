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
