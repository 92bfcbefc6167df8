// Row 19 of issue 9: the firmware volume at the top of 4 GiB (TDVF/OVMF's BFV) holds the reset
// vector; it is measured through the launch path (TDX PAGE.ADD + MR.EXTEND into MRTD, SNP
// SNP_LAUNCH_UPDATE into the launch digest) and lies in a hole with no RAM.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBootOptions } from '../../../src/cli/boot-options.js';
import { bootGuest } from '../../../src/boot/boot-guest.js';
import { BootSession } from '../../../src/boot/boot-session.js';
import { GuestImageError, builtImagePaths, type BootImages } from '../../../src/boot/images.js';
import { ABI, FIRMWARE_VOLUME, guestPhysicalBytes, guestRamBytes, guestRamRanges } from '../../../src/boot/layout.js';
import { verifyBoot } from '../../../src/boot/verify.js';
import { bootParams } from '../../helpers/boot-check.js';

const GiB = 1n << 30n;

/** The images with one byte of the firmware volume's padding (never executed) changed. */
function withVolumeByte(images: BootImages, byte: number): BootImages {
  const segments = images.firmware.segments.map((s) => {
    if (s.gpa !== FIRMWARE_VOLUME.gpa) return s;
    const data = Uint8Array.from(s.data);
    data[0x800] = byte;
    return { ...s, data };
  });
  return { ...images, firmware: { ...images.firmware, segments } };
}

function measurement(platform: 'tdx' | 'snp', images?: (i: BootImages) => BootImages): string {
  const session = BootSession.create(parseBootOptions({ platform, memory: '128M' }), images ? { vmm: { images } } : {});
  const m = session.platform.measurement;
  session.platform.machine.close();
  return m;
}

describe('guest RAM leaves the hole below 4 GiB for the firmware volume', () => {
  it('guestRamRanges: below the hole, up to it, and across it', () => {
    expect(guestRamRanges(256n << 20n)).toEqual([{ start: 0n, end: 256n << 20n }]);
    expect(guestRamRanges(4n * GiB)).toEqual([{ start: 0n, end: ABI.MV_RAM_HOLE_GPA }]);
    expect(guestRamRanges(64n << 40n)).toEqual([{ start: 0n, end: ABI.MV_RAM_HOLE_GPA }, { start: 4n * GiB, end: 64n << 40n }]);
    expect(guestRamBytes(8n * GiB)).toBe(8n * GiB - (ABI.MV_RAM_HOLE_END - ABI.MV_RAM_HOLE_GPA));
    for (const memory of [32n << 20n, 4n * GiB - 4096n, 4n * GiB, 5n * GiB, 64n << 40n]) {
      for (const r of guestRamRanges(memory)) {
        expect(r.end <= FIRMWARE_VOLUME.gpa || r.start >= FIRMWARE_VOLUME.gpa + FIRMWARE_VOLUME.bytes).toBe(true);
      }
      // The machine backs the volume whatever the RAM size.
      expect(guestPhysicalBytes(memory) >= FIRMWARE_VOLUME.gpa + FIRMWARE_VOLUME.bytes).toBe(true);
    }
  });

  it.each(['tdx', 'snp'] as const)('%s: an 8 GiB guest boots; its E820 map has RAM on both sides of the hole and nothing over the volume', (platform) => {
    const run = bootGuest(parseBootOptions({ platform, memory: '8G' }));
    expect(run.result.outcome, run.result.outcomeReason).toBe('done');
    const bp = bootParams(run.platform.machine);
    for (const e of bp.e820) expect(e.addr + e.size <= ABI.MV_RAM_HOLE_GPA || e.addr >= ABI.MV_RAM_HOLE_END).toBe(true);
    const usable = bp.e820.filter((e) => e.type === 1 || e.type === 15);
    expect(usable.some((e) => e.addr + e.size === ABI.MV_RAM_HOLE_GPA)).toBe(true);
    expect(usable.some((e) => e.addr === ABI.MV_RAM_HOLE_END && e.addr + e.size === 8n * GiB)).toBe(true);
    // The volume itself is private, accepted memory (pre-accepted by the launch), not RAM; the rest
    // of the hole was never accepted by anyone.
    expect(run.platform.pageState(FIRMWARE_VOLUME.gpa).accepted).toBe(true);
    expect(run.platform.pageState(ABI.MV_RAM_HOLE_GPA).accepted).toBe(false);
    expect(verifyBoot(run).ok).toBe(true);
    run.platform.machine.close();
  });
});

describe('the firmware volume is measured', () => {
  it.each(['tdx', 'snp'] as const)('%s: changing one byte of the volume changes the launch measurement', (platform) => {
    const honest = measurement(platform);
    expect(honest).toMatch(/^[0-9a-f]{96}$/);
    expect(measurement(platform)).toBe(honest);  // deterministic
    const changed = measurement(platform, (images) => withVolumeByte(images, 0x90));
    expect(changed).not.toBe(honest);
  });
});

describe('a firmware must have its reset vector at 0xFFFFFFF0', () => {
  it('rejects a firmware ELF whose e_entry is not the reset vector, with a clear error', () => {
    const elf = Buffer.from(readFileSync(builtImagePaths().firmware));
    elf.writeBigUInt64LE(ABI.MV_FIRMWARE_LOAD_GPA, 24);  // e_entry: _start in the initial image
    const path = join(mkdtempSync(join(tmpdir(), 'minivisor-fv-')), 'entry-elsewhere.elf');
    writeFileSync(path, elf);
    expect(() => bootGuest(parseBootOptions({ platform: 'tdx', memory: '128M', firmware: path }))).toThrow(GuestImageError);
    expect(() => bootGuest(parseBootOptions({ platform: 'tdx', memory: '128M', firmware: path }))).toThrow(/is not the reset vector 0xfffffff0/);
  });
});
