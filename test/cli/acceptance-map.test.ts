// `minivisor boot --map FILE.svg`: the acceptance map parses as XML, its legend's byte counts are
// the boot's own acceptedBytes (the hardware's count, re-accepts included), and its ranges lie in
// the picture for the smallest and a large guest (issue 13).
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { MapOp } from '../../src/view/acceptance-map.js';
import { MAX_FRAMES, timelineFrames } from '../../src/view/acceptance-map-html.js';
import { quoteForError } from '../../src/shared/quote.js';
import { capture } from '../helpers/captured-io.js';

interface Legend { kind: string; bytes: bigint }

async function bootWithMap(args: string[]): Promise<{ result: { acceptedBytes: Record<string, number>; memoryBytes: number; guestStats: Record<string, string> }; svg: string; legend: Map<string, bigint>; rects: Array<Record<string, string>> }> {
  const file = join(mkdtempSync(join(tmpdir(), 'mv-map-')), 'map.svg');
  const io = capture();
  expect(await main(['boot', '--json', ...args, '--map', file], io)).toBe(0);
  const svg = readFileSync(file, 'utf8');
  expect(XMLValidator.validate(svg)).toBe(true);
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(svg);
  const texts = [doc.svg.text].flat() as Array<Record<string, string>>;
  const legend = new Map<string, bigint>(texts.filter((t) => t.class === 'legend').map((t): [string, bigint] => [t['data-kind']!, BigInt(t['data-bytes']!)]));
  return { result: JSON.parse(io.stdout[0]!), svg, legend, rects: [doc.svg.rect].flat() };
}

describe('boot --map', () => {
  it('the legend counts are the boot\'s acceptedBytes, by stage and in total', async () => {
    const { result, legend, rects } = await bootWithMap(['--memory', '256M', '--workload', '16M']);
    const a = result.acceptedBytes;
    expect(legend.get('firmware')).toBe(BigInt(a.firmware!));
    expect(legend.get('decompressor')).toBe(BigInt(a.decompressor!));
    expect(legend.get('kernel')! + legend.get('kernel-after-conversion')!).toBe(BigInt(a.kernel!));
    const acceptedKinds = ['firmware', 'decompressor', 'kernel', 'kernel-after-conversion'];
    expect(acceptedKinds.reduce((n, k) => n + legend.get(k)!, 0n)).toBe(BigInt(a.total!));
    // The bitmap mark is where the guest said it put the bitmap.
    const bitmap = rects.find((r) => r.class === 'bitmap')!;
    expect(BigInt(bitmap['data-start']!)).toBe(BigInt(result.guestStats.bitmap_gpa!));
    // The console page the firmware shares with the VMM ends shared.
    expect(legend.get('shared')).toBeGreaterThan(0n);
  });

  it('stays inside the picture for a 1T guest, with unaccepted memory the largest part', async () => {
    const { result, legend, rects } = await bootWithMap(['--memory', '1T', '--workload', '16M']);
    expect(legend.get('unaccepted')).toBeGreaterThan(BigInt(result.memoryBytes) / 2n);
    for (const r of rects.filter((x) => x['data-start'] !== undefined)) {
      expect(Number(r.x) + Number(r.width)).toBeLessThanOrEqual(980.01);
      expect(Number(r.width)).toBeGreaterThanOrEqual(0.5);
    }
  });

  it('a map that cannot be written is one clear line and exit 2 (a usage error) before any guest runs, and leaves nothing behind', async () => {
    const io = capture();
    expect(await main(['boot', '--memory', '256M', '--workload', '16M', '--map', '/nonexistent-dir/map.svg'], io)).toBe(2);
    expect(io.stderr).toEqual(['minivisor boot: cannot write map "/nonexistent-dir/map.svg": the directory "/nonexistent-dir" does not exist (ENOENT)']);
    expect(io.stdout).toEqual([]);
    // The map opens first; a trace that then cannot be opened leaves no half-made map file.
    const dir = mkdtempSync(join(tmpdir(), 'mv-map-'));
    const both = capture();
    expect(await main(['boot', '--memory', '256M', '--workload', '16M', '--map', join(dir, 'map.svg'), '--trace', '/nonexistent-dir/run.json'], both)).toBe(2);
    expect(both.stderr).toEqual(['minivisor boot: cannot write Perfetto trace "/nonexistent-dir/run.json": the directory "/nonexistent-dir" does not exist (ENOENT)']);
    expect(both.stdout).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a map and a trace in one file (the later would replace the other), before any guest runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mv-map-'));
    for (const trace of [join(dir, 'run.svg'), `${dir}/./run.svg`]) {
      const io = capture();
      expect(await main(['boot', '--memory', '256M', '--workload', '16M', '--map', join(dir, 'run.svg'), '--trace', trace], io)).toBe(2);
      expect(io.stderr).toEqual([`minivisor boot: --map and --trace both name ${quoteForError(join(dir, 'run.svg'))}: give each its own file`]);
      expect(readdirSync(dir)).toEqual([]);
    }
  });
});

describe('the HTML map\'s timeline', () => {
  it('groups a long boot into at most MAX_FRAMES steps and ends with the final counts', () => {
    // 2000 scattered 4K accepts (none continue the previous one, so none merge) in one stage.
    const ops: MapOp[] = Array.from({ length: 2000 }, (_, i) => ({ kind: 'kernel', start: BigInt(i) * 0x2000n, end: BigInt(i) * 0x2000n + 0x1000n, icount: BigInt(i), stage: 'kernel' }));
    const frames = timelineFrames(ops, 1n << 30n);
    expect(frames.length).toBeLessThanOrEqual(MAX_FRAMES);
    expect(frames[0]!.opEnd).toBe(0);
    expect(frames[0]!.bytes.unaccepted).toBe(1n << 30n);
    const last = frames[frames.length - 1]!;
    expect(last.opEnd).toBe(2000);
    expect(last.icount).toBe(1999n);
    expect(last.bytes.kernel).toBe(2000n * 0x1000n);
    expect(last.bytes.unaccepted).toBe((1n << 30n) - 2000n * 0x1000n);
    // Counts only grow along the slider: every frame accepts more than the one before.
    for (let i = 1; i < frames.length; i++) expect(frames[i]!.bytes.kernel).toBeGreaterThan(frames[i - 1]!.bytes.kernel);
  });

  it('a re-accept after a conversion counts again but covers the same bytes', () => {
    const page = (kind: MapOp['kind'], stage: string): MapOp => ({ kind, start: 0x10000n, end: 0x11000n, icount: 0n, stage });
    const frames = timelineFrames([page('firmware', 'firmware'), page('to-shared', 'kernel'), page('to-private', 'kernel'), page('kernel-after-conversion', 'kernel')], 1n << 27n);
    const last = frames[frames.length - 1]!;
    expect(last.bytes.firmware + last.bytes['kernel-after-conversion']).toBe(0x2000n);
    expect(last.bytes.unaccepted).toBe((1n << 27n) - 0x1000n);
    expect(last.bytes.shared).toBe(0n);
  });

});
