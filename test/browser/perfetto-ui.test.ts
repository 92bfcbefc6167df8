/// <reference lib="dom" />
// A default boot's `--trace FILE.json` opened in the Perfetto UI itself (issue 13: "a Perfetto trace
// of a default boot opens in the Perfetto UI"). ui.perfetto.dev cannot be reached from these
// machines, so the UI's release bundle comes from npm (scripts/perfetto-ui.mjs says which package
// and why) and is served from this process on 127.0.0.1, in Debian's Chromium driven by
// playwright-core. The trace goes through Perfetto's own import (its JSON tokenizer and parser in
// trace_processor.wasm) and track building; the test then reads what the UI holds: its import-error
// count (what it shows a user as "import errors"), the tracks it made, and, through the UI's own
// query engine, the slices on them, checked against the boot's --json numbers.
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureChromium } from '../../scripts/chromium.mjs';
import { ensurePerfettoUi, type FoundPerfettoUi } from '../../scripts/perfetto-ui.mjs';
import { main } from '../../src/cli/main.js';
import { toChromeTrace, type ChromeTrace } from '../../src/view/perfetto.js';
import { capture } from '../helpers/captured-io.js';

interface BootJson {
  stages: string[];
  guestInstructions: number;
  traceEvents: number;
  acceptCalls: Record<'4K' | '2M', number>;
  acceptCallsCompleted: Record<'4K' | '2M', number>;
}

const boots = new Map<string, Promise<{ result: BootJson; trace: Buffer }>>();
/**
 * A boot with nothing but the platform chosen, its trace written as FILE.json. A default boot is
 * deterministic, so the Perfetto and the Catapult tests share the one TDX boot.
 */
function defaultBoot(platform: 'tdx' | 'snp'): Promise<{ result: BootJson; trace: Buffer }> {
  if (!boots.has(platform)) boots.set(platform, bootOnce(platform));
  return boots.get(platform)!;
}

async function bootOnce(platform: 'tdx' | 'snp'): Promise<{ result: BootJson; trace: Buffer }> {
  const file = join(mkdtempSync(join(tmpdir(), 'mv-perfetto-ui-')), 'boot.json');
  const io = capture();
  expect(await main(['boot', '--platform', platform, '--json', '--trace', file], io), io.stderr.join('\n')).toBe(0);
  return { result: JSON.parse(io.stdout[0]!) as BootJson, trace: readFileSync(file) };
}

// The UI probes 127.0.0.1:9001 for a native trace_processor_shell (its "accelerator") and would use
// one if it answered; the test refuses that address so the trace always goes through the UI's own
// WebAssembly engine, and the refused probe is the one console error the UI itself says to ignore.
const ACCELERATOR = 'http://127.0.0.1:9001/';
const CONTENT_TYPES: Record<string, string> = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.png': 'image/png', '.woff2': 'font/woff2', '.html': 'text/html' };

let ui: FoundPerfettoUi;
let browser: Browser;
let server: Server;
let origin: string;
const traces = new Map<string, Buffer>();

/** `/?trace=NAME`: a page that boots the UI on /trace/NAME; /ui/...: the UI's files; /trace/NAME: a trace. */
function serve(url: URL): { type: string; body: Buffer | string } | undefined {
  // Asked for by the browser on its own; an empty answer instead of a 404 in the console.
  if (url.pathname === '/favicon.ico') return { type: 'image/x-icon', body: '' };
  if (url.pathname === '/') {
    // The package's bootstrap (see scripts/perfetto-ui.mjs): the trace URL in #timeline_data_source.
    const trace = `${origin}/trace/${url.searchParams.get('trace')}`;
    return { type: 'text/html', body: `<!doctype html><html><head><meta charset="utf-8"><title>minivisor trace</title></head><body><div id="timeline_data_source" hidden>${trace}</div><div id="timeline_main"></div><script src="/ui/frontend_bundle.js"></script></body></html>` };
  }
  if (url.pathname.startsWith('/trace/')) {
    const body = traces.get(url.pathname.slice('/trace/'.length));
    return body && { type: 'application/json', body };
  }
  if (url.pathname.startsWith('/ui/')) {
    const file = normalize(join(ui.root, url.pathname.slice('/ui/'.length)));
    if (!file.startsWith(ui.root + '/')) return undefined;
    try { return { type: CONTENT_TYPES[extname(file)] ?? 'application/octet-stream', body: readFileSync(file) }; } catch { return undefined; }
  }
  return undefined;
}

