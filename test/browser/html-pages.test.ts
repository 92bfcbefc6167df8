/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The HTML pages minivisor writes, in a real browser: Debian's Chromium (scripts/chromium.mjs
// fetches it into .chromium/ when the machine has none), driven by playwright-core. One file, so
// one fetch on a clean checkout. `boot --map FILE.html` must load with no console error, its legend
// must carry the boot's own byte counts, and the time slider must change what is drawn: nothing
// accepted before the first op, the firmware's ranges early on, everything at the end. A fuzz
// campaign's report.html must show its numbers and findings (issue 13).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureChromium } from '../../scripts/chromium.mjs';
import { main } from '../../src/cli/main.js';
import { handMadeFinding } from '../helpers/hand-made-finding.js';
import { capture } from '../helpers/captured-io.js';

interface BootJson { acceptedBytes: Record<string, number>; memoryBytes: number }

async function bootWithMap(args: string[], ext: 'html' | 'svg'): Promise<{ result: BootJson; file: string }> {
  const file = join(mkdtempSync(join(tmpdir(), 'mv-map-html-')), `map.${ext}`);
  const io = capture();
  expect(await main(['boot', '--json', ...args, '--map', file], io), io.stderr.join('\n')).toBe(0);
  return { result: JSON.parse(io.stdout[0]!) as BootJson, file };
}

let browser: Browser;

beforeAll(async () => {
  // The first run on a clean checkout downloads and unpacks Debian's chromium (seconds on a mirror).
  const found = ensureChromium((m) => console.log(m));
  browser = await chromium.launch({ executablePath: found.executablePath, env: { ...process.env, ...found.env }, args: ['--no-sandbox', '--disable-gpu'] });
}, 300_000);

afterAll(async () => {
  await browser?.close();
});

async function open(file: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`file://${file}`);
  return { page, errors };
}

/** The legend's byte counts as the page shows them now. */
async function legend(page: Page): Promise<Record<string, bigint>> {
  const entries = await page.$$eval('#legend li.legend', (items) => items.map((li) => [(li as HTMLElement).dataset.kind!, (li as HTMLElement).dataset.bytes!] as const));
  return Object.fromEntries(entries.map(([k, v]) => [k, BigInt(v)]));
}

async function setSlider(page: Page, step: number): Promise<void> {
  await page.locator('#time').fill(String(step));
}

/** How many op groups are displayed, and the fill of the bar's topmost shape at address `x` (page coordinates from the SVG). */
async function drawn(page: Page, svgX: number): Promise<{ visibleOps: number; fillAt: string }> {
  return page.evaluate((x) => {
    const svg = document.getElementById('map')!;
    const box = svg.getBoundingClientRect();
    const ops = [...document.querySelectorAll('#ops g.op')].filter((g) => getComputedStyle(g).display !== 'none').length;
    const hit = document.elementFromPoint(box.left + x, box.top + 30 + 24);
    return { visibleOps: ops, fillAt: hit?.getAttribute('fill') ?? '' };
  }, svgX);
}

