// A map of guest-physical memory after a boot: which ranges were accepted and by whom (firmware,
// decompressor, kernel, kernel again after a private<->shared conversion), what stays unaccepted,
// where the acceptance bitmap lies and which ranges end shared. Derived from the hardware's trace
// events (successful TDG.MEM.PAGE.ACCEPT / PVALIDATE, MapGPA / page-state changes) and the
// platform's page-state query, and drawn as a static SVG: deterministic, one element per line, so
// two maps diff well. The address axis is logarithmic (from 1 MiB), so 128M and 64T guests both
// stay readable; every range gets at least a hairline.
import type { PageState } from '../platform/platform.js';
import type { TraceEvent } from '../shared/trace.js';

export const MAP_CATEGORIES = ['firmware', 'decompressor', 'kernel', 'kernel-after-conversion'] as const;
export type MapCategory = (typeof MAP_CATEGORIES)[number];

export interface Range { start: bigint; end: bigint }

export interface AcceptanceMap {
  memoryBytes: bigint;
  /** Accepted ranges by who accepted them last, merged and sorted. */
  accepted: Record<MapCategory, Range[]>;
  /** Bytes each accepted (every successful accept, re-accepts included: the sum is acceptedBytes.total). */
  acceptedBytes: Record<MapCategory, bigint>;
  /** Ranges that end the run shared (converted and still shared, per the platform). */
  shared: Range[];
  bitmap: Range | undefined;
  /** Bytes never accepted and not shared at the end. */
  unacceptedBytes: bigint;
}

const SIZE: Record<string, bigint> = { '4K': 0x1000n, '2M': 0x200000n };

/** The accepted range of a successful accept event, or undefined (TDX: RCX = GPA | level, status 0; SNP: rc 0, CF clear). */
function acceptedRange(e: TraceEvent): Range | undefined {
  if (e.source !== 'hw') return undefined;
  if (e.type === 'tdcall' && e.leaf === 'MEM_PAGE_ACCEPT' && e.status === 0n && typeof e.rcx === 'bigint') {
    const size = (e.rcx & 7n) === 1n ? SIZE['2M']! : SIZE['4K']!;
    const start = e.rcx & ~0xfffn;
    return { start, end: start + size };
  }
  if (e.type === 'pvalidate' && e.validate === true && e.rc === 0 && e.cf === false && typeof e.gpa === 'bigint') {
    const size = e.size === '2m' ? SIZE['2M']! : SIZE['4K']!;
    return { start: e.gpa, end: e.gpa + size };
  }
  return undefined;
}

/** A conversion event's range and direction (TDX MapGPA; SNP page-state change of one page or a 2M entry). */
function conversion(e: TraceEvent): { range: Range; toShared: boolean } | undefined {
  if (e.source !== 'vmm' || typeof e.gpa !== 'bigint') return undefined;
  if (e.type === 'map-gpa' && typeof e.size === 'bigint') return { range: { start: e.gpa, end: e.gpa + e.size }, toShared: e.toShared === true };
  // GHCB spec, Page State Change: operation 1 = private, 2 = shared (src/platform/snp/ghcb-msr.ts PSC_OP).
  if (e.type === 'psc' && (e.error === 0 || e.error === 0n) && (e.op === 1 || e.op === 2)) {
    return { range: { start: e.gpa, end: e.gpa + (e.size === '2m' ? SIZE['2M']! : SIZE['4K']!) }, toShared: e.op === 2 };
  }
  return undefined;
}

function overlaps(a: Range, b: Range): boolean {
  return a.start < b.end && b.start < a.end;
}

/**
 * One change to the map, in trace order: a range accepted (by whom) or converted. Consecutive
 * changes of the same kind that continue each other are merged, at most `eventsPerOp` events into
 * one op (an eager kernel's 2M accepts upwards become a few hundred ops, not one per 2M), so a map
 * of a large guest stays small while a slider over the ops still moves in small steps. `icount`
 * and `stage` are those of the op's last event.
 */
