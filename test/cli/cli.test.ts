import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { main } from '../../src/cli/main.js';
import { traceSha256OfJsonLines } from '../../src/shared/trace.js';
import { capture } from '../helpers/captured-io.js';

describe('minivisor CLI', () => {
  it('prints the emulator version as JSON', async () => {
    const io = capture();
    expect(await main(['info', '--json'], io)).toBe(0);
    expect(JSON.parse(io.stdout[0]!)).toMatchObject({ unicorn: expect.stringMatching(/^2\.(1|[2-9])\./) });
  });

  it('rejects bad flags with a clear message and exit status 2', async () => {
    const io = capture();
    expect(await main(['boot', '--memory', 'lots'], io)).toBe(2);
    expect(io.stderr.join('\n')).toMatch(/--memory "lots" is not a size/);
    const io2 = capture();
    expect(await main(['boot', '--no-such-flag'], io2)).toBe(2);
    expect(io2.stderr.join('\n')).toMatch(/unknown option/);
  });

  it('runs as an installed command', () => {
    const out = execFileSync(process.execPath, ['bin/minivisor.js', 'info'], { encoding: 'utf8' });
    expect(out).toMatch(/libunicorn 2\./);
    const bad = spawnSync(process.execPath, ['bin/minivisor.js', 'boot', '--platform', 'nope'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--platform must be tdx or snp/);
  });
});

describe('minivisor boot', () => {
  it('boots the default guest and reports one JSON object with the documented fields', async () => {
    const io = capture();
    expect(await main(['boot', '--json', '--memory', '256M', '--workload', '16M'], io)).toBe(0);
    const r = JSON.parse(io.stdout[0]!);
    expect(r).toMatchObject({ platform: 'tdx', memoryBytes: 256 * 2 ** 20, seed: '1', outcome: 'done' });
    for (const k of ['outcomeReason', 'acceptedBytes', 'acceptCalls', 'acceptCallsCompleted', 'exits', 'guestInstructions', 'wallMs', 'traceSha256', 'console']) {
      expect(r).toHaveProperty(k);
    }
    expect(Object.keys(r.acceptedBytes)).toEqual(['firmware', 'decompressor', 'kernel', 'total', 'distinct']);
    expect(r.console).toMatch(/@mv done/);
  });

  it('exits non-zero when the guest does not finish (instruction budget)', async () => {
    const io = capture();
    expect(await main(['boot', '--json', '--memory', '256M', '--max-instructions', '100000'], io)).toBe(1);
    expect(JSON.parse(io.stdout[0]!)).toMatchObject({ outcome: 'budget' });
  });
});

describe('minivisor boot --trace', () => {
  it('writes the structured trace as JSON lines whose hash is the reported traceSha256', async () => {
    const { mkdtempSync, readFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const file = join(mkdtempSync(join(tmpdir(), 'minivisor-trace-')), 'run.jsonl');
    const io = capture();
    expect(await main(['boot', '--json', '--platform', 'snp', '--memory', '256M', '--workload', '16M', '--trace', file], io)).toBe(0);
    const r = JSON.parse(io.stdout[0]!);
    const text = readFileSync(file, 'utf8');
    const lines = text.trimEnd().split('\n').slice(1);  // line 1 is the header (docs/trace-schema.md)
    expect(lines.length).toBe(r.traceEvents);
    // The hash covers the events, not the file's bytes: hashing the parsed lines gives it back.
    expect(traceSha256OfJsonLines(text)).toBe(r.traceSha256);
    const events = lines.map((l) => JSON.parse(l));
    expect(events.some((e) => e.type === 'pvalidate' && e.rc === 0)).toBe(true);
    expect(events.filter((e) => e.type === 'stage').map((e) => e.stage)).toEqual(['firmware', 'decompressor', 'kernel']);
  });
});
