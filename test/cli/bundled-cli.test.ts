// The CLI's one-file bundle (scripts/bundle-cli.mjs) and its loader (src/cli/bundled-cli.ts):
// the loader runs the bundle only when it is up to date with dist/cli/main.js, keeps a V8 code
// cache per command that is tied to the bundle's exact bytes (through the digest the bundler
// writes on its first line), and the real bundle runs what
// finds files from the package root (a fuzz job's worker thread, the guest SDK).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { isAscii } from 'node:buffer';
import { Script } from 'node:vm';
import { addonMapFile, BUNDLE_DIGEST_MARK, bundleDigest, codeCacheFile, freshBundle, loadBundle, MODULE_WRAPPER, MODULE_WRAPPER_END, runCli } from '../../src/cli/bundled-cli.js';
import { addon } from '../../src/native/binding.js';

/** A clone's dist/cli/ of two tiny CLIs that tell apart which one ran by their exit status. */
function fakeDist(): { dir: string; entry: string; bundle: string } {
  const root = mkdtempSync(join(tmpdir(), 'minivisor-bundled-cli-'));
  writeFileSync(join(root, 'tsconfig.json'), '{}');
  const dir = join(root, 'dist', 'cli');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
  const entry = join(dir, 'main.js');
  writeFileSync(entry, "export async function main(argv) { return argv[1] === 'fail' ? 21 : 20; }\n");
  const bundle = join(dir, 'minivisor.cjs');
  writeFileSync(bundle, "module.exports.main = async (argv) => (argv[1] === 'fail' ? 11 : 0);\n");
  return { dir, entry, bundle };
}

const setMtime = (file: string, seconds: number) => utimesSync(file, seconds, seconds);

