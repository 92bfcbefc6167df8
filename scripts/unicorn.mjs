// Locates libunicorn >= 2.1.4 for the native addon, fetching Debian testing's (or unstable's)
// packages into a project-local folder when the machine has no suitable library. See README
// "Unicorn".
//
// Why 2.1.4 and nothing older: 2.0.1 ignores guest page tables, aborts past ~4095 memory regions
// and has no TLB-fill hook (../shared/reference/unicorn.md); 2.1.1 kills the host process
// (SIGSEGV/SIGBUS in tb_set_jmp_target) once its translation buffer fills, which a
// self-modifying or fuzzed guest reaches in seconds. Debian's 2.1.4 packages depend only on
// libc6 (>= 2.34), so they run on bookworm. We never touch the machine's apt sources: apt-get is
// pointed at a private sources list, list directory and cache inside .unicorn/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync, renameSync } from 'node:fs';
import { join, resolve, dirname, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const localDir = join(projectRoot, '.unicorn');
export const MIN_VERSION = [2, 1, 4];
const MIN_TEXT = MIN_VERSION.join('.');
export const WHY_MIN_VERSION = 'Unicorn before 2.1.4 kills the host process (SIGSEGV/SIGBUS in tb_set_jmp_target) ' +
  'when its translation buffer fills, which self-modifying or fuzzed guests reach quickly';
const INSTALL_HINT = `install libunicorn-dev >= ${MIN_TEXT} (pkg-config name "unicorn"; Debian testing/unstable ` +
  `package libunicorn-dev) or make a Debian mirror reachable, then run \`npm install\` again`;
// Debian suites that carry 2.1.4 (forky/testing and sid/unstable ship 2.1.4-4), tried in order.
const SUITES = ['testing', 'unstable'];
export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const FALLBACK_MIRROR = 'http://deb.debian.org/debian';

export function versionAtLeast(text, min = MIN_VERSION) {
  const parts = String(text).trim().split(/[.~+-]/).map((p) => parseInt(p, 10));
  for (let i = 0; i < min.length; i++) {
    const v = Number.isFinite(parts[i]) ? parts[i] : 0;
    if (v !== min[i]) return v > min[i];
  }
  return true;
}

function fail(message) {
  const err = new Error(message);
  err.minivisorInstall = true;
  throw err;
}

export function systemUnicorn(log = () => {}) {
  const r = spawnSync('pkg-config', ['--modversion', 'unicorn'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  const version = r.stdout.trim();
  if (!versionAtLeast(version)) {
    log(`ignoring the system libunicorn ${version} found by pkg-config: ${WHY_MIN_VERSION}`);
    return null;
  }
  const flag = (what) => spawnSync('pkg-config', [what, 'unicorn'], { encoding: 'utf8' }).stdout.trim();
  return { source: `system (pkg-config ${version})`, version, include: flag('--variable=includedir'), lib: flag('--variable=libdir') };
}

// The version a unicorn.h declares (UC_API_MAJOR/MINOR/PATCH), or null.
export function headerVersion(header) {
  if (!existsSync(header)) return null;
  const text = readFileSync(header, 'utf8');
  const get = (name) => text.match(new RegExp(`#define\\s+${name}\\s+(\\d+)`))?.[1];
  const parts = ['UC_API_MAJOR', 'UC_API_MINOR', 'UC_API_PATCH'].map(get);
  return parts.every((p) => p !== undefined) ? parts.join('.') : null;
}

// The library folder inside an unpacked package root: usr/lib/<multiarch triplet> for whatever
// architecture apt fetched (x86_64-linux-gnu, aarch64-linux-gnu, ...), or plain usr/lib.
export function packagedLibDir(root) {
  const usrLib = join(root, 'usr/lib');
  if (!existsSync(usrLib)) return null;
  const dirs = [usrLib, ...readdirSync(usrLib, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => join(usrLib, d.name))];
  return dirs.find((d) => existsSync(join(d, 'libunicorn.so.2'))) ?? null;
}

export function localUnicorn(dir = localDir) {
  const root = join(dir, 'root');
  const include = join(root, 'usr/include');
  const version = headerVersion(join(include, 'unicorn/unicorn.h'));
  const lib = packagedLibDir(root);
  if (!version || !lib || !versionAtLeast(version)) return null;
  return { source: `project-local Debian packages (${version}) in ${dir}`, version, include, lib };
}

// ---- finding a Debian mirror in the machine's own apt configuration ----

// One-line format: `deb [opt=val ...] URI suite [component...]`.
function parseOneLine(text) {
  const out = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = line.match(/^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)/);
    if (!m) continue;
    out.push({ uris: [m[2]], suites: [m[3]], signedBy: (m[1] ?? '').match(/signed-by=(\S+)/)?.[1] ?? '' });
  }
  return out;
}

// deb822 format: stanzas separated by blank lines, with Types/URIs/Suites/Signed-By/Enabled.
function parseDeb822(text) {
  const out = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = {};
    let last = null;
    for (const raw of stanza.split('\n')) {
      if (/^\s*#/.test(raw)) continue;
      const m = raw.match(/^([A-Za-z-]+):\s*(.*)$/);
      if (m) { last = m[1].toLowerCase(); fields[last] = m[2].trim(); } else if (last && /^\s/.test(raw)) fields[last] += ` ${raw.trim()}`;
    }
    if (!(fields.types ?? '').split(/\s+/).includes('deb') || /^(no|false)$/i.test(fields.enabled ?? '')) continue;
    out.push({ uris: (fields.uris ?? '').split(/\s+/).filter(Boolean), suites: (fields.suites ?? '').split(/\s+/).filter(Boolean), signedBy: fields['signed-by'] ?? '' });
  }
  return out;
}

const DEBIAN_SUITE = /^(buster|bullseye|bookworm|trixie|forky|duke|sid|stable|testing|unstable|oldstable|experimental)(-updates|-backports)?$/;

// Where a fetch looks: the apt configuration that names the mirrors, the keyring their Release
// files must be signed with, and the mirror tried last. The machine's by default;
// test/package/unicorn-apt-fetch.test.ts points all three at a fake /etc/apt and a local mirror.
export const MACHINE_APT_SOURCES = Object.freeze({ etcApt: '/etc/apt', keyring: DEBIAN_KEYRING, fallback: FALLBACK_MIRROR });

// Mirrors of the Debian archive named in `etcApt` (sources.list, sources.list.d/*.list and
// *.sources, in apt's order), then `fallback`. Repositories without a Debian suite name or the
// Debian keyring are skipped, and so are security ones: they do not carry testing/unstable's
// main. A third-party one that names a Debian suite is kept and simply lacks the package.
export function debianMirrors(etcApt = MACHINE_APT_SOURCES.etcApt, fallback = MACHINE_APT_SOURCES.fallback) {
  const entries = [];
  const read = (file) => { try { return readFileSync(file, 'utf8'); } catch { return ''; } };
  entries.push(...parseOneLine(read(join(etcApt, 'sources.list'))));
  const partsDir = join(etcApt, 'sources.list.d');
  const parts = existsSync(partsDir) ? readdirSync(partsDir).sort() : [];
  for (const f of parts) {
    if (f.endsWith('.list')) entries.push(...parseOneLine(read(join(partsDir, f))));
    else if (f.endsWith('.sources')) entries.push(...parseDeb822(read(join(partsDir, f))));
  }
  const mirrors = [];
  for (const e of entries) {
    const debian = e.suites.some((s) => DEBIAN_SUITE.test(s)) || /debian-archive-keyring/.test(e.signedBy);
    if (!debian) continue;
    for (const uri of e.uris) {
      const clean = uri.replace(/\/+$/, '');
      if (/-security$|-ports$|debian-debug$/.test(clean) || !/^https?:\/\//.test(clean)) continue;
      if (!mirrors.includes(clean)) mirrors.push(clean);
    }
  }
  if (!mirrors.includes(fallback)) mirrors.push(fallback);
  return mirrors;
}

// ---- fetching ----

/**
 * apt-get / apt-cache confined to `work`: a sources list naming only `mirror suite main` signed
 * by `keyring`, and private list, cache and download folders (work/debs), so the machine's apt
 * state is untouched. Returns `apt(cmd, args, cwd)`; the caller runs `apt('apt-get', ['update'])` first.
 */
export function privateApt(mirror, suite, work, keyring = DEBIAN_KEYRING) {
  rmSync(work, { recursive: true, force: true });
  for (const d of ['lists/partial', 'cache/archives/partial', 'debs']) mkdirSync(join(work, d), { recursive: true });
  const list = join(work, 'sources.list');
  writeFileSync(list, `deb [signed-by=${keyring}] ${mirror} ${suite} main\n`);
  const aptArgs = [
    '-o', `Dir::Etc::SourceList=${list}`, '-o', 'Dir::Etc::SourceParts=/dev/null',
    '-o', `Dir::State::Lists=${join(work, 'lists')}`, '-o', `Dir::Cache=${join(work, 'cache')}`,
    '-o', 'APT::Sandbox::User=root', '-q',
  ];
  return (cmd, args, cwd) => spawnSync(cmd, [...aptArgs, ...args], { cwd, encoding: 'utf8' });
}

/** The first of apt-get, apt-cache and dpkg that is not available, or undefined. */
export function missingAptTool() {
  return ['apt-get', 'apt-cache', 'dpkg'].find((cmd) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status !== 0);
}

function tryFetch(mirror, suite, work, log, keyring) {
  const apt = privateApt(mirror, suite, work, keyring);
  log(`fetching libunicorn ${MIN_TEXT} (Debian ${suite}) from ${mirror}`);
  const update = apt('apt-get', ['update']);
  if (update.status !== 0) return `apt-get update failed: ${(update.stderr || update.stdout).trim().split('\n').pop()}`;
  const policy = apt('apt-cache', ['policy', 'libunicorn-dev']).stdout ?? '';
  const candidate = policy.match(/Candidate:\s*(\S+)/)?.[1];
  if (!candidate || candidate === '(none)') return `${suite} has no libunicorn-dev`;
  if (!versionAtLeast(candidate)) return `${suite} has libunicorn-dev ${candidate}, older than ${MIN_TEXT}`;
  const download = apt('apt-get', ['download', `libunicorn2t64=${candidate}`, `libunicorn-dev=${candidate}`], join(work, 'debs'));
  if (download.status !== 0) return `apt-get download failed: ${(download.stderr || download.stdout).trim().split('\n').pop()}`;
  for (const deb of readdirSync(join(work, 'debs')).filter((f) => f.endsWith('.deb'))) {
    const x = spawnSync('dpkg', ['-x', join(work, 'debs', deb), join(work, 'root')], { encoding: 'utf8' });
    if (x.status !== 0) return `dpkg -x ${deb} failed: ${x.stderr.trim()}`;
  }
  return localUnicorn(work) ? null : `the ${candidate} packages hold no usable unicorn.h and libunicorn.so.2`;
}

/**
 * Tries each Debian mirror of `sources` and each suite in turn with
 * `tryFetch(mirror, suite, work, log, keyring)`, which returns a problem or null once `work`
 * holds the fetch, and renames the first success into `dir`. The fetch goes to a scratch folder
 * first, so a failed one never leaves a half-unpacked `dir`. Returns null on success, else what
 * was tried.
 */
export function fetchIntoPlace(suites, work, dir, tryFetch, log, sources = MACHINE_APT_SOURCES) {
  const tried = [];
  try {
    for (const mirror of debianMirrors(sources.etcApt, sources.fallback)) {
      for (const suite of suites) {
        const problem = tryFetch(mirror, suite, work, log, sources.keyring);
        if (!problem) {
          rmSync(dir, { recursive: true, force: true });
          mkdirSync(dirname(dir), { recursive: true });
          renameSync(work, dir);
          return null;
        }
        tried.push(`${mirror} ${suite}: ${problem}`);
        log(`  ${problem}`);
        if (/update failed/.test(problem)) break;  // an unreachable mirror fails for every suite
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return tried;
}

/**
 * Fetches Debian's libunicorn packages into `dir` (root/ holds them unpacked) from the mirrors
 * `sources` names, and returns the library found there; or stops with one message naming every
 * mirror and suite tried and what to install.
 */
export function fetchUnicorn(dir, log, sources = MACHINE_APT_SOURCES) {
  // Fetched into a scratch folder and renamed into place, so a failed fetch never leaves a
  // half-unpacked .unicorn/ that a later build would take for a library.
  const tried = fetchIntoPlace(SUITES, `${dir}.fetch-${process.pid}`, dir, tryFetch, log, sources);
  if (!tried) return localUnicorn(dir);
  fail(`could not fetch libunicorn >= ${MIN_TEXT} from Debian (${tried.join('; ')}): ${INSTALL_HINT}`);
}

function fetchFromDebian(log) {
  const missing = missingAptTool();
  if (missing) fail(`libunicorn >= ${MIN_TEXT} was not found and ${missing} is not available to fetch it: ${INSTALL_HINT}`);
  if (!existsSync(DEBIAN_KEYRING)) fail(`libunicorn >= ${MIN_TEXT} was not found and ${DEBIAN_KEYRING} is missing to fetch it (apt-get install debian-archive-keyring), or ${INSTALL_HINT}`);
  log(`fetching into ${localDir}`);
  return fetchUnicorn(localDir, log);
}

export function findUnicorn(log = () => {}) {
  return systemUnicorn(log) ?? localUnicorn();
}

export function ensureUnicorn(log = console.log) {
  return findUnicorn(log) ?? fetchFromDebian(log);
}

// Where the addon (native/build/Release/minivisor.node) finds libunicorn at run time. A library
// inside the package (.unicorn/) is named relative to the addon ($ORIGIN, ld.so(8)), so the
// checkout or the installed package can be moved; a system library keeps its absolute folder.
// The `$$` and quotes survive make and the shell, which is what node-gyp's Makefile passes it through.
export function addonRpath(found, addonDir = join(projectRoot, 'native', 'build', 'Release')) {
  const inside = !relative(projectRoot, found.lib).startsWith('..');
  return inside ? `'$$ORIGIN${sep}${relative(addonDir, found.lib)}'` : found.lib;
}

// The static archive Debian's libunicorn-dev ships beside the shared library, or null.
export function staticArchive(found) {
  const archive = join(found.lib, 'libunicorn.a');
  return existsSync(archive) ? archive : null;
}

// Whether the addon links libunicorn.a in: MINIVISOR_UNICORN_STATIC=1 asks for it (the prebuilt
// addon, scripts/prebuild.mjs: it then needs no libunicorn on the user's machine), =0 for the shared
// library; otherwise whenever the archive is there (Debian's libunicorn-dev ships it). Loading
// libunicorn.so.2 costs every process ~6 ms more: it is linked with BIND_NOW, and its ~7,500 PLT
// relocations are each a symbol lookup (20M instructions in ld.so per `minivisor boot`, issue 11).
export function wantsStaticLink(found, env = process.env) {
  if (env.MINIVISOR_UNICORN_STATIC === '1' || env.MINIVISOR_UNICORN_STATIC === '0') return env.MINIVISOR_UNICORN_STATIC === '1';
  return staticArchive(found) !== null;
}

// The linker arguments for binding.gyp, one per line: libunicorn.so.2 through the rpath above, or
// libunicorn.a linked in (wantsStaticLink), with --exclude-libs keeping Unicorn's (and QEMU's)
// symbols out of the addon's dynamic symbol table. libunicorn.pc's Libs.private are -lpthread -lm.
export function linkArguments(found, staticLink = wantsStaticLink(found)) {
  if (!staticLink) return [`-L${found.lib}`, `-Wl,-rpath,${addonRpath(found)}`, '-lunicorn'];
  const archive = staticArchive(found);
  if (!archive) fail(`a static link was asked for (MINIVISOR_UNICORN_STATIC=1) but ${found.source} has no libunicorn.a in ${found.lib}`);
  // --no-relax: Debian's archive is assembled by a newer binutils that marks `push foo@GOTPCREL`
  // with R_X86_64_GOTPCRELX; bookworm's ld 2.40 "relaxes" that push into `addr32 call foo`, and
  // helper_le_ldq_mmu_x86_64 then calls itself until the stack overflows (the first guest load).
  return ['-Wl,--no-relax', '-Wl,--exclude-libs,ALL', archive, '-lpthread', '-lm'];
}

// `node scripts/unicorn.mjs include|lib|rpath|libs` prints what binding.gyp needs.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const found = findUnicorn();
  if (!found) {
    console.error(`libunicorn >= ${MIN_TEXT} not found (${WHY_MIN_VERSION}); run \`npm install\` first`);
    process.exit(1);
  }
  const what = process.argv[2];
  if (what === 'include') console.log(found.include);
  else if (what === 'lib') console.log(found.lib);
  else if (what === 'rpath') console.log(addonRpath(found));
  else if (what === 'libs') {
    try {
      // gyp splits `<!@(...)` output with shlex, which would strip the rpath's quotes: quote again.
      console.log(linkArguments(found).map((a) => (/['\s]/.test(a) ? `"${a}"` : a)).join('\n'));
    } catch (err) {
      console.error(err.message);
      process.exit(1);
    }
  }
  else console.log(JSON.stringify(found));
}
