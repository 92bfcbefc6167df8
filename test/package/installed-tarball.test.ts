// The package as a user gets it: `npm pack`, then `npm install <tarball>` into an empty project whose
// PATH has node and npm but no compiler (no gcc, g++, make, python3, as), then `npx minivisor boot`
// and a five-line vitest file that uses `minivisor/testing`. This works only because the tarball
// carries the prebuilt addon (Unicorn linked in) and the prebuilt guest stubs.
import { describe, expect, it, beforeAll } from 'vitest';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, symlinkSync, writeFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = process.cwd();
const prebuildDir = join(root, 'native', 'prebuilds', `${process.platform}-${process.arch}`);

function newestSourceMtime(): number {
  const dirs = [join(root, 'native', 'src')];
  let newest = statSync(join(root, 'native', 'binding.gyp')).mtimeMs;
  for (const dir of dirs) for (const f of readdirSync(dir)) newest = Math.max(newest, statSync(join(dir, f)).mtimeMs);
  return newest;
}

/** The prebuild `npm pack` would make (its prepack script); made here only when missing or older than the source. */
function ensurePrebuild(): void {
  const file = existsSync(prebuildDir) ? readdirSync(prebuildDir).find((f) => f.endsWith('.node')) : undefined;
  if (file && statSync(join(prebuildDir, file)).mtimeMs >= newestSourceMtime()) return;
  const r = spawnSync(process.execPath, ['scripts/prebuild.mjs'], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/prebuild.mjs failed:\n${r.stdout}\n${r.stderr}`);
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 240_000 });
}

const which = (cmd: string): string | null => {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? realpathSync(r.stdout.trim()) : null;
};

describe('the packed package in an empty project without a compiler', () => {
  const work = mkdtempSync(join(tmpdir(), 'minivisor-tarball-'));
  const project = join(work, 'project');
  const bin = join(work, 'bin');
  let env: NodeJS.ProcessEnv;
  let tarball: string;

  beforeAll(() => {
    ensurePrebuild();
    // --ignore-scripts: prepack's TypeScript build and prebuild are already done (above and by `npm install`).
    const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' });
    if (pack.status !== 0) throw new Error(`npm pack failed: ${pack.stderr}`);
    tarball = join(work, (JSON.parse(pack.stdout) as { filename: string }[])[0]!.filename);

    // A PATH with node, npm, npx and sh only: no gcc, g++, cc, make, python3, as, ld.
    mkdirSync(bin);
    for (const cmd of ['node', 'npm', 'npx', 'sh']) {
      const path = which(cmd);
      if (!path) throw new Error(`${cmd} is not on PATH`);
      symlinkSync(path, join(bin, cmd));
    }
    env = { ...process.env, PATH: bin };
    for (const key of Object.keys(env)) if (key.startsWith('npm_') || key.startsWith('VITEST')) delete env[key];
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'my-firmware-tests', private: true, type: 'module' }));
  }, 240_000);

  it('has no compiler on the PATH it installs with', () => {
    for (const cmd of ['gcc', 'g++', 'cc', 'make', 'python3', 'as']) {
      expect(spawnSync(cmd, ['--version'], { env }).error, cmd).toBeDefined();
    }
  });

  it('installs from the tarball with the prebuilt addon, and `npx minivisor boot` boots both platforms', () => {
    const install = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], project, env);
    expect(install.status, `${install.stdout}\n${install.stderr}`).toBe(0);
    const installed = join(project, 'node_modules', 'minivisor');
    expect(existsSync(join(installed, 'native', 'build')), 'nothing was compiled').toBe(false);
    // The prebuild, with the GPL-2.0 text and notices for the Unicorn linked into it.
    expect(readdirSync(join(installed, 'native', 'prebuilds', `${process.platform}-${process.arch}`)).sort())
      .toEqual(['COPYING.GPL-2.0', 'NOTICE', 'UNICORN-COPYRIGHT', 'minivisor.glibc.node']);

    for (const platform of ['tdx', 'snp']) {
      const boot = run('npx', ['minivisor', 'boot', '--platform', platform, '--memory', '512M', '--verify', '--json'], project, env);
      expect(boot.status, `${boot.stdout}\n${boot.stderr}`).toBe(0);
      const result = JSON.parse(boot.stdout) as { platform: string; outcome: string; verify: { ok: boolean; mismatches: unknown[] } };
      expect(result).toMatchObject({ platform, outcome: 'done', verify: { ok: true, mismatches: [] } });
    }
  }, 240_000);

  it('runs a five-line vitest file that uses minivisor/testing', () => {
    // vitest is the user's own dev dependency; this project borrows ours instead of fetching it.
    symlinkSync(join(root, 'node_modules', 'vitest'), join(project, 'node_modules', 'vitest'));
    writeFileSync(join(project, 'stub.test.js'), [
      "import { test } from 'vitest';",
      "import { assertCleanBoot, bootStub } from 'minivisor/testing';",
      "test('the stub boots clean on TDX and SNP', () => {",
      "  for (const platform of ['tdx', 'snp']) assertCleanBoot(bootStub({ platform, memory: '512M' }));",
      '}, 60_000);  // a boot takes a second or two; vitest\'s default timeout is 5 s',
    ].join('\n'));
    const vitest = run('node', [join(project, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--root', project], project, env);
    expect(vitest.status, `${vitest.stdout}\n${vitest.stderr}`).toBe(0);
    expect(vitest.stdout).toMatch(/1 passed/);
  }, 120_000);
});
