// Builds the prebuilt addon the package ships: native/prebuilds/linux-x64/minivisor.glibc.node,
// made by prebuildify (Node-API, so one build serves every Node >= 20) with libunicorn.a linked in
// statically, and found at run time by node-gyp-build (src/native/binding.ts). `npm pack` runs it
// (the "prepack" script), so a packed tarball always carries a prebuild of the current source.
//
// Why static: the addon then needs nothing beyond glibc >= 2.34 and libstdc++ (GCC >= 11) on the
// user's machine, no libunicorn and no rpath. The price is GPL-2.0 for that binary: NOTICE says so.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureUnicorn, staticArchive } from './unicorn.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const PREBUILD_DIR = join(root, 'native', 'prebuilds', `${process.platform}-${process.arch}`);
const log = (msg) => console.log(`minivisor prebuild: ${msg}`);

function fail(message) {
  console.error(`minivisor prebuild: ${message}`);
  process.exit(1);
}

const unicorn = ensureUnicorn(log);
if (!staticArchive(unicorn)) {
  fail(`${unicorn.source} has no libunicorn.a in ${unicorn.lib}: the prebuilt addon links Unicorn statically ` +
    '(Debian\'s libunicorn-dev ships it; a pkg-config install may not)');
}
const require = createRequire(join(root, 'package.json'));
let prebuildify;
try {
  prebuildify = require.resolve('prebuildify/bin.js');
} catch {
  fail('prebuildify is not installed: it is a dev dependency, run `npm install` in the clone first');
}
// The machine's own Node headers when it has them (node-gyp would otherwise download them).
const env = { ...process.env, MINIVISOR_UNICORN_STATIC: '1' };
const nodePrefix = dirname(dirname(process.execPath));
if (!env.npm_config_nodedir && existsSync(join(nodePrefix, 'include/node/common.gypi'))) env.npm_config_nodedir = nodePrefix;
// Built in a work folder of its own, not native/build: that is the clone's own (dynamically linked)
// addon, which running tests may be loading. binding.gyp finds ../scripts and node-addon-api from
// any folder directly below the root.
const work = join(root, '.prebuild-work');
rmSync(work, { recursive: true, force: true });
mkdirSync(work);
copyFileSync(join(root, 'native', 'binding.gyp'), join(work, 'binding.gyp'));
symlinkSync(join(root, 'native', 'src'), join(work, 'src'));
log(`building ${PREBUILD_DIR} (Unicorn ${unicorn.version}, static)`);
const r = spawnSync(process.execPath, [
  prebuildify, '--napi', '--strip', '--tag-libc', '--name', 'minivisor', '--cwd', work, '--out', join(root, 'native'),
  '--target', process.versions.node, '--node-gyp', require.resolve('node-gyp/bin/node-gyp.js'),
], { cwd: root, env, stdio: 'inherit' });
rmSync(work, { recursive: true, force: true });
if (r.status !== 0) fail(`prebuildify exited with ${r.status ?? r.signal}`);

const built = existsSync(PREBUILD_DIR) ? readdirSync(PREBUILD_DIR).filter((f) => f.endsWith('.node')) : [];
if (built.length !== 1) fail(`expected one addon in ${PREBUILD_DIR}, found ${built.length}`);
const addonPath = join(PREBUILD_DIR, built[0]);
// The point of the static link: the prebuild must not ask the dynamic loader for libunicorn.
const dynamic = spawnSync('readelf', ['-d', addonPath], { encoding: 'utf8' });
if (dynamic.status === 0 && /NEEDED.*libunicorn/.test(dynamic.stdout)) fail(`${addonPath} still needs libunicorn.so dynamically`);
const version = require(addonPath).unicornVersion();
log(`${addonPath}: Unicorn ${version} linked in`);

// GPL-2.0 section 1 asks for the license text with the binary, and the package's NOTICE says where
// the corresponding source is; beside the addon go the text, Debian's copyright file for the
// library that was linked in, and a short notice naming both.
const gplText = '/usr/share/common-licenses/GPL-2';
const debianCopyright = join(unicorn.include, '..', 'share', 'doc', 'libunicorn-dev', 'copyright');
if (!existsSync(gplText)) fail(`${gplText} is missing (Debian's base-files has it): the prebuild must ship the GPL-2.0 text`);
copyFileSync(gplText, join(PREBUILD_DIR, 'COPYING.GPL-2.0'));
if (existsSync(debianCopyright)) copyFileSync(debianCopyright, join(PREBUILD_DIR, 'UNICORN-COPYRIGHT'));
writeFileSync(join(PREBUILD_DIR, 'NOTICE'), [
  `${built[0]} is minivisor's native addon (MIT, see ../../../LICENSE) with the Unicorn CPU emulator`,
  `${version} (https://www.unicorn-engine.org/) linked in statically from Debian's libunicorn-dev`,
  'package. Unicorn includes code under GPL-2.0 (see UNICORN-COPYRIGHT), so this file as a whole is',
  'distributed under the GNU General Public License version 2 (COPYING.GPL-2.0). Its corresponding',
  `source is this package's native/src and Debian's source package "unicorn" (version ${version}),`,
  'see ../../../NOTICE.',
  '',
].join('\n'));

// A boot through the prebuild (PREBUILDS_ONLY makes node-gyp-build pass over native/build):
// loading alone would not catch a mislinked emulator, a guest load does.
if (existsSync(join(root, 'dist', 'cli', 'main.js')) && existsSync(join(root, 'firmware', 'build', 'firmware.elf'))) {
  const boot = spawnSync(process.execPath, [join(root, 'bin', 'minivisor.js'), 'boot', '--memory', '128M', '--verify'],
    { cwd: root, encoding: 'utf8', env: { ...process.env, PREBUILDS_ONLY: '1' } });
  if (boot.status !== 0) fail(`a boot through the prebuilt addon failed (exit ${boot.status ?? boot.signal}):\n${boot.stdout}${boot.stderr}`);
  log('a 128M TDX boot through it is clean');
}