describe('the bundled CLI loader', () => {
  it('runs the bundle when it is at least as new as main.js, and the modules when tsc wrote main.js since', async () => {
    const { entry, bundle } = fakeDist();
    setMtime(entry, 1_000_000);
    setMtime(bundle, 1_000_000);
    expect(freshBundle(entry)).toBe(bundle);
    expect(await runCli(entry, ['boot', 'fail'])).toBe(11);
    setMtime(entry, 1_000_001);
    expect(freshBundle(entry)).toBeUndefined();
    expect(await runCli(entry, ['boot', 'fail'])).toBe(21);
  });

  it('runs a package\'s bundle whatever the mtimes its unpacking gave (no tsconfig.json: not a clone)', async () => {
    const { dir, entry, bundle } = fakeDist();
    rmSync(join(dir, '..', '..', 'tsconfig.json'));
    setMtime(bundle, 1_000_000);
    setMtime(entry, 1_000_001);
    expect(freshBundle(entry)).toBe(bundle);
    expect(await runCli(entry, ['boot', 'fail'])).toBe(11);
  });

  it('writes a code cache after a successful command only, tied to the bundle\'s bytes', async () => {
    const { dir, entry, bundle } = fakeDist();
    setMtime(entry, 1_000_000);
    const cache = codeCacheFile(bundle, ['boot']);
    expect(cache).toBe(`${bundle}.boot.v8cache`);
    expect(await runCli(entry, ['boot', 'fail'])).toBe(11);
    expect(existsSync(cache!)).toBe(false);
    expect(await runCli(entry, ['boot'])).toBe(0);
    const hash = (file: string) => createHash('sha256').update(readFileSync(file)).digest();
    const written = readFileSync(cache!);
    expect(written.subarray(0, 32).equals(hash(bundle))).toBe(true);
    expect(written.byteLength).toBeGreaterThan(32);
    // Used as it is: a second run leaves the file alone.
    const before = statSync(cache!).mtimeMs;
    setMtime(cache!, before / 1000 - 10);
    expect(await runCli(entry, ['boot'])).toBe(0);
    expect(statSync(cache!).mtimeMs).toBeLessThan(before);
    // A bundle of the same length but other bytes (V8 would check the length only): the cache is
    // not used, and is rewritten for the new bundle.
    writeFileSync(bundle, "module.exports.main = async (argv) => (argv[1] === 'fail' ? 12 : 0);\n");
    expect(await runCli(entry, ['boot', 'fail'])).toBe(12);
    expect(await runCli(entry, ['boot'])).toBe(0);
    expect(readFileSync(cache!).subarray(0, 32).equals(hash(bundle))).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes('partial'))).toEqual([]);
  });

  it('keys the cache by the digest the bundler wrote on the first line, and hashes a bundle without one', async () => {
    const { entry, bundle } = fakeDist();
    setMtime(entry, 1_000_000);
    const body = "module.exports.main = async (argv) => (argv[1] === 'fail' ? 14 : 0);";
    const written = 'ab'.repeat(32);
    writeFileSync(bundle, `${MODULE_WRAPPER}${BUNDLE_DIGEST_MARK}${written}*/${body}${MODULE_WRAPPER_END}`);
    expect(bundleDigest(bundle, readFileSync(bundle)).toString('hex')).toBe(written);
    expect(await runCli(entry, ['boot', 'fail'])).toBe(14);
    expect(await runCli(entry, ['boot'])).toBe(0);
    expect(readFileSync(codeCacheFile(bundle, ['boot'])!).subarray(0, 32).toString('hex')).toBe(written);
    // Not a digest (too short, not hex): the bytes are hashed.
    for (const line of [`${BUNDLE_DIGEST_MARK}abc*/`, `${BUNDLE_DIGEST_MARK}${'zz'.repeat(32)}*/`]) {
      writeFileSync(bundle, `${MODULE_WRAPPER}${line}${body}${MODULE_WRAPPER_END}`);
      const bytes = readFileSync(bundle);
      expect(bundleDigest(bundle, bytes).equals(createHash('sha256').update(bytes).digest())).toBe(true);
    }
  });

  it('compiles a bundle that is already inside the module wrapper as it is, and wraps one that is not', async () => {
    const { entry, bundle } = fakeDist();
    setMtime(entry, 1_000_000);
    expect(await runCli(entry, ['boot', 'fail'])).toBe(11);
    writeFileSync(bundle, `${MODULE_WRAPPER}module.exports.main = async (argv) => (argv[1] === 'fail' ? 13 : 0);${MODULE_WRAPPER_END}`);
    expect(await runCli(entry, ['boot', 'fail'])).toBe(13);
  });

  it('keeps no cache for what is not a command word', () => {
    expect(codeCacheFile('/x/minivisor.cjs', [])).toBeUndefined();
    expect(codeCacheFile('/x/minivisor.cjs', ['--help'])).toBeUndefined();
    expect(codeCacheFile('/x/minivisor.cjs', ['../../etc'])).toBeUndefined();
    expect(codeCacheFile('/x/minivisor.cjs', ['new-stub', 'dir'])).toBe('/x/minivisor.cjs.new-stub.v8cache');
  });

  it('keeps one cache per platform, which decides half of the code a command runs', () => {
    expect(codeCacheFile('/x/minivisor.cjs', ['boot', '--platform', 'snp', '--json'])).toBe('/x/minivisor.cjs.boot.snp.v8cache');
    expect(codeCacheFile('/x/minivisor.cjs', ['fuzz', '--runs', '5', '--platform=tdx'])).toBe('/x/minivisor.cjs.fuzz.tdx.v8cache');
    expect(codeCacheFile('/x/minivisor.cjs', ['boot', '--json'])).toBe('/x/minivisor.cjs.boot.v8cache');
    // A value that is no plain name keys nothing (the command fails on it anyway).
    expect(codeCacheFile('/x/minivisor.cjs', ['boot', '--platform', '../../etc'])).toBe('/x/minivisor.cjs.boot.v8cache');
    expect(codeCacheFile('/x/minivisor.cjs', ['boot', '--platform'])).toBe('/x/minivisor.cjs.boot.v8cache');
  });

  it('runs from a read-only folder without a cache', async () => {
    const { dir, entry, bundle } = fakeDist();
    setMtime(entry, 1_000_000);
    const cache = codeCacheFile(bundle, ['boot'])!;
    mkdirSync(cache);  // the cache's name is taken by a folder: it cannot be written
    expect(await runCli(entry, ['boot'])).toBe(0);
    expect(statSync(cache).isDirectory()).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes('partial'))).toEqual([]);
  });
});

