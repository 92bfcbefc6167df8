// The project's one install step (`npm install` runs it): Unicorn 2.1.4, the native addon, the
// TypeScript build (and the CLI's one-file bundle, scripts/bundle-cli.mjs) and the guest stubs.
// Each missing prerequisite stops it with one clear message.
//
// Two layouts: a clone (src/, Makefiles: everything is built) and the packed package (`npm pack`,
// package.json "files"), which ships dist/, the built stubs and a prebuilt addon
// (native/prebuilds/, scripts/prebuild.mjs). There nothing is built when the prebuilt addon loads
// on this machine; otherwise (another platform, an older glibc, or MINIVISOR_BUILD_FROM_SOURCE=1)
// the addon is built from source with the node-gyp npm brings to install scripts.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureUnicorn } from './unicorn.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const log = (msg) => console.log(`minivisor install: ${msg}`);

function need(cmd, args, what) {
  if (spawnSync(cmd, args, { stdio: 'ignore' }).status !== 0) {
    throw Object.assign(new Error(`${what} is missing (\`${cmd}\` not found); on Debian: apt-get install build-essential python3`), { minivisorInstall: true });
  }
}

function step(what, cmd, args, cwd = root) {
  log(what);
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit' });
  if (r.status !== 0) {
    throw Object.assign(new Error(`${what} failed (${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal})`), { minivisorInstall: true });
  }
}

function resolvePackage(path, what) {
  try {
    return createRequire(join(root, 'package.json')).resolve(path);
  } catch {
    throw Object.assign(new Error(`${what} is not installed`), { minivisorInstall: true });
  }
}

// node-gyp is a dev dependency of a clone; npm names its own bundled copy in npm_config_node_gyp
// for every install script, which is what a package install uses.
function findNodeGyp() {
  try {
    return resolvePackage('node-gyp/bin/node-gyp.js', 'node-gyp');
  } catch {
    const bundled = process.env.npm_config_node_gyp;
    if (bundled && existsSync(bundled)) return bundled;
    throw Object.assign(new Error('node-gyp is not available: run this through npm (`npm rebuild minivisor`), which brings its own, or install node-gyp'), { minivisorInstall: true });
  }
}

// The prebuilt addon for this platform, if the package has one and it loads here (a child process,
// so a loader failure such as a too-old glibc is a message, not a dead install).
function usablePrebuild() {
  const dir = join(root, 'native', 'prebuilds', `${process.platform}-${process.arch}`);
  const file = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith('.node')) : undefined;
  if (!file) return null;
  const path = join(dir, file);
  const r = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(path)}).unicornVersion())`], { encoding: 'utf8' });
  if (r.status === 0) return { path, unicorn: r.stdout };
  log(`the prebuilt addon ${path} does not load here (${(r.stderr || '').trim().split('\n').find((l) => /Error/.test(l)) ?? `exit ${r.status}`}); building from source`);
  return null;
}

const isClone = existsSync(join(root, 'src')) && existsSync(join(root, 'tsconfig.json'));

try {
  if (!isClone && process.env.MINIVISOR_BUILD_FROM_SOURCE !== '1') {
    const prebuilt = usablePrebuild();
    if (prebuilt) {
      if (!existsSync(join(root, 'dist', 'index.js'))) {
        throw Object.assign(new Error(`the package is incomplete: ${join(root, 'dist', 'index.js')} is missing`), { minivisorInstall: true });
      }
      log(`using the prebuilt addon ${prebuilt.path} (Unicorn ${prebuilt.unicorn}, linked in); nothing to build`);
      log('done');
      process.exit(0);
    }
  }
  need('g++', ['--version'], 'a C++ compiler');
  need('make', ['--version'], 'make');
  need('python3', ['--version'], 'python3 (for node-gyp)');
  const unicorn = ensureUnicorn(log);
  log(`using libunicorn from ${unicorn.source}`);
  const nodeGyp = findNodeGyp();
  // Build against the machine's own Node headers when it has them: node-gyp would otherwise
  // download them, and this machine reaches only the npm and Debian registries.
  const gypArgs = [nodeGyp, 'rebuild', '--directory', 'native', '--silent'];
  const nodedir = process.env.npm_config_nodedir ||
    (existsSync(join(dirname(dirname(process.execPath)), 'include/node/common.gypi')) ? dirname(dirname(process.execPath)) : '');
  if (nodedir) gypArgs.push(`--nodedir=${nodedir}`);
  step('building the native addon', process.execPath, gypArgs);
  if (isClone) {
    step('compiling TypeScript', process.execPath, [resolvePackage('typescript/bin/tsc', 'typescript (a dev dependency of a clone; run `npm install` with dev dependencies)'), '-p', 'tsconfig.json']);
    resolvePackage('esbuild', 'esbuild (a dev dependency of a clone; run `npm install` with dev dependencies)');
    step('bundling the CLI', process.execPath, [join(root, 'scripts', 'bundle-cli.mjs')]);
  } else if (!existsSync(join(root, 'dist', 'index.js'))) {
    throw Object.assign(new Error(`neither src/ nor a built dist/ is present in ${root}: the package is incomplete`), { minivisorInstall: true });
  }
  for (const dir of ['firmware', 'guest']) {
    if (existsSync(join(root, dir, 'Makefile'))) {
      need('gcc', ['--version'], 'gcc');
      need('as', ['--version'], 'binutils (as, ld)');
      step(`building the ${dir} stubs`, 'make', ['-s', '-C', dir]);
    }
  }
  log('done');
} catch (err) {
  console.error(`minivisor install: ${err.message}`);
  process.exit(1);
}
