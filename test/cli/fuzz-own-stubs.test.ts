// Fuzzing your own stubs: `minivisor fuzz --kernel ELF` (and --firmware, --decompressor, as `boot`
// takes them), a finding that names the file and its SHA-256, and the loop a stub's author runs:
// replay it, fix the stub, rebuild, replay again and see it no longer reproduce. The "own" kernel
// here is our planted-bug build reaccept-skipped (guest/DEFENCES.md), copied out as a user's file;
// the fix is our honest kernel.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { capture } from '../helpers/captured-io.js';

const PLANTED_KERNEL = 'guest/build/variants/reaccept-skipped/kernel.elf';
const HONEST_KERNEL = 'guest/build/kernel.elf';
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** The README's worked example seed: a VMM that answers MapGPA by flipping only its shared EPT. */
const KEEP_PRIVATE = JSON.stringify({
  format: 'minivisor-attack-program', version: 1, platform: 'tdx', decisions: [
    { at: 'call', point: 'tdx.instructionIo', occurrence: 7, answer: { kind: 'honest' } },
    { at: 'call', point: 'tdx.mapGpa', occurrence: 0, repeat: 1000000, answer: { kind: 'map-gpa', convertBytes: '0x10000000000', status: '0x0', sharedEptOnly: true } },
  ],
});

describe('minivisor fuzz --kernel: your own stub', () => {
  it('finds the bug in it, names the file and its SHA-256, and replays until the stub is fixed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-own-stub-'));
    const kernel = join(dir, 'my-kernel.elf');
    copyFileSync(PLANTED_KERNEL, kernel);
    const out = join(dir, 'demo');
    mkdirSync(join(out, 'corpus'), { recursive: true });
    writeFileSync(join(out, 'corpus', 'keep-private.json'), KEEP_PRIVATE);

    const io = capture();
    expect(await main(['fuzz', '--kernel', kernel, '--stage', 'all', '--runs', '2', '--out', out, '--json'], io), io.stderr.join('\n')).toBe(1);
    const stats = JSON.parse(io.stdout[0]!);
    expect(stats.target.images).toEqual({ kernel: { file: kernel, sha256: sha256(PLANTED_KERNEL) } });
    expect(stats.findings).toHaveLength(1);
    const findingJson = stats.findings[0] as string;
    const finding = JSON.parse(readFileSync(findingJson, 'utf8'));
    expect(finding.category).toBe('foreign-content');
    expect(finding.target.images).toEqual({ kernel: { file: kernel, sha256: sha256(PLANTED_KERNEL) } });
    expect(readFileSync(join(findingJson, '..', 'README.txt'), 'utf8')).toContain(`Your own kernel: ${kernel} (SHA-256 ${sha256(PLANTED_KERNEL)})`);
    // report.html says which stubs ran, too.
    const report = readFileSync(join(out, 'report.html'), 'utf8');
    expect(report).toContain(`data-stat="your own kernel">${kernel} (SHA-256 ${sha256(PLANTED_KERNEL)})<`);
    expect(report).toContain('data-stat="stage">all<');

    // The file as it was: the same run, bit for bit.
    const replay = capture();
    expect(await main(['replay', findingJson, '--json'], replay)).toBe(1);
    expect(JSON.parse(replay.stdout[0]!)).toMatchObject({ reproduced: true, identicalTrace: true, traceSha256: finding.traceSha256 });
    expect(JSON.parse(replay.stdout[0]!).changedImages).toBeUndefined();

    // A fixed build named on the command line: the guest now stops the lying VMM.
    const fixed = capture();
    expect(await main(['replay', findingJson, '--kernel', HONEST_KERNEL], fixed)).toBe(0);
    expect(fixed.stdout.join('\n')).toMatch(/does not reproduce: the run is now detected \(guest-fatal: tdx_accept_already_accepted/);

    // The stub rebuilt in place: the same replay runs the new build, and says the file changed.
    copyFileSync(HONEST_KERNEL, kernel);
    const rebuilt = capture();
    expect(await main(['replay', findingJson], rebuilt)).toBe(0);
    expect(rebuilt.stdout[0]).toMatch(new RegExp(`^minivisor replay: note: kernel image ".*my-kernel\\.elf" has changed since the finding \\(SHA-256 ${sha256(PLANTED_KERNEL).slice(0, 16)}… then, ${sha256(HONEST_KERNEL).slice(0, 16)}… now\\)$`));
    expect(rebuilt.stdout[1]).toMatch(/does not reproduce: the run is now detected/);

    // Gone: a clear error and exit status 2 from replay and shrink, never a crash.
    rmSync(kernel);
    for (const command of ['replay', 'shrink']) {
      const gone = capture();
      expect(await main([command, findingJson], gone)).toBe(2);
      expect(gone.stderr.join('\n')).toMatch(new RegExp(`^minivisor ${command}: kernel image ".*my-kernel\\.elf" does not exist$`, 'm'));
    }
  }, 60_000);

  it('starts executions at the first stage replaced, unless --stage says otherwise', async () => {
    // At the kernel's first decision the firmware and decompressor have run honestly already.
    const cases: [string[], string][] = [
      [['--firmware', 'firmware/build/firmware.elf'], 'firmware'],
      [['--decompressor', 'guest/build/decompressor.elf'], 'decompressor'],
      [['--decompressor', 'guest/build/decompressor.elf', '--firmware', 'firmware/build/firmware.elf'], 'firmware'],
      [['--kernel', HONEST_KERNEL], 'kernel'],
      [[], 'kernel'],
      [['--firmware', 'firmware/build/firmware.elf', '--stage', 'all'], 'all'],
    ];
    for (const [flags, stage] of cases) {
      const io = capture();
      expect(await main(['fuzz', ...flags, '--runs', '1', '--out', mkdtempSync(join(tmpdir(), 'minivisor-own-stub-')), '--json'], io), io.stderr.join('\n')).toBe(0);
      expect(JSON.parse(io.stdout[0]!).target.stage, flags.join(' ')).toBe(stage);
    }
  }, 60_000);

  it('refuses an image it cannot read before any execution: exit status 1, no output directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-own-stub-'));
    const out = join(dir, 'out');
    for (const flag of ['--firmware', '--decompressor', '--kernel']) {
      const io = capture();
      expect(await main(['fuzz', flag, join(dir, 'missing.elf'), '--runs', '1', '--out', out], io)).toBe(1);
      expect(io.stderr).toEqual([`minivisor fuzz: ${flag.slice(2)} image "${join(dir, 'missing.elf')}" does not exist`]);
    }
    expect(existsSync(out)).toBe(false);
    // The boot's own combination rules hold: --tracking memmap is built with our decompressor and kernel.
    const io = capture();
    expect(await main(['fuzz', '--kernel', HONEST_KERNEL, '--tracking', 'memmap', '--runs', '1', '--out', out], io)).toBe(2);
    expect(io.stderr.join('\n')).toMatch(/--tracking memmap boots our memmap decompressor and kernel together/);
  });
});
