// The versioned trace file: a header line, icount and stage on every event, and `trace diff`.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { traceSha256OfJsonLines } from '../../src/shared/trace.js';
import { TRACE_SCHEMA_VERSION } from '../../src/boot/trace-header.js';
import { capture } from '../helpers/captured-io.js';

const dir = mkdtempSync(join(tmpdir(), 'minivisor-trace-format-'));

async function traceOf(name: string, ...flags: string[]): Promise<{ file: string; result: { traceSha256: string; traceEvents: number; guestInstructions: number } }> {
  const file = join(dir, name);
  const io = capture();
  expect(await main(['boot', '--json', '--memory', '256M', '--workload', '16M', '--trace', file, ...flags], io)).toBe(0);
  return { file, result: JSON.parse(io.stdout[0]!) };
}

describe('the trace file', () => {
  it('starts with a header naming the version, schema and config; every event has icount and stage', async () => {
    const { file, result } = await traceOf('a.jsonl', '--seed', '7');
    const text = readFileSync(file, 'utf8');
    const [head, ...lines] = text.trimEnd().split('\n').map((l) => JSON.parse(l));
    const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
    expect(head).toEqual({
      type: 'minivisor-trace', schema: TRACE_SCHEMA_VERSION, minivisor: pkg.version,
      config: expect.objectContaining({ platform: 'tdx', memoryBytes: '0x10000000', seed: '0x7', workloadBytes: '0x1000000' }),
    });
    expect(lines).toHaveLength(result.traceEvents);
    expect(traceSha256OfJsonLines(text)).toBe(result.traceSha256);
    for (const e of lines) {
      expect(e).toMatchObject({ icount: expect.stringMatching(/^0x[0-9a-f]+$/), stage: expect.stringMatching(/^(vmm|firmware|decompressor|kernel)$/) });
    }
    // The count never goes back and ends at the run's total; stages come in boot order.
    const counts = lines.map((e) => BigInt(e.icount));
    expect(counts.every((c, i) => i === 0 || c >= counts[i - 1]!)).toBe(true);
    expect(counts[counts.length - 1]).toBeLessThanOrEqual(BigInt(result.guestInstructions));
    expect(counts[counts.length - 1]).toBeGreaterThan(BigInt(result.guestInstructions) / 2n);
    expect([...new Set(lines.map((e) => e.stage))]).toEqual(['vmm', 'firmware', 'decompressor', 'kernel']);
    // Each event carries the stage the guest last announced ("vmm" before the first announcement).
    let announced = 'vmm';
    for (const e of lines) {
      if (e.type === 'stage') announced = e.stage;
      expect(e.stage).toBe(announced);
    }
    expect(lines.filter((e) => e.type === 'stage').map((e) => e.stage)).toEqual(['firmware', 'decompressor', 'kernel']);
  });

  it('is byte-identical for the same config (nothing non-deterministic in the header)', async () => {
    const a = await traceOf('same-1.jsonl');
    const b = await traceOf('same-2.jsonl');
    expect(readFileSync(a.file, 'utf8')).toBe(readFileSync(b.file, 'utf8'));
  });
});

describe('minivisor trace diff', () => {
  it('says identical traces are identical (exit 0)', async () => {
    const a = await traceOf('d1.jsonl');
    const b = await traceOf('d2.jsonl');
    const io = capture();
    expect(await main(['trace', 'diff', a.file, b.file], io)).toBe(0);
    expect(io.stdout).toEqual([`the ${a.result.traceEvents} events are identical`]);
  });

  it('names the config difference and the first diverging event with its context (exit 1)', async () => {
    const a = await traceOf('s1.jsonl', '--seed', '1');
    const b = await traceOf('s2.jsonl', '--seed', '2');
    const io = capture();
    expect(await main(['trace', 'diff', a.file, b.file, '--context', '2'], io)).toBe(1);
    const out = io.stdout.join('\n');
    expect(out).toMatch(/^the headers differ:\n {2}config\.seed: A "0x1", B "0x2"\n/);
    expect(out).toMatch(/the traces agree on (\d+) events and part at event \1:/);
    expect(out).toMatch(/\n {2}both {2}#\d+ \(stage \w+, [\d,]+ instructions\) (hw|vmm|guest) \S+/);
    expect(out).toMatch(/\n {2}A > {2}#\d+/);
    expect(out).toMatch(/\n {2}B > {2}#\d+/);
    expect(out).toMatch(/\n {2}first difference in \w+ \(A .+, B .+\)/);
  });

  it('says where the shorter trace ends', async () => {
    const a = await traceOf('t1.jsonl');
    const text = readFileSync(a.file, 'utf8').trimEnd().split('\n');
    const cut = join(dir, 'cut.jsonl');
    writeFileSync(cut, `${text.slice(0, 11).join('\n')}\n`);
    const io = capture();
    expect(await main(['trace', 'diff', a.file, cut], io)).toBe(1);
    expect(io.stdout.join('\n')).toMatch(/part at event 10:[\s\S]*B {5}\(.*cut\.jsonl ends here, after 10 events\)/);
  });

  it('refuses a file that is not a trace with one message (exit 2)', async () => {
    const junk = join(dir, 'junk.txt');
    writeFileSync(junk, 'hello\n');
    const io = capture();
    expect(await main(['trace', 'diff', junk, junk], io)).toBe(2);
    expect(io.stderr).toEqual([expect.stringMatching(/^minivisor trace diff: .*junk\.txt line 1 is not JSON/)]);
    const io2 = capture();
    expect(await main(['trace', 'diff', join(dir, 'missing'), junk], io2)).toBe(2);
    expect(io2.stderr[0]).toMatch(/does not exist/);
  });
});