describe('boot --map FILE.html in Chromium', () => {
  it('shows the boot\'s byte counts, and the slider changes what is drawn', async () => {
    const args = ['--memory', '256M', '--workload', '16M'];
    const { result, file } = await bootWithMap(args, 'html');
    const { file: svgFile } = await bootWithMap(args, 'svg');
    const { page, errors } = await open(file);
    const steps = Number(await page.locator('#time').getAttribute('max'));
    expect(steps).toBeGreaterThan(2);

    // The last step is the finished boot: the same numbers as --json and as the static SVG.
    const end = await legend(page);
    const a = result.acceptedBytes;
    expect(end.firmware).toBe(BigInt(a.firmware!));
    expect(end.decompressor).toBe(BigInt(a.decompressor!));
    expect(end.kernel! + end['kernel-after-conversion']!).toBe(BigInt(a.kernel!));
    const svg = readFileSync(svgFile, 'utf8');
    const svgBytes = (kind: string) => BigInt(svg.match(new RegExp(`data-kind="${kind}" data-bytes="(\\d+)"`))![1]!);
    expect(end.unaccepted).toBe(svgBytes('unaccepted'));
    expect(end.shared).toBe(svgBytes('shared'));
    const totalOps = await page.locator('#ops g.op').count();
    // x = 21 is just inside the bar's left end: guest-physical page 0, which the firmware accepts.
    const atEnd = await drawn(page, 21);
    expect(atEnd.visibleOps).toBe(totalOps);
    expect(atEnd.fillAt).toBe('#4e79a7');

    // Step 0: before the first accept, nothing is drawn over the grey bar.
    await setSlider(page, 0);
    const start = await legend(page);
    expect(start.firmware! + start.decompressor! + start.kernel! + start['kernel-after-conversion']!).toBe(0n);
    expect(start.unaccepted).toBe(BigInt(result.memoryBytes));
    const atStart = await drawn(page, 21);
    expect(atStart.visibleOps).toBe(0);
    expect(atStart.fillAt).toBe('#e8e8e8');
    expect(await page.locator('#time-label').textContent()).toContain('before the first accept');

    // The first step with an accept is the firmware's, with nothing by the later stages yet.
    let early = start;
    for (let step = 1; early.firmware === 0n && step <= steps; step++) {
      await setSlider(page, step);
      early = await legend(page);
    }
    expect(early.firmware).toBeGreaterThan(0n);
    expect(early.decompressor! + early.kernel!).toBe(0n);
    const atEarly = await drawn(page, 21);
    expect(atEarly.visibleOps).toBeGreaterThan(0);
    expect(atEarly.visibleOps).toBeLessThan(totalOps);
    expect(await page.locator('#time-label').textContent()).toContain('stage firmware');

    expect(errors).toEqual([]);
    await page.close();
  });

  it('stays inside the picture for a 64T guest', async () => {
    const { result, file } = await bootWithMap(['--memory', '64T', '--workload', '16M'], 'html');
    const { page, errors } = await open(file);
    const end = await legend(page);
    expect(end.unaccepted).toBeGreaterThan(BigInt(result.memoryBytes) / 2n);
    const boxes = await page.$$eval('#ops rect, .bitmap', (rects) => rects.map((r) => (r as SVGGraphicsElement).getBBox()).map((b) => ({ x: b.x, w: b.width })));
    expect(boxes.length).toBeGreaterThan(0);
    for (const b of boxes) {
      expect(b.x).toBeGreaterThanOrEqual(20);
      expect(b.x + b.w).toBeLessThanOrEqual(980.01);
      expect(b.w).toBeGreaterThanOrEqual(0.5);
    }
    expect(await page.locator('#map text').last().textContent()).toBe('64TiB');
    expect(errors).toEqual([]);
    await page.close();
  });
});

describe('fuzz DIR/report.html in Chromium', () => {
  it('renders the campaign\'s numbers, both charts and the findings with their replay commands', async () => {
    const out = mkdtempSync(join(tmpdir(), 'mv-report-html-'));
    const findingFile = handMadeFinding(out);
    const io = capture();
    await main(['fuzz', '--memory', '128M', '--workload', '1M', '--stage', 'all', '--runs', '3', '--out', out, '--json'], io);
    const stats = JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8'));
    const { page, errors } = await open(join(out, 'report.html'));
    expect(await page.locator('[data-stat="executions"]').textContent()).toBe('3');
    expect(await page.locator('[data-stat="edges"]').textContent()).toBe(String(stats.edges));
    // The edge chart has a point per sample, in time order inside the axes, the last (the campaign's
    // end) at the right end of the time axis. (Not its drawn width: the samples' times are the wall
    // clock's, and on a loaded machine the boot to the first execution can take most of the run.)
    const points = (await page.locator('#coverage polyline').getAttribute('points'))!.split(' ').map((p) => p.split(',').map(Number));
    expect(points).toHaveLength(stats.coverageOverTime.length);
    const xs = points.map(([x]) => x!);
    const axis = await page.$eval('#coverage line', (l) => ({ from: Number(l.getAttribute('x1')), to: Number(l.getAttribute('x2')) }));
    expect(xs.every((x, i) => x >= axis.from && x <= axis.to && (i === 0 || x >= xs[i - 1]!))).toBe(true);
    expect(xs.at(-1)).toBeCloseTo(axis.to, 0);
    expect(await page.locator('section.category').getAttribute('data-count')).toBe('1');
    expect(await page.locator('li.finding code.replay').textContent()).toBe(JSON.parse(readFileSync(findingFile, 'utf8')).replay);
    expect(errors).toEqual([]);
    await page.close();
  });
});
