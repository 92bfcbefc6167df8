// verify: the guest's own acceptance record (boot params E820 map + bitmap) against the
// hardware's page states, on honest boots of both platforms and on records made deliberately wrong.
import { describe, expect, it } from 'vitest';
import { parseBootOptions } from '../../../src/cli/boot-options.js';
import { bootGuest, type BootRun } from '../../../src/boot/boot-guest.js';
import { readGuestMemoryRecord } from '../../../src/boot/guest-record.js';
import { describeMismatch, verifyBoot } from '../../../src/boot/verify.js';
import { ABI, BOOT_PARAMS_GPA } from '../../../src/boot/layout.js';
import { bootParams } from '../../helpers/boot-check.js';
import { main } from '../../../src/cli/main.js';

function boot(platform: 'tdx' | 'snp', unit = '2M'): BootRun {
  return bootGuest(parseBootOptions({ platform, memory: '512M', unit }));
}

/** Sets or clears the guest's "unaccepted" bit for the unit holding `gpa`. */
function setUnacceptedBit(run: BootRun, gpa: bigint, unaccepted: boolean): void {
  const vm = run.platform.machine;
  const bp = bootParams(vm);
  const u = gpa / bp.acceptUnit;
  const at = bp.bitmapGpa + (u >> 3n);
  const byte = vm.memory.read(at, 1)[0]!;
  const bit = 1 << Number(u & 7n);
  vm.memory.write(at, Uint8Array.of(unaccepted ? byte | bit : byte & ~bit));
}

describe.each(['tdx', 'snp'] as const)('verify on %s', (platform) => {
  it('finds an honest boot clean, over all of its RAM', () => {
    const run = boot(platform);
    try {
      expect(run.result.outcome).toBe('done');
      const report = verifyBoot(run);
      expect(report.mismatches.map(describeMismatch)).toEqual([]);
      expect(report.ok).toBe(true);
      // The map covers RAM less the E820-reserved firmware range [2 MiB, 4 MiB).
      expect(report.checkedBytes).toBe((512n << 20n) - (ABI.MV_FIRMWARE_RESERVED_END - ABI.MV_FIRMWARE_RESERVED_GPA));
    } finally {
      run.platform.machine.close();
    }
  });

  it('reports a unit the record calls accepted that the hardware never accepted, and the reverse', () => {
    const run = boot(platform);
    try {
      const record = readGuestMemoryRecord(run.platform.machine.memory)!;
      const unaccepted = record.runs.find((r) => !r.accepted)!;
      const accepted = record.runs.find((r) => r.accepted && r.start >= 0x1000000n)!;
      const unit = record.unit;
      const lie = unaccepted.start;
      const forgot = accepted.start - (accepted.start % unit);
      setUnacceptedBit(run, lie, false);
      setUnacceptedBit(run, forgot, true);
      const report = verifyBoot(run);
      expect(report.ok).toBe(false);
      expect(report.mismatches).toEqual(expect.arrayContaining([
        expect.objectContaining({ start: lie, end: lie + unit, guest: 'accepted' }),
        expect.objectContaining({ start: forgot, end: forgot + unit, guest: 'unaccepted' }),
      ]));
      expect(report.mismatches).toHaveLength(2);
      expect(describeMismatch(report.mismatches.find((m) => m.guest === 'accepted')!))
        .toMatch(new RegExp(`^\\[0x${lie.toString(16)}, 0x${(lie + unit).toString(16)}\\): guest says accepted, hardware has \\S+ \\(512 pages\\)$`));
    } finally {
      run.platform.machine.close();
    }
  });

  it('says so when the guest published no record', () => {
    const run = boot(platform);
    try {
      run.platform.machine.memory.write(BOOT_PARAMS_GPA, new Uint8Array(4));
      const report = verifyBoot(run);
      expect(report.ok).toBe(false);
      expect(report.noRecord).toMatch(/no valid acceptance record/);
    } finally {
      run.platform.machine.close();
    }
  });
});

describe('minivisor boot --verify', () => {
  it('adds the verdict to --json and exits 0 on a clean boot', async () => {
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l), exitCode: 0 };
    expect(await main(['boot', '--platform', 'snp', '--memory', '512M', '--verify', '--json'], io)).toBe(0);
    expect(JSON.parse(out[0]!).verify).toMatchObject({ ok: true, mismatches: [] });
  });

  it('prints the verdict after the summary', async () => {
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l), exitCode: 0 };
    expect(await main(['boot', '--memory', '512M', '--verify'], io)).toBe(0);
    expect(out.join('\n')).toMatch(/verify: clean \(the guest's record matches the hardware over \d+M\)/);
  });

  it('reports the page a planted bug leaves accepted in the guest record but pending in hardware', async () => {
    // reaccept-skipped (guest/DEFENCES.md): the kernel converts memory back to private and marks
    // it accepted without accepting it again; verify names the range, the hardware says PENDING.
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l), exitCode: 0 };
    expect(await main(['boot', '--memory', '512M', '--variant', 'reaccept-skipped', '--verify', '--json'], io)).toBe(1);
    const verify = JSON.parse(out[0]!).verify;
    expect(verify.ok).toBe(false);
    expect(verify.mismatches).toEqual([expect.objectContaining({ guest: 'accepted', hardware: 'PENDING' })]);
  });
});
