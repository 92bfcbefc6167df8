// Fetches Debian's cloud kernel (a real x86 bzImage) into a project-local cache, .linux/, for
// `minivisor boot --linux` (issue 15). On demand only: `npm run fetch:linux`, or the kernel test
// (test/linux/, its beforeAll), as the browser test fetches Chromium; not `npm install`: the
// package is about 14 MB, and a library user does not need it.
//
// The version is resolved, never hard-coded: the meta-package linux-image-cloud-amd64 depends
// on linux-image-<abi>-cloud-amd64; in testing that package is itself a meta-package whose
// linux-binary-<abi>-cloud-amd64 dependency holds vmlinuz (in older suites the image package
// holds it). Like scripts/unicorn.mjs, apt is pointed at a private sources list and cache, so the
// machine's apt sources are never touched; the mirrors come from the machine's own apt
// configuration (debianMirrors), then deb.debian.org.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEBIAN_KEYRING, fetchIntoPlace, missingAptTool, privateApt } from './unicorn.mjs';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const linuxCacheDir = join(projectRoot, '.linux');
export const META_PACKAGE = 'linux-image-cloud-amd64';
const SUITES = ['testing', 'unstable'];

/** The package names of `apt-cache depends` output's "Depends:" lines (alternatives included). */
export function dependsOf(text) {
  return [...String(text).matchAll(/^\s*\|?Depends:\s*<?([^\s>]+)>?/gm)].map((m) => m[1]);
}

/**
 * From the meta-package's dependencies to the package that holds vmlinuz: the versioned image
 * package, or its linux-binary-<abi> dependency when it has one. `dependsOfPackage(name)` gives
 * the names a package depends on. Returns { abi, image, binary } or an explanation string.
 */
export function resolveKernelPackage(dependsOfPackage, meta = META_PACKAGE) {
  const flavour = meta.replace(/^linux-image-/, '');
  const image = dependsOfPackage(meta).find((d) => d.startsWith('linux-image-') && d.endsWith(`-${flavour}`) && d !== meta && !d.endsWith('-dbg'));
  if (!image) return `${meta} depends on no linux-image-<abi>-${flavour} package`;
  const abi = image.slice('linux-image-'.length, -`-${flavour}`.length);
  const binary = dependsOfPackage(image).find((d) => d === `linux-binary-${abi}-${flavour}`);
  return { abi, image, binary: binary ?? image };
}

/** The vmlinuz inside an unpacked kernel package: usr/lib/modules/<abi>/vmlinuz or boot/vmlinuz-<abi>. */
export function findVmlinuz(root) {
  const modules = join(root, 'usr/lib/modules');
  if (existsSync(modules)) {
    for (const abi of readdirSync(modules)) if (existsSync(join(modules, abi, 'vmlinuz'))) return join(modules, abi, 'vmlinuz');
  }
  const boot = join(root, 'boot');
  if (existsSync(boot)) {
    const found = readdirSync(boot).find((f) => f.startsWith('vmlinuz-'));
    if (found) return join(boot, found);
  }
  return null;
}

/** The cached kernel ({ vmlinuz, package, version, abi, sha256, mirror, suite }) or null. */
export function localKernel(dir = linuxCacheDir) {
  try {
    const info = JSON.parse(readFileSync(join(dir, 'kernel.json'), 'utf8'));
    const vmlinuz = join(dir, info.vmlinuz);
    return existsSync(vmlinuz) ? { ...info, vmlinuz } : null;
  } catch {
    return null;
  }
}

function tryFetch(mirror, suite, work, log, keyring) {
  const apt = privateApt(mirror, suite, work, keyring);
  log(`resolving ${META_PACKAGE} in Debian ${suite} at ${mirror}`);
  const update = apt('apt-get', ['update']);
  if (update.status !== 0) return `apt-get update failed: ${(update.stderr || update.stdout).trim().split('\n').pop()}`;
  const resolved = resolveKernelPackage((name) => dependsOf(apt('apt-cache', ['depends', name]).stdout ?? ''));
  if (typeof resolved === 'string') return resolved;
  const version = (apt('apt-cache', ['policy', resolved.binary]).stdout ?? '').match(/Candidate:\s*(\S+)/)?.[1];
  if (!version || version === '(none)') return `${suite} has no candidate for ${resolved.binary}`;
  log(`downloading ${resolved.binary} ${version}`);
  const download = apt('apt-get', ['download', `${resolved.binary}=${version}`], join(work, 'debs'));
  if (download.status !== 0) return `apt-get download failed: ${(download.stderr || download.stdout).trim().split('\n').pop()}`;
  const deb = readdirSync(join(work, 'debs')).find((f) => f.endsWith('.deb'));
  if (!deb) return 'apt-get download produced no .deb';
  const x = spawnSync('dpkg', ['-x', join(work, 'debs', deb), join(work, 'root')], { encoding: 'utf8' });
  if (x.status !== 0) return `dpkg -x ${deb} failed: ${x.stderr.trim()}`;
  const vmlinuz = findVmlinuz(join(work, 'root'));
  if (!vmlinuz) return `${resolved.binary} ${version} holds no vmlinuz`;
  const name = `vmlinuz-${resolved.abi}`;
  copyFileSync(vmlinuz, join(work, name));
  const sha256 = createHash('sha256').update(readFileSync(vmlinuz)).digest('hex');
  writeFileSync(join(work, 'kernel.json'), `${JSON.stringify({ vmlinuz: name, package: resolved.binary, version, abi: resolved.abi, sha256, mirror, suite }, null, 2)}\n`);
  for (const scratch of ['root', 'debs', 'lists', 'cache', 'sources.list']) rmSync(join(work, scratch), { recursive: true, force: true });
  return null;
}

/** Fetches the current cloud kernel into `dir` (replacing what is there); returns localKernel(dir). */
export function fetchLinuxKernel(log = console.log, dir = linuxCacheDir) {
  const missing = missingAptTool();
  if (missing) throw new Error(`${missing} is not available to fetch Debian's cloud kernel (a Debian/Ubuntu host with apt is needed)`);
  if (!existsSync(DEBIAN_KEYRING)) throw new Error(`${DEBIAN_KEYRING} is missing (apt-get install debian-archive-keyring)`);
  const tried = fetchIntoPlace(SUITES, `${dir}.fetch-${process.pid}`, dir, tryFetch, log);
  if (!tried) return localKernel(dir);
  throw new Error(`could not fetch Debian's cloud kernel (${tried.join('; ')})`);
}

/** The cached kernel, fetched first when .linux/ has none; throws (saying why) when it cannot be fetched. */
export function ensureLinuxKernel(log = console.log, dir = linuxCacheDir) {
  return localKernel(dir) ?? fetchLinuxKernel(log, dir);
}

// `node scripts/linux-kernel.mjs [--if-missing]`: fetch (or keep) the kernel, print where it is.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const log = (m) => console.error(`fetch-linux: ${m}`);
    const kernel = process.argv.includes('--if-missing') ? ensureLinuxKernel(log) : fetchLinuxKernel(log);
    console.log(`${kernel.vmlinuz} (${kernel.package} ${kernel.version}, sha256 ${kernel.sha256})`);
  } catch (err) {
    console.error(`fetch-linux: ${err.message}`);
    process.exit(1);
  }
}
