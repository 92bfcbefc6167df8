// The guest SDK dogfooded: `minivisor new-stub` writes the kernel-stage template, `make` builds it
// with the SDK (guest/include, guest/lib), and it boots clean on both platforms behind our firmware
// and decompressor. A scenario file holds it to that, and a deliberately broken copy (it writes a
// page it never accepted) turns `minivisor test` red with a readable expected-vs-got.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { assertCleanBoot, bootStub } from '../../src/testing/index.js';

function capture() {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l: string) => stdout.push(l), err: (l: string) => stderr.push(l), exitCode: 0 };
}

function make(dir: string): void {
  const r = spawnSync('make', ['-s', '-C', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make in ${dir} failed:\n${r.stdout}${r.stderr}`);
}

describe('minivisor new-stub', () => {
  const work = mkdtempSync(join(tmpdir(), 'minivisor-new-stub-'));
  const stub = join(work, 'my-kernel');

  beforeAll(async () => {
    const io = capture();
    expect(await main(['new-stub', stub], io)).toBe(0);
    expect(io.stdout[0]).toBe(`wrote Makefile, README.md, main.c, stub.test.mjs to ${stub}`);
    make(stub);
  }, 120_000);

  it('writes a template whose Makefile names this installation\'s SDK, and refuses a folder in use', async () => {
    expect(readFileSync(join(stub, 'Makefile'), 'utf8')).toContain(`MINIVISOR_SDK ?= ${join(process.cwd(), 'guest')}\n`);
    const io = capture();
    expect(await main(['new-stub', stub], io)).toBe(1);
    expect(io.stderr).toEqual([`minivisor new-stub: "${stub}" is not empty: new-stub writes only into a new or empty folder`]);
    const stage = capture();
    expect(await main(['new-stub', join(work, 'fw'), '--stage', 'firmware'], stage)).toBe(2);
    expect(stage.stderr[0]).toMatch(/^minivisor new-stub: --stage must be kernel, not "firmware"/);
  });

  it('builds a kernel that boots clean on TDX and SNP and accepts what it says', () => {
    const kernel = join(stub, 'build', 'kernel.elf');
    expect(existsSync(kernel)).toBe(true);
    for (const platform of ['tdx', 'snp'] as const) {
      const run = bootStub({ platform, kernel, memory: '512M' });
      assertCleanBoot(run);
      expect(run.result.guestStats).toMatchObject({ template_accepted_bytes: '8388608', template_checked_pages: '2048' });
      expect(BigInt(run.result.acceptedBytes.kernel)).toBe(0x800000n);
    }
  });

  it('is held to it by a scenario file, and a broken copy turns `minivisor test` red', async () => {
    const scenario = join(stub, 'kernel.scenario.yaml');
    writeFileSync(scenario, [
      'name: template kernel on SNP',
      'boot: { platform: snp, memory: 512M, kernel: build/kernel.elf }',
      'expect: { outcome: done, verify: clean, guestStats: { template_checked_pages: 2048 } }',
      '',
    ].join('\n'));
    const green = capture();
    expect(await main(['test', scenario], green)).toBe(0);
    expect(green.stdout[0]).toMatch(/^PASS +template kernel on SNP/);

    // The bug: one more page written than accepted (the loop bound is off by a page).
    const broken = join(work, 'broken');
    cpSync(stub, broken, { recursive: true });
    const source = readFileSync(join(broken, 'main.c'), 'utf8');
    const buggy = source.replace('for (u64 page = start; page < end; page += MV_PAGE_SIZE)\n\t\t*(volatile', 'for (u64 page = start; page <= end; page += MV_PAGE_SIZE)\n\t\t*(volatile');
    expect(buggy).not.toBe(source);
    writeFileSync(join(broken, 'main.c'), buggy);
    make(broken);
    const red = capture();
    expect(await main(['test', join(broken, 'kernel.scenario.yaml')], red)).toBe(1);
    const text = red.stdout.join('\n');
    expect(text).toMatch(/^FAIL +template kernel on SNP/m);
    expect(text).toMatch(/outcome: expected done, got \S+/);
  }, 120_000);
});