export interface MapOp {
  kind: MapCategory | 'to-shared' | 'to-private';
  start: bigint;
  end: bigint;
  icount: bigint;
  stage: string;
}

/** Ops a timeline aims for: more would not be seen on a slider, fewer would jump. */
export const TARGET_OPS = 2000;

/** The trace's acceptance and conversion events as map ops, about `targetOps` of them at most (plus stage and kind changes). */
export function acceptanceOps(events: readonly TraceEvent[], targetOps = TARGET_OPS): MapOp[] {
  const relevant = events.filter((e) => conversion(e) !== undefined || acceptedRange(e) !== undefined).length;
  const eventsPerOp = Math.max(1, Math.ceil(relevant / targetOps));
  const ops: MapOp[] = [];
  const conversions: Range[] = [];
  let stage: 'firmware' | 'decompressor' | 'kernel' = 'firmware';
  let merged = 0;
  const push = (kind: MapOp['kind'], r: Range, e: TraceEvent) => {
    const icount = typeof e.icount === 'bigint' ? e.icount : 0n;
    const last = ops[ops.length - 1];
    if (last && last.kind === kind && last.stage === stage && last.end === r.start && merged < eventsPerOp) {
      last.end = r.end;
      last.icount = icount;
      merged++;
    } else {
      ops.push({ kind, start: r.start, end: r.end, icount, stage });
      merged = 1;
    }
  };
  for (const e of events) {
    if (e.source === 'guest' && e.type === 'stage' && (e.stage === 'firmware' || e.stage === 'decompressor' || e.stage === 'kernel')) {
      stage = e.stage;
      continue;
    }
    const converted = conversion(e);
    if (converted) {
      // Shared: no longer accepted. Private again: pending until the guest accepts it anew.
      conversions.push(converted.range);
      push(converted.toShared ? 'to-shared' : 'to-private', converted.range, e);
      continue;
    }
    const r = acceptedRange(e);
    if (!r) continue;
    push(stage === 'kernel' && conversions.some((c) => overlaps(c, r)) ? 'kernel-after-conversion' : stage, r, e);
  }
  return ops;
}

type Paint = MapCategory | 'shared' | 'private';

const paintOf = (kind: MapOp['kind']): Paint => (kind === 'to-shared' ? 'shared' : kind === 'to-private' ? 'private' : kind);

/**
 * Guest memory painted by ops, last painter wins: what is accepted (by whom) and what is shared
 * after each op, with running byte counts (so a timeline can show them at every step).
 */
export class MapCoverage {
  readonly ranges = new Map<Paint, Range[]>([...MAP_CATEGORIES, 'shared' as const, 'private' as const].map((c) => [c, []]));
  /** Bytes painted now, by paint. */
  readonly bytes = new Map<Paint, bigint>([...this.ranges.keys()].map((c) => [c, 0n]));
  /** Bytes each category accepted so far, re-accepts included (their sum is acceptedBytes.total). */
  readonly acceptedBytes = Object.fromEntries(MAP_CATEGORIES.map((c) => [c, 0n])) as Record<MapCategory, bigint>;

  apply(op: MapOp): void {
    const r: Range = { start: op.start, end: op.end };
    const category = paintOf(op.kind);
    if (category !== 'shared' && category !== 'private') this.acceptedBytes[category] += r.end - r.start;
    for (const [c, list] of this.ranges) {
      if (!list.some((x) => overlaps(x, r))) continue;
      let cut = 0n;
      this.ranges.set(c, list.flatMap((x) => {
        if (!overlaps(x, r)) return [x];
        const parts: Range[] = [];
        if (x.start < r.start) parts.push({ start: x.start, end: r.start });
        if (r.end < x.end) parts.push({ start: r.end, end: x.end });
        cut += (x.end - x.start) - parts.reduce((n, p) => n + (p.end - p.start), 0n);
        return parts;
      }));
      this.bytes.set(c, this.bytes.get(c)! - cut);
    }
    // Accepts mostly run upwards: extend the last range, so the lists stay short (runs, not pages).
    const list = this.ranges.get(category)!;
    const last = list[list.length - 1];
    if (last && last.end === r.start) last.end = r.end;
    else list.push({ ...r });
    this.bytes.set(category, this.bytes.get(category)! + (r.end - r.start));
  }

