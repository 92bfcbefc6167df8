// The package as a user gets it: `npm pack`, then `npm install <tarball>` into an empty project whose
// PATH has node and npm but no compiler (no gcc, g++, make, python3, as), then `npx minivisor boot`;
// then `minivisor new-stub` for each stage, `make` (the user's own stub: gcc is needed for that
// alone) and the template's eight-line vitest file through `minivisor/testing`. This works only because the
// tarball carries the prebuilt addon (Unicorn linked in), the prebuilt stages and the guest SDK.
import { describe, expect, it, beforeAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, realpathSync } from 'node:fs';
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
async function ensurePrebuild(): Promise<void> {
  const file = existsSync(prebuildDir) ? readdirSync(prebuildDir).find((f) => f.endsWith('.node')) : undefined;
  if (file && statSync(join(prebuildDir, file)).mtimeMs >= newestSourceMtime()) return;
  const r = await run(process.execPath, ['scripts/prebuild.mjs'], root, process.env);
  if (r.status !== 0) throw new Error(`scripts/prebuild.mjs failed:\n${r.stdout}\n${r.stderr}`);
}

interface RunResult { status: number | null; stdout: string; stderr: string }

/**
 * A child process, awaited: the worker's event loop stays free while npm installs or a boot runs
 * (a spawnSync that blocks for a minute makes vitest's worker RPC time out).
 */
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd, env, timeout: 240_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', (err) => done({ status: null, stdout, stderr: `${stderr}${err.message}` }));
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
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

  beforeAll(async () => {
    await ensurePrebuild();
    // --ignore-scripts: prepack's TypeScript build and prebuild are already done (above and by `npm install`).
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], root, process.env);
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

  it('installs from the tarball with the prebuilt addon, and `npx minivisor boot` boots both platforms', async () => {
    const install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], project, env);
    expect(install.status, `${install.stdout}\n${install.stderr}`).toBe(0);
    const installed = join(project, 'node_modules', 'minivisor');
    expect(existsSync(join(installed, 'native', 'build')), 'nothing was compiled').toBe(false);
    // The prebuild, with the GPL-2.0 text and notices for the Unicorn linked into it.
    expect(readdirSync(join(installed, 'native', 'prebuilds', `${process.platform}-${process.arch}`)).sort())
      .toEqual(['COPYING.GPL-2.0', 'NOTICE', 'UNICORN-COPYRIGHT', 'minivisor.glibc.node']);

    for (const platform of ['tdx', 'snp']) {
      const boot = await run('npx', ['minivisor', 'boot', '--platform', platform, '--memory', '512M', '--verify', '--json'], project, env);
      expect(boot.status, `${boot.stdout}\n${boot.stderr}`).toBe(0);
      const result = JSON.parse(boot.stdout) as { platform: string; outcome: string; verify: { ok: boolean; mismatches: unknown[] } };
      expect(result).toMatchObject({ platform, outcome: 'done', verify: { ok: true, mismatches: [] } });
    }
    // From the one-file bundle (whatever mtimes unpacking gave dist/), which keeps a code cache per command.
    expect(readdirSync(join(installed, 'dist', 'cli')).filter((f) => f.endsWith('.v8cache')).sort())
      .toEqual(['minivisor.cjs.boot.snp.v8cache', 'minivisor.cjs.boot.tdx.v8cache']);
  }, 240_000);

  it.each(['kernel', 'firmware', 'decompressor'])('writes the %s template with new-stub, builds it with the shipped SDK, and passes its eight-line vitest file: a clean boot and a fuzz campaign on both platforms', async (stage) => {
    const stub = join(project, `my-${stage}`);
    const created = await run('npx', ['minivisor', 'new-stub', `my-${stage}`, '--stage', stage], project, env);
    expect(created.status, `${created.stdout}\n${created.stderr}`).toBe(0);
    // Building the user's own stub is the one step that needs gcc and binutils: the full PATH.
    const built = await run('make', ['-s', '-C', stub], project, process.env);
    expect(built.status, `${built.stdout}\n${built.stderr}`).toBe(0);
    expect(readFileSync(join(stub, 'Makefile'), 'utf8')).toContain(`MINIVISOR_SDK ?= ${realpathSync(join(project, 'node_modules', 'minivisor', 'guest'))}`);

    // vitest is the user's own dev dependency; this project borrows ours instead of fetching it.
    if (!existsSync(join(project, 'node_modules', 'vitest'))) symlinkSync(join(root, 'node_modules', 'vitest'), join(project, 'node_modules', 'vitest'));
    const testFile = readFileSync(join(stub, 'stub.test.mjs'), 'utf8');
    expect(testFile.split('\n').filter((l) => l && !l.startsWith('//'))).toHaveLength(8);
    const vitest = await run('node', [join(project, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--root', stub], stub, env);
    expect(vitest.status, `${vitest.stdout}\n${vitest.stderr}`).toBe(0);
    expect(vitest.stdout).toMatch(/2 passed/);
  }, 120_000);
});
