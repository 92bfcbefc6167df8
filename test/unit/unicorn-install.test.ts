// The install step must end on libunicorn >= 2.1.4 or stop with one clear message: 2.1.1 kills the
// host process when its translation buffer fills (README "Unicorn"). These tests build fake apt
// configurations, package roots and libraries; none of them touches the network or the machine's apt.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { debianMirrors, localUnicorn, packagedLibDir, versionAtLeast } from '../../scripts/unicorn.mjs';
import { unicornVersion } from '../../src/cpu/machine.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'minivisor-unicorn-'));

function fakeEtcApt(files: Record<string, string>): string {
  const dir = scratch();
  mkdirSync(join(dir, 'sources.list.d'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function fakePackageRoot(version: [number, number, number], triplet: string): string {
  const dir = scratch();
  mkdirSync(join(dir, 'root/usr/include/unicorn'), { recursive: true });
  mkdirSync(join(dir, 'root/usr/lib', triplet), { recursive: true });
  writeFileSync(join(dir, 'root/usr/include/unicorn/unicorn.h'),
    `#define UC_API_MAJOR ${version[0]}\n#define UC_API_MINOR ${version[1]}\n#define UC_API_PATCH ${version[2]}\n`);
  writeFileSync(join(dir, 'root/usr/lib', triplet, 'libunicorn.so.2'), '');
  return dir;
}

describe('Unicorn version floor', () => {
  it('accepts 2.1.4 and later, refuses what is older', () => {
    for (const ok of ['2.1.4', '2.1.4-4', '2.1.10', '2.2.0', '3.0']) expect(versionAtLeast(ok), ok).toBe(true);
    for (const old of ['2.1.1', '2.1.3', '2.0.1.post1', '2.1', '1.0.3']) expect(versionAtLeast(old), old).toBe(false);
  });

  it('the loaded library is at least 2.1.4', () => {
    expect(versionAtLeast(unicornVersion())).toBe(true);
  });

  it('ignores a project-local 2.1.1 so the next install fetches 2.1.4', () => {
    expect(localUnicorn(fakePackageRoot([2, 1, 1], 'x86_64-linux-gnu'))).toBeNull();
    expect(localUnicorn(fakePackageRoot([2, 1, 4], 'x86_64-linux-gnu'))?.version).toBe('2.1.4');
  });

  it('finds the library in a non-x86_64 multiarch folder', () => {
    const dir = fakePackageRoot([2, 1, 4], 'aarch64-linux-gnu');
    expect(packagedLibDir(join(dir, 'root'))).toBe(join(dir, 'root/usr/lib/aarch64-linux-gnu'));
    expect(localUnicorn(dir)?.lib).toBe(join(dir, 'root/usr/lib/aarch64-linux-gnu'));
  });

  it('refuses an older system library found by pkg-config, saying why', () => {
    const bin = scratch();
    writeFileSync(join(bin, 'pkg-config'), '#!/bin/sh\necho 2.1.1\n');
    chmodSync(join(bin, 'pkg-config'), 0o755);
    const script = `import('${join(process.cwd(), 'scripts/unicorn.mjs')}').then((m) => { const r = m.systemUnicorn(console.log); console.log(JSON.stringify(r)); })`;
    const out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, encoding: 'utf8' });
    expect(out).toMatch(/ignoring the system libunicorn 2\.1\.1 found by pkg-config: Unicorn before 2\.1\.4 kills the host process/);
    expect(out.trim().split('\n').pop()).toBe('null');
  });

  it('the addon refuses to load a libunicorn older than 2.1.4', () => {
    // A stand-in libunicorn.so.2 whose uc_version reports 2.1.1, and the addon linked against it
    // from this build's objects: the build itself links libunicorn.a in when it has it
    // (scripts/unicorn.mjs wantsStaticLink), which no library path can swap. The addon binds its
    // other symbols lazily, so the version check at load is the first and only call.
    const dir = scratch();
    writeFileSync(join(dir, 'fake.c'), 'unsigned uc_version(unsigned *a, unsigned *b) { if (a) *a = 2; if (b) *b = 1; return 0x020101ffu; }\n');
    execFileSync('gcc', ['-shared', '-fPIC', '-Wl,-soname,libunicorn.so.2', '-o', join(dir, 'libunicorn.so.2'), join(dir, 'fake.c')]);
    const objects = join(process.cwd(), 'native/build/Release/obj.target/minivisor/src');
    const addon = join(dir, 'minivisor.node');
    execFileSync('g++', ['-shared', '-o', addon, ...readdirSync(objects).filter((f) => f.endsWith('.o')).map((f) => join(objects, f)), join(dir, 'libunicorn.so.2')]);
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addon)})`], { env: { ...process.env, LD_LIBRARY_PATH: dir }, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.signal).toBeNull();
    expect(r.stderr).toMatch(/the loaded libunicorn is 2\.1\.1; minivisor needs 2\.1\.4 or later/);
  });
});

describe('Debian mirror discovery for the private apt fetch', () => {
  const debianStanza = 'Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n';
  const securityStanza = 'Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n';

  it('reads a one-line /etc/apt/sources.list', () => {
    const etc = fakeEtcApt({ 'sources.list': '# comment\ndeb-src http://src.example/debian bookworm main\ndeb [arch=amd64] http://one.example/debian/ bookworm main\n' });
    expect(debianMirrors(etc)).toEqual(['http://one.example/debian', 'http://deb.debian.org/debian']);
  });

  it('skips a third-party *.sources file that sorts first, and security repositories', () => {
    const etc = fakeEtcApt({
      'sources.list.d/aaa-nodesource.sources': 'Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n',
      'sources.list.d/debian.sources': `${debianStanza}\n${securityStanza}`,
      'sources.list.d/zzz-disabled.sources': 'Types: deb\nURIs: http://off.example/debian\nSuites: trixie\nEnabled: no\n',
    });
    expect(debianMirrors(etc)).toEqual(['http://mirror.example/debian', 'http://deb.debian.org/debian']);
  });

  it('falls back to deb.debian.org when the machine names no Debian mirror', () => {
    expect(debianMirrors(fakeEtcApt({}))).toEqual(['http://deb.debian.org/debian']);
  });
});
