// The guest SDK dogfooded: `minivisor new-stub --stage firmware|decompressor|kernel` writes a
// template, `make` builds it with the SDK (guest/include, guest/lib), and it boots clean on both
// platforms in place of that stage, with ours for the others. A scenario file holds each to that,
// and a deliberately broken copy turns `minivisor test` red with a readable expected-vs-got.
// The firmware and decompressor templates are our own stages' sources, copied without the build
// variants: the firmware template builds to the very bytes of ours.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { BUILT_FIRMWARE } from '../../src/boot/images.js';
import { assertCleanBoot, bootStub } from '../../src/testing/index.js';
import { capture } from '../helpers/captured-io.js';

function make(dir: string): void {
  const r = spawnSync('make', ['-s', '-C', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make in ${dir} failed:\n${r.stdout}${r.stderr}`);
}

const work = mkdtempSync(join(tmpdir(), 'minivisor-new-stub-'));

/** Writes a scenario for the stub in `dir` (green: done and verify clean), runs it, then breaks a copy of the stub with `bug` and runs it again. */
async function greenThenRed(dir: string, stage: string, file: string, bug: [string, string]): Promise<string> {
  const scenario = join(dir, `${stage}.scenario.yaml`);
  writeFileSync(scenario, [
    `name: template ${stage} on SNP`,
    `boot: { platform: snp, memory: 512M, ${stage}: build/${stage}.elf }`,
    'expect: { outcome: done, verify: clean }',
    '',
  ].join('\n'));
  const green = capture();
  expect(await main(['test', scenario], green)).toBe(0);
  expect(green.stdout[0]).toMatch(new RegExp(`^PASS +template ${stage} on SNP`));

  const broken = join(work, `broken-${stage}`);
  cpSync(dir, broken, { recursive: true });
  const source = readFileSync(join(broken, file), 'utf8');
  const buggy = source.replace(bug[0], bug[1]);
  expect(buggy).not.toBe(source);
  writeFileSync(join(broken, file), buggy);
  make(broken);
  const red = capture();
  expect(await main(['test', join(broken, `${stage}.scenario.yaml`)], red)).toBe(1);
  const text = red.stdout.join('\n');
  expect(text).toMatch(new RegExp(`^FAIL +template ${stage} on SNP`, 'm'));
  return text;
}

describe('minivisor new-stub', () => {
  const stubs = { kernel: join(work, 'my-kernel'), firmware: join(work, 'my-firmware'), decompressor: join(work, 'my-decompressor') };

  beforeAll(async () => {
    for (const [stage, dir] of Object.entries(stubs)) {
      const io = capture();
      expect(await main(['new-stub', dir, ...(stage === 'kernel' ? [] : ['--stage', stage])], io)).toBe(0);
      make(dir);
    }
  }, 240_000);

  it('writes each template with a Makefile that names this installation\'s SDK, and refuses a folder in use or an unknown stage', async () => {
    for (const dir of Object.values(stubs)) expect(readFileSync(join(dir, 'Makefile'), 'utf8')).toContain(`MINIVISOR_SDK ?= ${join(process.cwd(), 'guest')}\n`);
    const io = capture();
    expect(await main(['new-stub', stubs.kernel], io)).toBe(1);
    expect(io.stderr).toEqual([`minivisor new-stub: "${stubs.kernel}" is not empty: new-stub writes only into a new or empty folder`]);
    const stage = capture();
    expect(await main(['new-stub', join(work, 'other'), '--stage', 'bootloader'], stage)).toBe(2);
    expect(stage.stderr).toEqual(['minivisor new-stub: --stage must be firmware, decompressor or kernel, not "bootloader"']);
    expect(existsSync(join(work, 'other'))).toBe(false);
  });

  it('writes the stage\'s sources, its README, and an eight-line vitest file for its boot flag: a clean boot and a fuzz campaign', async () => {
    const listing = async (stage: string) => {
      const io = capture();
      expect(await main(['new-stub', join(work, `listing-${stage}`), '--stage', stage], io)).toBe(0);
      return io.stdout;
    };
    expect(await listing('firmware')).toEqual([
      `wrote Makefile, README.md, ap-park.S, entry.S, firmware.ld, linux.S, main.c, reset-vector.S, stub.test.mjs to ${join(work, 'listing-firmware')}`,
      `next: cd ${join(work, 'listing-firmware')} && make && npx minivisor boot --firmware build/firmware.elf --verify`,
    ]);
    expect((await listing('decompressor'))[0]).toBe(`wrote Makefile, README.md, decompressor.ld, entry.S, lz4.c, lz4.h, main.c, payload.S, stub.test.mjs to ${join(work, 'listing-decompressor')}`);
    expect((await listing('kernel'))[0]).toBe(`wrote Makefile, README.md, main.c, stub.test.mjs to ${join(work, 'listing-kernel')}`);
    const test = readFileSync(join(stubs.decompressor, 'stub.test.mjs'), 'utf8');
    expect(test).toContain("bootStub({ platform, decompressor: 'build/decompressor.elf', memory: '512M' })");
    expect(test).toContain("fuzzStub({ platform, decompressor: 'build/decompressor.elf', runs: 150, out: `fuzz-out/${platform}` })");
    expect(test.split('\n').filter((l) => l && !l.startsWith('//'))).toHaveLength(8);
    // The copies carry no build variant of this repository.
    for (const file of ['main.c']) {
      expect(readFileSync(join(stubs.decompressor, file), 'utf8')).not.toMatch(/MV_PLANT_|MV_TRACKING_MEMMAP|memmap-record/);
      expect(readFileSync(join(stubs.firmware, file), 'utf8')).not.toMatch(/MV_FIXTURE_/);
    }
  });

  it('the firmware template builds to the same bytes as our firmware', () => {
    expect(readFileSync(join(stubs.firmware, 'build', 'firmware.elf')).equals(readFileSync(BUILT_FIRMWARE))).toBe(true);
  });

  it.each(['tdx', 'snp'] as const)('each template boots clean on %s in place of its stage', (platform) => {
    for (const [stage, dir] of Object.entries(stubs)) {
      const run = bootStub({ platform, [stage]: join(dir, 'build', `${stage}.elf`), memory: '512M' });
      assertCleanBoot(run);
      if (stage === 'kernel') {
        expect(run.result.guestStats).toMatchObject({ template_accepted_bytes: '8388608', template_checked_pages: '2048' });
        expect(BigInt(run.result.acceptedBytes.kernel)).toBe(0x800000n);
      }
    }
  }, 120_000);

  it('kernel: a scenario holds it, and a copy that writes one page more than it accepted turns `minivisor test` red', async () => {
    const text = await greenThenRed(stubs.kernel, 'kernel', 'main.c', [
      'for (u64 page = start; page < end; page += MV_PAGE_SIZE)\n\t\t*(volatile',
      'for (u64 page = start; page <= end; page += MV_PAGE_SIZE)\n\t\t*(volatile',
    ]);
    expect(text).toMatch(/outcome: expected done, got \S+/);
  }, 120_000);

  it('firmware: a copy whose memory map calls 2 MiB more RAM accepted than it accepted turns `minivisor test` red', async () => {
    const text = await greenThenRed(stubs.firmware, 'firmware', 'main.c', [
      'e820_add_ram(bp, MV_FIRMWARE_RESERVED_END, low_end, accepted_end);',
      'e820_add_ram(bp, MV_FIRMWARE_RESERVED_END, low_end, accepted_end + MV_SIZE_2M);',
    ]);
    // The kernel trusts the map, touches the first page past what was accepted and stops; verify
    // names the range the guest calls accepted and the hardware does not.
    expect(text).toMatch(/outcome: expected done, got guest-fatal/);
    expect(text).toMatch(/verify: expected clean, got \[0x[0-9a-f]+, 0x[0-9a-f]+\): guest says accepted, hardware has /);
  }, 120_000);

  it('decompressor: a copy whose bitmap leaves out the first unaccepted unit turns `minivisor test` red', async () => {
    const text = await greenThenRed(stubs.decompressor, 'decompressor', 'main.c', [
      'set_bits(head_end / unit, tail_start / unit);',
      'set_bits(head_end / unit + 1, tail_start / unit);',
    ]);
    expect(text).toMatch(/verify: expected clean, got \[0x[0-9a-f]+, 0x[0-9a-f]+\): guest says accepted, hardware has /);
  }, 120_000);
});