  /** Bytes accepted now (each byte once, whoever accepted it last). */
  acceptedNow(): bigint {
    return MAP_CATEGORIES.reduce((n, c) => n + this.bytes.get(c)!, 0n);
  }
}

function merge(list: Range[]): Range[] {
  const sorted = [...list].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Range[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = r.end > last.end ? r.end : last.end;
    else out.push({ ...r });
  }
  return out;
}

export const bytesOf = (list: readonly Range[]) => list.reduce((n, r) => n + (r.end - r.start), 0n);

/**
 * Builds the map from a boot's events (kept in memory) and the platform's final page states.
 * `bitmap` is where the guest put its acceptance bitmap (its "@mv stat bitmap_gpa/bitmap_bytes").
 */
export function buildAcceptanceMap(events: readonly TraceEvent[], memoryBytes: bigint, pageState: (gpa: bigint) => PageState, bitmap?: Range): AcceptanceMap {
  const coverage = new MapCoverage();
  for (const op of acceptanceOps(events)) coverage.apply(op);
  // What the trace says is shared at the end, confirmed by the hardware (at each range's first page).
  const shared = merge(coverage.ranges.get('shared')!).filter((r) => pageState(r.start).visibility === 'shared');
  const accepted = Object.fromEntries(MAP_CATEGORIES.map((c) => [c, merge(coverage.ranges.get(c)!)])) as Record<MapCategory, Range[]>;
  const acceptedNow = MAP_CATEGORIES.reduce((n, c) => n + bytesOf(accepted[c]), 0n);
  return { memoryBytes, accepted, acceptedBytes: { ...coverage.acceptedBytes }, shared, bitmap, unacceptedBytes: memoryBytes - acceptedNow - bytesOf(shared) };
}

/** Binary units, exact where they can be ("64 MiB", "4.5 GiB", "12 KiB"). */
export function formatBinary(bytes: bigint): string {
  const units = [['TiB', 40n], ['GiB', 30n], ['MiB', 20n], ['KiB', 10n]] as const;
  for (const [unit, shift] of units) {
    const scale = 1n << shift;
    if (bytes >= scale) {
      const whole = bytes / scale;
      const tenths = ((bytes % scale) * 10n) / scale;
      return tenths === 0n && bytes % scale === 0n ? `${whole} ${unit}` : `${whole}.${tenths} ${unit}`;
    }
  }
  return `${bytes} B`;
}

export const COLOURS: Record<MapCategory | 'unaccepted' | 'shared' | 'bitmap', string> = {
  firmware: '#4e79a7', decompressor: '#f28e2b', kernel: '#59a14f', 'kernel-after-conversion': '#b07aa1',
  unaccepted: '#e8e8e8', shared: '#e15759', bitmap: '#222222',
};
export const LABEL: Record<MapCategory, string> = {
  firmware: 'accepted by the firmware', decompressor: 'accepted by the decompressor',
  kernel: 'accepted by the kernel (lazily or eagerly)', 'kernel-after-conversion': 'accepted by the kernel again after a conversion',
};

export const hex = (v: bigint) => `0x${v.toString(16)}`;

const MiB = 1n << 20n;

/** x of a guest-physical address on a logarithmic axis from 1 MiB, `width` wide from `left`. */
export function logAxis(memoryBytes: bigint, left: number, width: number): (gpa: bigint) => number {
  const top = Math.log2(1 + Number(memoryBytes) / Number(MiB));
  return (gpa) => left + (width * Math.log2(1 + Number(gpa) / Number(MiB))) / top;
}

