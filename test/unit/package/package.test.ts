// The installable package: what package.json promises exists, the CLI reports its version, and
// the addon finds libunicorn relative to itself (a moved checkout or package keeps working).
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { main } from '../../../src/cli/main.js';
import { addonRpath, linkArguments, wantsStaticLink } from '../../../scripts/unicorn.mjs';

const root = process.cwd();
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  version: string; types: string; files: string[]; exports: Record<string, string | { types: string; default: string }>;
  dependencies: Record<string, string>; scripts: Record<string, string>;
};

describe('package.json', () => {
  it('points every export and its types at built files', () => {
    for (const [name, target] of Object.entries(pkg.exports)) {
      const paths = typeof target === 'string' ? [target] : [target.types, target.default];
      for (const p of paths) expect(existsSync(join(root, p)), `${name} -> ${p}`).toBe(true);
    }
    expect(existsSync(join(root, pkg.types))).toBe(true);
  });

  it('ships what the install step needs from a packed tarball', () => {
    // The addon is loaded by node-gyp-build (a prebuild, or a local build); the from-source fallback
    // uses the node-gyp npm brings to install scripts, so node-gyp is not a runtime dependency.
    expect(pkg.scripts.install).toMatch(/install\.mjs/);
    expect(pkg.scripts.prepack).toMatch(/prebuild\.mjs/);
    expect(pkg.dependencies['node-gyp-build']).toBeDefined();
    expect(pkg.dependencies['node-gyp']).toBeUndefined();
    expect(pkg.files).toContain('native/prebuilds/');
    for (const f of ['dist/', 'bin/', 'native/src/', 'native/binding.gyp', 'scripts/', 'LICENSE', 'NOTICE',
      'firmware/build/firmware.elf', 'guest/build/guest-image.elf']) {
      expect(pkg.files).toContain(f);
      expect(existsSync(join(root, f)), f).toBe(true);
    }
  });
});

describe('minivisor --version', () => {
  it('prints the version from package.json', async () => {
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: () => {}, exitCode: 0 };
    expect(await main(['--version'], io)).toBe(0);
    expect(out).toEqual([pkg.version]);
  });
});

describe('the addon rpath', () => {
  const found = { source: 'test', version: '2.1.4', include: '/x', lib: join(root, '.unicorn/root/usr/lib/x86_64-linux-gnu') };

  it('names a package-local libunicorn relative to the addon', () => {
    expect(addonRpath(found, join(root, 'native/build/Release'))).toBe("'$$ORIGIN/../../../.unicorn/root/usr/lib/x86_64-linux-gnu'");
  });

  it('keeps a system libunicorn at its absolute folder', () => {
    expect(addonRpath({ ...found, lib: '/usr/lib/x86_64-linux-gnu' })).toBe('/usr/lib/x86_64-linux-gnu');
  });

  it('links libunicorn.so through that rpath, or libunicorn.a without one for the prebuild', () => {
    expect(linkArguments(found, false)).toEqual([`-L${found.lib}`, "-Wl,-rpath,'$$ORIGIN/../../../.unicorn/root/usr/lib/x86_64-linux-gnu'", '-lunicorn']);
    expect(() => linkArguments({ ...found, lib: '/nonexistent' }, true)).toThrow(/no libunicorn\.a in \/nonexistent/);
  });

  it('links libunicorn.a in whenever it is there, unless MINIVISOR_UNICORN_STATIC says otherwise', () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-unicorn-lib-'));
    const withArchive = { ...found, lib: dir };
    expect(wantsStaticLink(withArchive, {})).toBe(false);
    writeFileSync(join(dir, 'libunicorn.a'), '');
    expect(wantsStaticLink(withArchive, {})).toBe(true);
    expect(wantsStaticLink(withArchive, { MINIVISOR_UNICORN_STATIC: '0' })).toBe(false);
    expect(wantsStaticLink({ ...found, lib: '/nonexistent' }, { MINIVISOR_UNICORN_STATIC: '1' })).toBe(true);
    expect(linkArguments(withArchive, wantsStaticLink(withArchive, {}))).toContain(join(dir, 'libunicorn.a'));
  });

  it('is not an absolute path into the checkout in the built addon', () => {
    const r = spawnSync('readelf', ['-d', join(root, 'native/build/Release/minivisor.node')], { encoding: 'utf8' });
    if (r.status !== 0) return;  // no binutils: nothing to inspect
    const runpath = r.stdout.match(/R(?:UN)?PATH\).*\[(.*)\]/)?.[1] ?? '';
    expect(runpath).not.toContain(root);
  });
});
