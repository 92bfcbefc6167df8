// The build-from-source fallback's Debian fetch (scripts/unicorn.mjs), end to end: mirror
// discovery in an apt configuration, the private apt-get update/policy/download, dpkg -x and the
// library lookup, run against a fake /etc/apt and a local HTTP mirror that this test serves. The
// mirror holds two tiny packages made with dpkg-deb and a Release file signed with a key made for
// the run (gpg), as Debian's archive is; the machine's apt configuration is never written, and
// nothing reaches the network. The edge cases of issue 12: a one-line sources.list; several
// *.sources where the first is a third-party repository without the package; a library in a
// multiarch folder other than x86_64-linux-gnu.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, normalize, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
const tools = ['apt-get', 'apt-cache', 'dpkg', 'dpkg-deb', 'gpg'];
const missing = tools.filter((t) => spawnSync(t, ['--version'], { stdio: 'ignore' }).status !== 0);
const TRIPLET = 'aarch64-linux-gnu';  // not x86_64-linux-gnu: the lookup must not assume it
const VERSION = '2.1.4-4';

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** A .deb with `files` (path -> text) and a minimal control file, made by dpkg-deb. */
function makeDeb(dir: string, name: string, files: Record<string, string>): string {
  const tree = join(dir, `${name}-tree`);
  mkdirSync(join(tree, 'DEBIAN'), { recursive: true });
  writeFileSync(join(tree, 'DEBIAN/control'), `Package: ${name}\nVersion: ${VERSION}\nArchitecture: amd64\nMaintainer: test <test@example.invalid>\nDescription: stand-in for Debian's ${name}\n`);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(tree, path, '..'), { recursive: true });
    writeFileSync(join(tree, path), text);
  }
  const deb = join(dir, `${name}_${VERSION}_amd64.deb`);
  run('dpkg-deb', ['-Znone', '--root-owner-group', '--build', tree, deb]);
  return deb;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/**
 * A signed apt repository under `base`: for each suite, dists/<suite>/main/binary-amd64/Packages
 * listing `debs` (copied into pool/), and an InRelease clear-signed with the GNUPGHOME's key.
 */
function makeRepository(base: string, suites: Record<string, string[]>, gnupg: NodeJS.ProcessEnv): void {
  for (const [suite, debs] of Object.entries(suites)) {
    const stanzas = debs.map((deb) => {
      const bytes = readFileSync(deb);
      const pool = `pool/main/${deb.split('/').pop()}`;
      mkdirSync(join(base, 'pool/main'), { recursive: true });
      writeFileSync(join(base, pool), bytes);
      const control = run('dpkg-deb', ['--field', deb]).trimEnd();
      return `${control}\nFilename: ${pool}\nSize: ${bytes.length}\nSHA256: ${sha256(bytes)}\n`;
    });
    const dist = join(base, 'dists', suite);
    mkdirSync(join(dist, 'main/binary-amd64'), { recursive: true });
    const packages = Buffer.from(stanzas.join('\n'));
    writeFileSync(join(dist, 'main/binary-amd64/Packages'), packages);
    const release = [
      'Origin: minivisor test', `Suite: ${suite}`, `Codename: ${suite}`, 'Date: Tue, 01 Dec 2026 00:00:00 UTC',
      'Architectures: amd64', 'Components: main', 'SHA256:', ` ${sha256(packages)} ${packages.length} main/binary-amd64/Packages`, '',
    ].join('\n');
    writeFileSync(join(dist, 'Release'), release);
    run('gpg', ['--batch', '--yes', '--clearsign', '-o', join(dist, 'InRelease'), join(dist, 'Release')], gnupg);
  }
}