/** Axis ticks: 0, powers of 4 from 1 MiB, and the end of memory. */
export function axisTicks(memoryBytes: bigint): bigint[] {
  const ticks: bigint[] = [0n];
  for (let t = MiB; t < memoryBytes; t *= 4n) ticks.push(t);
  ticks.push(memoryBytes);
  return ticks;
}

/** The map as a standalone SVG document. */
export function acceptanceMapSvg(map: AcceptanceMap, title: string): string {
  const W = 960;
  const LEFT = 20;
  const BAR_Y = 60;
  const BAR_H = 48;
  const x = logAxis(map.memoryBytes, LEFT, W);
  const f = (n: number) => n.toFixed(2);
  const rect = (r: Range, y: number, h: number, fill: string, kind: string) => {
    const x0 = x(r.start);
    const w = Math.max(x(r.end) - x0, 0.5);
    return `<rect class="${kind}" x="${f(x0)}" y="${y}" width="${f(w)}" height="${h}" fill="${fill}" data-start="${hex(r.start)}" data-end="${hex(r.end)}"/>`;
  };
  const lines = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W + 2 * LEFT}" height="300" viewBox="0 0 ${W + 2 * LEFT} 300" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<text x="${LEFT}" y="20" font-size="14">${escapeXml(title)}</text>`,
    `<text x="${LEFT}" y="40" fill="#555">guest-physical address, logarithmic from 1 MiB (ticks in binary units)</text>`,
    `<rect class="unaccepted" x="${LEFT}" y="${BAR_Y}" width="${W}" height="${BAR_H}" fill="${COLOURS.unaccepted}"/>`,
  ];
  for (const c of MAP_CATEGORIES) for (const r of map.accepted[c]) lines.push(rect(r, BAR_Y, BAR_H, COLOURS[c], c));
  for (const r of map.shared) lines.push(rect(r, BAR_Y + BAR_H + 4, 8, COLOURS.shared, 'shared'));
  if (map.bitmap) lines.push(rect(map.bitmap, BAR_Y - 10, 8, COLOURS.bitmap, 'bitmap'));
  for (const t of axisTicks(map.memoryBytes)) {
    const tx = f(x(t));
    lines.push(`<line x1="${tx}" y1="${BAR_Y + BAR_H + 14}" x2="${tx}" y2="${BAR_Y + BAR_H + 20}" stroke="#333"/>`);
    lines.push(`<text x="${tx}" y="${BAR_Y + BAR_H + 32}" text-anchor="middle" font-size="10">${t === 0n ? '0' : formatBinary(t).replace(' ', '')}</text>`);
  }
  const legend: Array<[string, string, bigint, string]> = [
    ...MAP_CATEGORIES.map((c): [string, string, bigint, string] => [c, COLOURS[c], map.acceptedBytes[c], LABEL[c]]),
    ['unaccepted', COLOURS.unaccepted, map.unacceptedBytes, 'never accepted (and not shared)'],
    ['shared', COLOURS.shared, bytesOf(map.shared), 'shared at the end (strip below the bar)'],
  ];
  if (map.bitmap) legend.push(['bitmap', COLOURS.bitmap, map.bitmap.end - map.bitmap.start, `acceptance bitmap at ${hex(map.bitmap.start)} (mark above the bar)`]);
  legend.forEach(([kind, colour, bytes, label], i) => {
    const y = BAR_Y + BAR_H + 50 + i * 18;
    lines.push(`<rect x="${LEFT}" y="${y - 10}" width="12" height="12" fill="${colour}" stroke="#999"/>`);
    lines.push(`<text class="legend" data-kind="${kind}" data-bytes="${bytes}" x="${LEFT + 18}" y="${y}">${escapeXml(`${label}: ${formatBinary(bytes)} (${bytes} bytes)`)}</text>`);
  });
  lines.push('</svg>');
  return `${lines.join('\n')}\n`;
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
