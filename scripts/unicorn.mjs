// Locates libunicorn >= 2.1 for the native addon, fetching Debian trixie's packages into a
// project-local folder when the machine has no suitable library. See README "Unicorn".
//
// Why not bookworm's 2.0.1: it ignores guest page tables, aborts past ~4095 memory regions and
// has no TLB-fill hook (../shared/reference/unicorn.md). Trixie's 2.1.1 packages depend only on
// libc6 (>= 2.34), so they run on bookworm. We never touch the machine's apt sources: apt-get is
// pointed at a private sources list, list directory and cache inside .unicorn/.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const localDir = join(projectRoot, '.unicorn');
const localRoot = join(localDir, 'root');
const MIN_VERSION = [2, 1];

function versionAtLeast(text, min) {
  const parts = text.trim().split(/[.-]/).map((p) => parseInt(p, 10));
  for (let i = 0; i < min.length; i++) {
    const v = parts[i] ?? 0;
    if (v !== min[i]) return v > min[i];
  }
  return true;
}

function systemUnicorn() {
  const r = spawnSync('pkg-config', ['--modversion', 'unicorn'], { encoding: 'utf8' });
  if (r.status !== 0 || !versionAtLeast(r.stdout, MIN_VERSION)) return null;
  const flag = (what) => spawnSync('pkg-config', [what, 'unicorn'], { encoding: 'utf8' }).stdout.trim();
  const include = flag('--variable=includedir');
  const lib = flag('--variable=libdir');
  return { source: `system (pkg-config ${r.stdout.trim()})`, include, lib };
}

function localUnicorn() {
  const include = join(localRoot, 'usr/include');
  const lib = join(localRoot, 'usr/lib/x86_64-linux-gnu');
  if (!existsSync(join(include, 'unicorn/unicorn.h')) || !existsSync(join(lib, 'libunicorn.so.2'))) return null;
  return { source: `project-local Debian trixie packages in ${localDir}`, include, lib };
}

function fail(message) {
  const err = new Error(message);
  err.minivisorInstall = true;
  throw err;
}

function fetchFromDebian(log) {
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) {
    fail('libunicorn >= 2.1 was not found and apt-get is not available to fetch it. ' +
      'Install libunicorn 2.1 or later (pkg-config name "unicorn"), or run on Debian.');
  }
  const sources = readdirSync('/etc/apt/sources.list.d').filter((f) => f.endsWith('.sources'))
    .map((f) => join('/etc/apt/sources.list.d', f));
  let mirror = null;
  for (const file of sources) {
    const m = execFileSync('sed', ['-n', 's/^URIs: *//p', file], { encoding: 'utf8' }).split('\n')[0];
    if (m) { mirror = m.trim().split(/\s+/)[0]; break; }
  }
  if (!mirror) fail('could not find a Debian mirror in /etc/apt/sources.list.d/*.sources to fetch libunicorn 2.1 from');
  rmSync(localDir, { recursive: true, force: true });
  for (const d of ['lists/partial', 'cache/archives/partial', 'debs']) mkdirSync(join(localDir, d), { recursive: true });
  const list = join(localDir, 'sources.list');
  writeFileSync(list, `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror} trixie main\n`);
  const aptArgs = [
    '-o', `Dir::Etc::SourceList=${list}`, '-o', 'Dir::Etc::SourceParts=/dev/null',
    '-o', `Dir::State::Lists=${join(localDir, 'lists')}`, '-o', `Dir::Cache=${join(localDir, 'cache')}`,
    '-o', 'APT::Sandbox::User=root', '-q',
  ];
  log(`fetching libunicorn 2.1 (Debian trixie) from ${mirror} into ${localDir}`);
  const run = (args, cwd) => {
    const r = spawnSync('apt-get', [...aptArgs, ...args], { cwd, encoding: 'utf8' });
    if (r.status !== 0) fail(`apt-get ${args.join(' ')} failed:\n${r.stderr || r.stdout}`);
  };
  run(['update']);
  run(['download', 'libunicorn2t64', 'libunicorn-dev'], join(localDir, 'debs'));
  for (const deb of readdirSync(join(localDir, 'debs')).filter((f) => f.endsWith('.deb'))) {
    execFileSync('dpkg', ['-x', join(localDir, 'debs', deb), localRoot]);
  }
  const found = localUnicorn();
  if (!found) fail(`libunicorn packages were downloaded but ${localRoot} does not hold unicorn.h and libunicorn.so.2`);
  return found;
}

export function findUnicorn() {
  return systemUnicorn() ?? localUnicorn();
}

export function ensureUnicorn(log = console.log) {
  return findUnicorn() ?? fetchFromDebian(log);
}

// `node scripts/unicorn.mjs include|lib` prints a path for binding.gyp.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const found = findUnicorn();
  if (!found) {
    console.error('libunicorn >= 2.1 not found; run `npm install` first');
    process.exit(1);
  }
  const what = process.argv[2];
  if (what === 'include') console.log(found.include);
  else if (what === 'lib') console.log(found.lib);
  else console.log(JSON.stringify(found));
}
