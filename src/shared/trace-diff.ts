// `minivisor trace diff A B`: where two --trace files first part ways, in words, with the events
// around it. Headers (version, schema, config) are compared first: a different config explains
// a different trace before any event does.
import type { TraceValue } from './trace.js';
import { readTraceFile, type TraceFile } from './trace-file.js';
import { groupThousands } from './thousands.js';

function words(v: TraceValue): string {
  if (v === null || typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return `[${v.map(words).join(', ')}]`;
  return `{${Object.entries(v).map(([k, x]) => `${k} ${words(x)}`).join(', ')}}`;
}

const ENVELOPE = new Set(['seq', 'source', 'type', 'icount', 'stage']);

/** One event in words: "#41 (stage kernel, 1,234,567 instructions) hw tdcall: leaf MEM_PAGE_ACCEPT, status 0x0". */
export function describeEvent(e: Record<string, TraceValue>): string {
  // A hand-made or damaged trace may hold any JSON here: only a count is shown (before, 1.5 ended the command with BigInt's RangeError).
  const icount = typeof e.icount === 'string' && /^0x[0-9a-f]+$/.test(e.icount) ? BigInt(e.icount) : Number.isSafeInteger(e.icount) && (e.icount as number) >= 0 ? BigInt(e.icount as number) : undefined;
  const where = [e.stage !== undefined ? `stage ${String(e.stage)}` : '', icount !== undefined ? `${groupThousands(icount)} instructions` : ''].filter(Boolean);
  const fields = Object.entries(e).filter(([k]) => !ENVELOPE.has(k)).map(([k, v]) => `${k} ${words(v)}`).join(', ');
  return `#${String(e.seq)}${where.length ? ` (${where.join(', ')})` : ''} ${String(e.source)} ${String(e.type)}${fields ? `: ${fields}` : ''}`;
}

function headerDifferences(a: Record<string, unknown> | undefined, b: Record<string, unknown> | undefined): string[] {
  if (!a || !b) return a === b ? [] : [`only ${a ? 'A' : 'B'} has a header line (an older or hand-made trace?)`];
  const out: string[] = [];
  const flat = (h: Record<string, unknown>) => ({ ...h, ...Object.fromEntries(Object.entries((h.config ?? {}) as Record<string, unknown>).map(([k, v]) => [`config.${k}`, v])), config: undefined });
  const fa = flat(a) as Record<string, unknown>;
  const fb = flat(b) as Record<string, unknown>;
  for (const key of new Set([...Object.keys(fa), ...Object.keys(fb)])) {
    if (JSON.stringify(fa[key]) !== JSON.stringify(fb[key])) out.push(`${key}: A ${JSON.stringify(fa[key]) ?? 'absent'}, B ${JSON.stringify(fb[key]) ?? 'absent'}`);
  }
  return out;
}

export interface TraceDiff {
  identical: boolean;
  /** The report, line by line. */
  lines: string[];
}

/** Compares two traces' texts; `context` events are shown on each side of the divergence. */
export function diffTraces(textA: string, textB: string, names: [string, string] = ['A', 'B'], context = 3): TraceDiff {
  const a = readTraceFile(textA, names[0]);
  const b = readTraceFile(textB, names[1]);
  const out: string[] = [];
  const headers = headerDifferences(a.header, b.header);
  if (headers.length) out.push('the headers differ:', ...headers.map((h) => `  ${h}`));
  const n = Math.min(a.lines.length, b.lines.length);
  let i = 0;
  while (i < n && a.lines[i] === b.lines[i]) i++;
  if (i === n && a.lines.length === b.lines.length) {
    out.push(`the ${n} events are identical`);
    return { identical: headers.length === 0, lines: out };
  }
  out.push(`the traces agree on ${i} events and part at event ${i}:`);
  for (let k = Math.max(0, i - context); k < i; k++) out.push(`  both  ${describeEvent(a.events[k]!)}`);
  const side = (t: TraceFile, name: string, label: string) => {
    if (i >= t.lines.length) {
      out.push(`  ${label}     (${name} ends here, after ${t.lines.length} events)`);
      return;
    }
    for (let k = i; k < Math.min(t.lines.length, i + context + 1); k++) out.push(`  ${label}${k === i ? ' >' : '  '}  ${describeEvent(t.events[k]!)}`);
    if (t.lines.length > i + context + 1) out.push(`  ${label}     … ${t.lines.length - i - context - 1} more events`);
  };
  side(a, names[0], 'A');
  side(b, names[1], 'B');
  if (i < n) {
    const ea = a.events[i]!;
    const eb = b.events[i]!;
    const keys = [...new Set([...Object.keys(ea), ...Object.keys(eb)])].filter((k) => JSON.stringify(ea[k]) !== JSON.stringify(eb[k]));
    out.push(`  first difference in ${keys.map((k) => `${k} (A ${ea[k] === undefined ? 'absent' : words(ea[k]!)}, B ${eb[k] === undefined ? 'absent' : words(eb[k]!)})`).join(', ')}`);
  }
  return { identical: false, lines: out };
}