beforeAll(async () => {
  // A clean checkout fetches Debian's chromium and the UI package (seconds on a mirror).
  const found = ensureChromium((m) => console.log(m));
  ui = ensurePerfettoUi((m) => console.log(m));
  server = createServer((req, res) => {
    const hit = serve(new URL(req.url ?? '/', origin));
    res.writeHead(hit ? 200 : 404, hit ? { 'content-type': hit.type } : {});
    res.end(hit?.body);
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  const address = server.address();
  origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  browser = await chromium.launch({ executablePath: found.executablePath, env: { ...process.env, ...found.env }, args: ['--no-sandbox', '--disable-gpu'] });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((closed) => (server ? server.close(closed) : closed(undefined)));
});

/** The UI's state as the page holds it (window.globals, which the UI sets for debugging). */
interface UiState { engineReady: boolean; traceErrors: number | undefined; tracks: { name: string; kind: string }[]; groups: { name: string; collapsed: boolean }[]; trackElements: number }

async function uiState(page: Page): Promise<UiState> {
  return page.evaluate(() => {
    const g = (window as unknown as { globals: { state: { engines: Record<string, { ready: boolean }>; tracks: Record<string, { name: string; kind: string }>; trackGroups: Record<string, { name: string; collapsed: boolean }> }; traceErrors?: number } }).globals;
    return {
      engineReady: g.state.engines['0']?.ready === true,
      traceErrors: g.traceErrors,
      tracks: Object.values(g.state.tracks).map((t) => ({ name: t.name, kind: t.kind })),
      groups: Object.values(g.state.trackGroups).map((t) => ({ name: t.name, collapsed: t.collapsed })),
      trackElements: document.querySelectorAll('#timeline_main .track').length,
    };
  });
}

/** Runs `query` in the UI's engine the way its omnibox query box does, and returns the rows. */
async function sql(page: Page, query: string): Promise<Record<string, string | number>[]> {
  const result = await page.evaluate(async (q) => {
    const w = window as unknown as { globals: { queryResults: Map<string, { error?: string; rows: Record<string, string | number>[] }>; dispatch(a: unknown): void }; Actions: { executeQuery(a: unknown): unknown } };
    w.globals.queryResults.delete('minivisor-test');
    w.globals.dispatch(w.Actions.executeQuery({ engineId: '0', queryId: 'minivisor-test', query: q }));
    for (;;) {
      const r = w.globals.queryResults.get('minivisor-test');
      if (r) return { error: r.error, rows: r.rows };
      await new Promise((later) => setTimeout(later, 20));
    }
  }, query);
  if (result.error) throw new Error(`Perfetto query failed: ${result.error}\n${query}`);
  return result.rows;
}

async function openInPerfetto(name: string, trace: Buffer): Promise<{ page: Page; errors: string[] }> {
  traces.set(name, trace);
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error' && !m.location().url.startsWith(ACCELERATOR)) errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.route(`${ACCELERATOR}**`, (route) => route.abort('connectionrefused'));
  await page.goto(`${origin}/?trace=${name}`);
  // Loaded: the engine has the trace, the UI made its tracks and counted the import errors.
  await page.waitForFunction(() => {
    const g = (window as unknown as { globals?: { state: { engines: Record<string, { ready: boolean }>; tracks: object }; traceErrors?: number } }).globals;
    return g?.state.engines['0']?.ready === true && Object.keys(g.state.tracks).length > 0 && g.traceErrors !== undefined;
  }, null, { timeout: 60_000 });
  return { page, errors };
}

const STAGE_TRACK = 'guest boot stages';

describe.each([
  { platform: 'tdx' as const, accept: 'accept' },
  { platform: 'snp' as const, accept: 'pvalidate' },
])('a default $platform boot\'s --trace FILE.json in the Perfetto UI', ({ platform, accept }) => {
  it('imports with no error, one track per source, every accept call and the stage spans on the instruction clock', async () => {
    const { result, trace } = await defaultBoot(platform);
    const written = JSON.parse(trace.toString('utf8')) as ChromeTrace;
    const { page, errors } = await openInPerfetto(`${platform}.json`, trace);
    const state = await uiState(page);

    // No import error: the count the UI shows, and the engine's error stats by name.
    expect(state.engineReady).toBe(true);
    expect(await sql(page, "select name, value from stats where severity in ('error', 'data_loss') and value > 0")).toEqual([]);
    expect(state.traceErrors).toBe(0);

    // One process, and a slice track per source that has events (the guest's own events are its
    // stages, on their own track), named as the file names them, shown on the page.
    const threadName = (tid: number) => String(written.traceEvents.find((e) => e.ph === 'M' && e.name === 'thread_name' && e.tid === tid)!.args!.name);
    const tidsWithEvents = [...new Set(written.traceEvents.filter((e) => e.ph !== 'M').map((e) => e.tid))].sort();
    expect(tidsWithEvents.map(threadName)).toEqual([expect.stringMatching(/^hardware/), expect.stringMatching(/^VMM/), STAGE_TRACK]);
    expect(state.groups).toEqual([{ name: 'minivisor guest 1', collapsed: false }]);
    const sliceTracks = state.tracks.filter((t) => t.kind === 'ChromeSliceTrack').map((t) => t.name).sort();
    expect(sliceTracks).toEqual(tidsWithEvents.map((tid) => `${threadName(tid)} ${tid}`).sort());
    expect(state.trackElements).toBe(sliceTracks.length);

    // Every trace event is one slice, on its source's track.
    const perThread = await sql(page, 'select t.tid as tid, count(*) as n from slice s join thread_track tt on s.track_id = tt.id join thread t using (utid) group by t.tid order by t.tid');
    expect(perThread).toEqual(tidsWithEvents.map((tid) => ({ tid, n: written.traceEvents.filter((e) => e.ph !== 'M' && e.tid === tid).length })));
    expect(perThread.reduce((n, r) => n + Number(r.n), 0)).toBe(result.traceEvents);

    // The accept calls as the boot counted them: issued, and completed.
    const accepts = Object.fromEntries((await sql(page, "select name, count(*) as n from slice where category = 'accept' group by name")).map((r) => [r.name, r.n]));
    const issued = (size: '4K' | '2M') => Object.entries(accepts).filter(([name]) => name.startsWith(`${accept} ${size} `)).reduce((n, [, c]) => n + Number(c), 0);
    for (const size of ['4K', '2M'] as const) {
      expect(issued(size)).toBe(result.acceptCalls[size]);
      expect(accepts[`${accept} ${size} ok`] ?? 0).toBe(result.acceptCallsCompleted[size]);
    }

    // The boot stages as consecutive spans on the stage track, on the guest-instruction clock (one
    // instruction per µs; Perfetto keeps ns): the last ends at the boot's instruction count, which
    // is also where the UI's timeline ends.
    const stages = await sql(page, `select s.name as name, s.ts as ts, s.dur as dur from slice s join thread_track tt on s.track_id = tt.id join thread t using (utid) where t.name = '${STAGE_TRACK}' order by s.ts`);
    expect(stages.map((s) => s.name)).toEqual(result.stages);
    for (let i = 1; i < stages.length; i++) expect(stages[i]!.ts).toBe(Number(stages[i - 1]!.ts) + Number(stages[i - 1]!.dur));
    const last = stages.at(-1)!;
    expect(Number(last.ts) + Number(last.dur)).toBe(result.guestInstructions * 1000);
    expect(await sql(page, 'select end_ts from trace_bounds')).toEqual([{ end_ts: result.guestInstructions * 1000 }]);

    expect(errors).toEqual([]);
    await page.close();
  });
});

// The Perfetto UI's "Open with legacy UI" hands a trace to the Catapult trace viewer it ships
// (assets/catapult_trace_viewer.html: chrome://tracing's viewer; Debian's Chromium 156 has
// chrome://tracing itself disabled, "Internal debugging pages are currently disabled"). It is the
// other importer of the format, and it reads ts as µs whatever displayTimeUnit says.
describe('a default tdx boot\'s --trace FILE.json in the Catapult trace viewer the Perfetto UI ships', () => {
  it('imports with no warning, the same slices per track, and the stage spans on the instruction clock', async () => {
    const { result, trace } = await defaultBoot('tdx');
    const written = JSON.parse(trace.toString('utf8')) as ChromeTrace;
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${origin}/ui/assets/catapult_trace_viewer.html`);
    // What the Perfetto UI does (openBufferWithLegacyTraceViewer): setActiveTrace on the profiling view.
    await page.waitForFunction(() => typeof (document.querySelector('x-profiling-view') as unknown as { setActiveTrace?: unknown } | null)?.setActiveTrace === 'function', null, { timeout: 60_000 });
    const model = await page.evaluate(async (text) => {
      type Slice = { title: string; category: string; start: number; duration: number };
      type Model = { importWarnings?: { message: string }[]; processes: Record<string, { threads: Record<string, { tid: number; name: string; sliceGroup: { slices: Slice[] } }> }>; bounds: { max: number } };
      const view = document.querySelector('x-profiling-view') as unknown as { setActiveTrace(name: string, data: string): void; timelineView?: { model?: Model } };
      view.setActiveTrace('boot.json', text);
      let m: Model | undefined;
      while (!(m = view.timelineView?.model) || Object.keys(m.processes).length === 0) await new Promise((later) => setTimeout(later, 50));
      return {
        warnings: (m.importWarnings ?? []).map((w) => w.message),
        processes: Object.keys(m.processes).length,
        threads: Object.values(m.processes).flatMap((p) => Object.values(p.threads)).map((t) => ({
          tid: t.tid, name: t.name, slices: t.sliceGroup.slices.length,
          stages: t.sliceGroup.slices.filter((sl) => sl.category === 'stage').map((sl) => ({ name: sl.title, start: sl.start, duration: sl.duration })),
        })).sort((a, b) => a.tid - b.tid),
        end: m.bounds.max,
      };
    }, trace.toString('utf8'));

    expect(model.warnings).toEqual([]);
    expect(model.processes).toBe(1);
    const tids = [...new Set(written.traceEvents.filter((e) => e.ph !== 'M').map((e) => e.tid))].sort();
    expect(model.threads.map((t) => ({ tid: t.tid, slices: t.slices }))).toEqual(tids.map((tid) => ({ tid, slices: written.traceEvents.filter((e) => e.ph !== 'M' && e.tid === tid).length })));
    // Catapult keeps ms: one instruction per µs is 0.001 ms.
    const stages = model.threads.find((t) => t.name === STAGE_TRACK)!.stages;
    expect(stages.map((st) => st.name)).toEqual(result.stages);
    const last = stages.at(-1)!;
    expect(last.start + last.duration).toBeCloseTo(result.guestInstructions / 1000, 6);
    expect(model.end).toBeCloseTo(result.guestInstructions / 1000, 6);
    expect(errors).toEqual([]);
    await page.close();
  });
});

describe('the import-error check', () => {
  it('sees what Perfetto rejects: an event without a timestamp counts as an import error', async () => {
    const events = [
      { seq: 0, source: 'guest', type: 'stage', stage: 'firmware', instructions: 10 },
      { seq: 1, source: 'hw', type: 'td-exit', instructions: 20 },
      { seq: 2, source: 'vmm', type: 'map-gpa', instructions: 30 },
    ];
    const good = toChromeTrace(events);
    const broken = { ...good, traceEvents: good.traceEvents.map((e) => (e.name === 'map-gpa' ? { ...e, ts: undefined } : e)) };
    const { page } = await openInPerfetto('broken.json', Buffer.from(JSON.stringify(broken)));
    expect(await sql(page, "select name, value from stats where severity in ('error', 'data_loss') and value > 0")).toEqual([{ name: 'json_tokenizer_failure', value: 1 }]);
    expect((await uiState(page)).traceErrors).toBe(1);
    await page.close();
  });
});