/** Serves `dir` over HTTP on 127.0.0.1; 404 for anything missing. Counts requests per top folder. */
function serve(dir: string): Promise<{ server: Server; url: string; hits: Map<string, number> }> {
  const hits = new Map<string, number>();
  const server = createServer((req, res) => {
    const path = normalize(join(dir, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
    const top = relative(dir, path).split('/')[0] ?? '';
    hits.set(top, (hits.get(top) ?? 0) + 1);
    if (relative(dir, path).startsWith('..') || !existsSync(path) || !statSync(path).isFile()) {
      res.writeHead(404).end();
      return;
    }
    const body = readFileSync(path);
    res.writeHead(200, { 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    resolve({ server, url: `http://127.0.0.1:${port}`, hits });
  }));
}

/**
 * Runs the fetch in a child process (apt-get runs synchronously there, while this process serves
 * the mirror) and returns what it printed and the found library, or the one error message.
 */
function fetchWith(sources: { etcApt: string; keyring: string; fallback: string }, dir: string): Promise<{ log: string; found?: { version: string; lib: string; include: string }; error?: string }> {
  const script = `
    const m = await import(${JSON.stringify(join(root, 'scripts/unicorn.mjs'))});
    const lines = [];
    try {
      const found = m.fetchUnicorn(${JSON.stringify(dir)}, (l) => lines.push(l), ${JSON.stringify(sources)});
      console.log(JSON.stringify({ log: lines.join('\\n'), found }));
    } catch (err) {
      if (!err.minivisorInstall) throw err;
      console.log(JSON.stringify({ log: lines.join('\\n'), error: err.message }));
    }`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`fetch exited ${code}: ${err}`))));
  });
}

