// Locates a Chromium for the browser test (test/browser/): /usr/bin/chromium when the machine has
// Debian's package installed, else Debian's `chromium` package and the libraries this machine
// lacks, fetched into a project-local folder (.chromium/) the way scripts/unicorn.mjs fetches
// libunicorn. We never touch the machine's apt configuration: apt-get reads the machine's own
// sources (so the packages match its release and its installed libraries) but keeps its package
// lists and downloads inside .chromium/, and resolves dependencies against the machine's dpkg
// status, so only what is missing is downloaded. A browser build from anywhere else cannot be
// fetched on these machines, which is why no npm "browser download" step is used.
//
// Fetched by the browser test itself (its beforeAll), not by `npm install`: the browser is a
// test tool, and `npm install minivisor` must not download ~120 MB for a library user. Not in a
// vitest globalSetup either: that runs for every `npx vitest run test/some.test.ts`, which does
// not need a browser. On a clean checkout the fetch takes seconds (apt from the Debian mirror,
// dpkg -x), inside the npm test budget; later runs find .chromium/ and skip it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missingAptTool } from './unicorn.mjs';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const localDir = join(projectRoot, '.chromium');
const SYSTEM_CHROMIUM = '/usr/lib/chromium/chromium';
const PACKAGED_BINARY = 'usr/lib/chromium/chromium';
const INSTALL_HINT = 'install Debian\'s chromium package (apt-get install chromium) or make a Debian mirror reachable';

function fail(message) {
  throw new Error(`chromium: ${message}`);
}

// Every folder under `root` that holds a shared library: the unpacked packages' usr/lib/<triplet>,
// their private subfolders (pulseaudio/) and chromium's own folder.
function libraryDirs(root) {
  const dirs = [];
  const walk = (dir, depth) => {
    if (depth > 4) return;
    let entries;
    try { entries = readdirSync(dir, { withFileTypes: true }); } catch { return; }
    if (entries.some((e) => !e.isDirectory() && /\.so(\.\d+)*$/.test(e.name))) dirs.push(dir);
    for (const e of entries) if (e.isDirectory()) walk(join(dir, e.name), depth + 1);
  };
  for (const top of ['lib', 'usr/lib']) walk(join(root, top), 0);
  return dirs;
}

/** { executablePath, env, source } for a usable Chromium, or null. */
export function findChromium(dir = localDir) {
  // Debian's /usr/bin/chromium is a shell wrapper; the browser proper is /usr/lib/chromium/chromium.
  if (existsSync(SYSTEM_CHROMIUM)) return { executablePath: SYSTEM_CHROMIUM, env: {}, source: 'system (Debian chromium package)' };
  const root = join(dir, 'root');
  const executablePath = join(root, PACKAGED_BINARY);
  if (!existsSync(executablePath)) return null;
  const libs = libraryDirs(root);
  const inherited = process.env.LD_LIBRARY_PATH ? [process.env.LD_LIBRARY_PATH] : [];
  return { executablePath, env: { LD_LIBRARY_PATH: [...libs, ...inherited].join(':') }, source: `project-local Debian packages in ${dir}` };
}

function fetchFromDebian(log) {
  const missing = missingAptTool();
  if (missing) fail(`no Chromium found and ${missing} is not available to fetch one: ${INSTALL_HINT}`);
  // A scratch folder renamed into place: a failed fetch never leaves a half-unpacked .chromium/.
  const work = `${localDir}.fetch-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  for (const d of ['lists/partial', 'cache/archives/partial', 'root']) mkdirSync(join(work, d), { recursive: true });
  const aptArgs = [
    '-o', `Dir::State::Lists=${join(work, 'lists')}`, '-o', `Dir::Cache=${join(work, 'cache')}`,
    // Only our private folders are written: no lock on the machine's dpkg or apt state is needed.
    '-o', 'Debug::NoLocking=true', '-o', 'APT::Sandbox::User=root', '-q',
  ];
  const apt = (args) => spawnSync('apt-get', [...aptArgs, ...args], { encoding: 'utf8' });
  const last = (r) => (r.error?.message ?? (r.stderr || r.stdout)).trim().split('\n').pop();
  try {
    log(`fetching Debian's chromium and the libraries this machine lacks into ${localDir}`);
    const update = apt(['update']);
    if (update.status !== 0) fail(`apt-get update failed: ${last(update)}; ${INSTALL_HINT}`);
    const download = apt(['install', '--download-only', '--no-install-recommends', '-y', 'chromium']);
    if (download.status !== 0) fail(`apt-get could not download chromium: ${last(download)}; ${INSTALL_HINT}`);
    const archives = join(work, 'cache/archives');
    for (const deb of readdirSync(archives).filter((f) => f.endsWith('.deb'))) {
      const x = spawnSync('dpkg', ['-x', join(archives, deb), join(work, 'root')], { encoding: 'utf8' });
      if (x.status !== 0) fail(`dpkg -x ${deb} failed: ${x.stderr.trim()}`);
    }
    if (!existsSync(join(work, 'root', PACKAGED_BINARY))) fail(`the downloaded packages hold no ${PACKAGED_BINARY}`);
    // The downloads are not needed once unpacked.
    rmSync(join(work, 'cache'), { recursive: true, force: true });
    rmSync(localDir, { recursive: true, force: true });
    renameSync(work, localDir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const found = findChromium();
  if (!found) fail(`unpacked into ${localDir} but no usable chromium is there`);
  return found;
}

function sleepMs(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Whether the process that took `lock` is gone (it was killed mid-fetch): then the lock is stale. */
function lockIsStale(lock) {
  let pid;
  try { pid = Number(readFileSync(join(lock, 'pid'), 'utf8')); } catch { return false; }  // being taken
  try { process.kill(pid, 0); return false; } catch (err) { return err.code === 'ESRCH'; }
}

// Two browser test files can start at once on a clean checkout (vitest runs two files in
// parallel): the first takes the lock (an atomic mkdir) and fetches; the other waits until the
// fetched browser is in place instead of fetching it a second time into the same folder.
function fetchOnce(log) {
  const lock = `${localDir}.lock`;
  const giveUpAt = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    if (lockIsStale(lock)) { rmSync(lock, { recursive: true, force: true }); continue; }
    const found = findChromium();
    if (found) return found;
    if (Date.now() > giveUpAt) fail(`another process has been fetching Chromium for 10 minutes (remove ${lock} if none is)`);
    sleepMs(500);
  }
  try {
    writeFileSync(join(lock, 'pid'), String(process.pid));
    return findChromium() ?? fetchFromDebian(log);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** A Chromium, fetched from Debian into .chromium/ when the machine has none. */
export function ensureChromium(log = console.log) {
  return findChromium() ?? fetchOnce(log);
}

// `node scripts/chromium.mjs` fetches (if needed) and prints where the browser is.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    console.log(JSON.stringify(ensureChromium((m) => console.error(m))));
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
}