describe('the bundle and its code cache mapped through the addon', () => {
  const mapFile = addon().mapFile!;

  it('maps a file as a string of its bytes or as a Buffer, and gives undefined for one it cannot map', () => {
    const { dir } = fakeDist();
    const file = join(dir, 'bytes.bin');
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) & 0xff));
    writeFileSync(file, bytes);
    expect(mapFile(file, 'latin1')).toBe(bytes.toString('latin1'));
    expect(mapFile(file, 'bytes')!.equals(bytes)).toBe(true);
    writeFileSync(join(dir, 'empty'), '');
    for (const what of [join(dir, 'empty'), join(dir, 'missing'), dir]) {
      expect(mapFile(what, 'latin1')).toBeUndefined();
      expect(mapFile(what, 'bytes')).toBeUndefined();
    }
    expect(() => (mapFile as (path: string, as: string) => unknown)(file, 'utf8')).toThrow(TypeError);
    expect(() => (mapFile as unknown as (path: number, as: string) => unknown)(1, 'bytes')).toThrow(TypeError);
  });

  it('compiles and runs a mapped bundle with its mapped cache, lazily compiled functions included', () => {
    const { bundle } = fakeDist();
    const body = "const later = (x) => `later ${x}`; module.exports.main = async () => 0; module.exports.later = later;";
    writeFileSync(bundle, `${MODULE_WRAPPER}${BUNDLE_DIGEST_MARK}${'cd'.repeat(32)}*/${body}${MODULE_WRAPPER_END}`);
    const cacheFile = codeCacheFile(bundle, ['boot'])!;
    const first = loadBundle(bundle, cacheFile, mapFile);
    expect(first).toMatchObject({ mapped: true, source: readFileSync(bundle, 'latin1'), cached: undefined });
    expect(first.bundleHash!.toString('hex')).toBe('cd'.repeat(32));
    const script = new Script(first.source, { filename: bundle });
    const run = (s: Script) => {
      const module = { exports: {} as { later?: (x: string) => string } };
      (s.runInThisContext() as (...args: unknown[]) => void)(module.exports, () => undefined, module, bundle, dirname(bundle));
      return module.exports.later!;
    };
    expect(run(script)('call')).toBe('later call');
    writeFileSync(cacheFile, Buffer.concat([first.bundleHash!, script.createCachedData()]));
    const second = loadBundle(bundle, cacheFile, mapFile);
    expect(second.mapped).toBe(true);
    expect(second.cached!.equals(readFileSync(cacheFile).subarray(32))).toBe(true);
    const cachedScript = new Script(second.source, { filename: bundle, cachedData: second.cached });
    expect(cachedScript.cachedDataRejected).toBe(false);
    const later = run(cachedScript);
    expect(later.toString()).toBe('(x) => `later ${x}`');
    expect(later('again')).toBe('later again');
  });

  it('reads a bundle without the digest line, and reads when there is no addon', () => {
    const { entry, bundle } = fakeDist();
    expect(loadBundle(bundle, codeCacheFile(bundle, ['boot']), mapFile)).toMatchObject({ mapped: false, source: readFileSync(bundle, 'latin1') });
    expect(addonMapFile(entry)).toBeUndefined();  // no native/ beside this dist/
    const withDigest = `${MODULE_WRAPPER}${BUNDLE_DIGEST_MARK}${'cd'.repeat(32)}*/module.exports.main = async () => 0;${MODULE_WRAPPER_END}`;
    writeFileSync(bundle, withDigest);
    expect(loadBundle(bundle, undefined, undefined)).toMatchObject({ mapped: false, source: withDigest, bundleHash: undefined });
  });

  it('is how the installed command runs: the bundle is mapped, not read', () => {
    const preload = join(fakeDist().dir, 'maps-at-exit.cjs');
    writeFileSync(preload, "process.on('exit', () => require('node:fs').writeSync(2, '\\n@maps ' + JSON.stringify(require('node:fs').readFileSync('/proc/self/maps', 'latin1')) + '\\n'));");
    const r = spawnSync(process.execPath, ['--require', preload, 'bin/minivisor.js', '--version'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const maps = JSON.parse(/@maps (.*)/.exec(r.stderr)![1]!) as string;
    expect(maps).toContain(freshBundle(join(process.cwd(), 'dist', 'cli', 'main.js'))!);
  });
});

describe('the real bundle', () => {
  const entry = join(process.cwd(), 'dist', 'cli', 'main.js');

  it('is built and up to date (npm install and `npm run build:ts` make it), inside the module wrapper', () => {
    const bundle = freshBundle(entry);
    expect(bundle, 'dist/cli/minivisor.cjs is missing or older than dist/cli/main.js: run `npm run build:ts`').toBeDefined();
    const text = readFileSync(bundle!, 'latin1');
    expect(text.startsWith(MODULE_WRAPPER) && text.endsWith(MODULE_WRAPPER_END)).toBe(true);
    // ASCII, so that its bytes taken as Latin-1 (mapped) are its text.
    expect(isAscii(readFileSync(bundle!))).toBe(true);
    // With its digest on the first line: the SHA-256 of the bundle as it would be without that comment.
    const digest = bundleDigest(bundle!, readFileSync(bundle!)).toString('hex');
    const line = `${BUNDLE_DIGEST_MARK}${digest}*/`;
    expect(text.startsWith(`${MODULE_WRAPPER}${line}`)).toBe(true);
    expect(createHash('sha256').update(text.replace(line, ''), 'latin1').digest('hex')).toBe(digest);
  });

  it('runs a fuzz campaign whose jobs are worker threads on the compiled worker', () => {
    const out = mkdtempSync(join(tmpdir(), 'minivisor-bundled-fuzz-'));
    const r = spawnSync(process.execPath, ['bin/minivisor.js', 'fuzz', '--jobs', '2', '--runs', '2', '--out', out, '--json'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ execs: 2 });
  }, 60_000);
});