function etcApt(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'minivisor-etc-apt-'));
  mkdirSync(join(dir, 'sources.list.d'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe.skipIf(missing.length > 0)(`the Debian fetch against a local mirror${missing.length ? ` (skipped: no ${missing.join(', ')})` : ''}`, () => {
  const work = mkdtempSync(join(tmpdir(), 'minivisor-apt-fetch-'));
  const keyring = join(work, 'mirror-keyring.gpg');
  let mirror: Awaited<ReturnType<typeof serve>>;
  let debian: string, thirdParty: string, nowhere: string;

  beforeAll(async () => {
    const gnupg = { ...process.env, GNUPGHOME: join(work, 'gnupg') };
    mkdirSync(gnupg.GNUPGHOME, { mode: 0o700 });
    run('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', 'minivisor test mirror <mirror@example.invalid>', 'ed25519', 'sign', 'never'], gnupg);
    writeFileSync(keyring, spawnSync('gpg', ['--batch', '--export'], { env: gnupg }).stdout);
    const debs = join(work, 'debs');
    mkdirSync(debs);
    const library = makeDeb(debs, 'libunicorn2t64', { [`usr/lib/${TRIPLET}/libunicorn.so.2`]: 'not a real library\n' });
    const headers = makeDeb(debs, 'libunicorn-dev', {
      'usr/include/unicorn/unicorn.h': '#define UC_API_MAJOR 2\n#define UC_API_MINOR 1\n#define UC_API_PATCH 4\n',
      [`usr/lib/${TRIPLET}/libunicorn.a`]: '!<arch>\n',
    });
    const other = makeDeb(debs, 'some-tool', { 'usr/bin/some-tool': '#!/bin/sh\n' });
    const served = join(work, 'www');
    // Debian: testing lacks the package (as if it had been removed there), unstable has it.
    makeRepository(join(served, 'debian'), { testing: [other], unstable: [library, headers, other] }, gnupg);
    // A third-party repository naming a Debian suite (like Docker's `bookworm stable`), without the package.
    makeRepository(join(served, 'vendor'), { testing: [other], unstable: [other] }, gnupg);
    mirror = await serve(served);
    debian = `${mirror.url}/debian`;
    thirdParty = `${mirror.url}/vendor`;
    nowhere = `${mirror.url}/nowhere`;
  }, 60_000);

  // The machine's own apt state: the fetch keeps its lists and downloads in private folders.
  const machineApt = ['/var/lib/apt/lists', '/var/cache/apt/archives'].filter((d) => existsSync(d));
  const machineAptBefore = machineApt.map((d) => readdirSync(d).sort());

  afterAll(() => {
    mirror?.server.close();
    // gpg started an agent for the test's key: stop it (it would outlive the run) and drop the scratch folder.
    spawnSync('gpgconf', ['--homedir', join(work, 'gnupg'), '--kill', 'gpg-agent']);
    rmSync(work, { recursive: true, force: true });
  });


  const expectFetched = (r: Awaited<ReturnType<typeof fetchWith>>, dir: string) => {
    expect(r.error, r.log).toBeUndefined();
    expect(r.found).toMatchObject({ version: '2.1.4', lib: join(dir, 'root/usr/lib', TRIPLET), include: join(dir, 'root/usr/include') });
    expect(readFileSync(join(dir, 'root/usr/lib', TRIPLET, 'libunicorn.so.2'), 'utf8')).toBe('not a real library\n');
    expect(readdirSync(join(dir, '..'))).toEqual(['.unicorn']);  // the scratch fetch folder is gone
  };

  it('a one-line /etc/apt/sources.list: finds the mirror there, falls back from testing to unstable, and unpacks the aarch64-linux-gnu library', async () => {
    const dir = join(work, 'one-line', '.unicorn');
    const sources = { etcApt: etcApt({ 'sources.list': `# the machine's mirror\ndeb [arch=amd64] ${debian} bookworm main\n` }), keyring, fallback: nowhere };
    const r = await fetchWith(sources, dir);
    expectFetched(r, dir);
    expect(r.log).toMatch(new RegExp(`from ${debian}\\b[\\s\\S]*testing has no libunicorn-dev[\\s\\S]*Debian unstable\\) from ${debian}`));
  }, 60_000);

  it('several *.sources with a third-party repository first: it is tried, lacks the package, and the Debian one after it serves', async () => {
    const dir = join(work, 'deb822', '.unicorn');
    const sources = {
      etcApt: etcApt({
        'sources.list.d/00-vendor.sources': `Types: deb\nURIs: ${thirdParty}\nSuites: bookworm\nComponents: stable\nSigned-By: /usr/share/keyrings/vendor.gpg\n`,
        'sources.list.d/debian.sources': `Types: deb\nURIs: ${debian}\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
      }),
      keyring, fallback: nowhere,
    };
    const before = mirror.hits.get('vendor') ?? 0;
    const r = await fetchWith(sources, dir);
    expectFetched(r, dir);
    expect(mirror.hits.get('vendor')! - before).toBeGreaterThan(0);
    expect(r.log.indexOf(thirdParty)).toBeLessThan(r.log.indexOf(`unstable) from ${debian}`));
    expect(r.log).toMatch(/unstable has no libunicorn-dev/);
  }, 60_000);

  it('no mirror with the package: one clear message that names every try and what to install, and no half-made folder', async () => {
    const dir = join(work, 'none', '.unicorn');
    const sources = { etcApt: etcApt({ 'sources.list.d/00-vendor.sources': `Types: deb\nURIs: ${thirdParty}\nSuites: bookworm\n` }), keyring, fallback: nowhere };
    const r = await fetchWith(sources, dir);
    expect(r.found).toBeUndefined();
    expect(r.error).toMatch(new RegExp(`^could not fetch libunicorn >= 2\\.1\\.4 from Debian \\(${thirdParty} testing: testing has no libunicorn-dev; ${thirdParty} unstable: unstable has no libunicorn-dev; ${nowhere} testing: apt-get update failed: .*\\): install libunicorn-dev >= 2\\.1\\.4`));
    expect(existsSync(dir)).toBe(false);
  }, 60_000);

  it('a mirror whose Release is not signed by the expected key is refused', async () => {
    const dir = join(work, 'unsigned', '.unicorn');
    const r = await fetchWith({ etcApt: etcApt({ 'sources.list': `deb ${debian} bookworm main\n` }), keyring: join(root, 'package.json'), fallback: nowhere }, dir);
    expect(r.error).toMatch(new RegExp(`${debian} testing: apt-get update failed: .*(not signed|NO_PUBKEY|signature|keyring)`, 'i'));
    expect(existsSync(dir)).toBe(false);
  }, 60_000);

  it('leaves the machine\'s apt lists and package cache as they were', () => {
    expect(machineApt.map((d) => readdirSync(d).sort())).toEqual(machineAptBefore);
  });
});
