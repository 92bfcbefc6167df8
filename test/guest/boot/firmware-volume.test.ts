// Row 19 of issue 9: the firmware volume at the top of 4 GiB (TDVF/OVMF's BFV) holds the reset
// vector; it is measured through the launch path (TDX PAGE.ADD + MR.EXTEND into MRTD, SNP
// SNP_LAUNCH_UPDATE into the launch digest) and lies in a hole with no RAM. Issue 12: a firmware's
// volume may be as large as td-shim's 16 MiB image, all of it added, measured and mapped.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBootOptions } from '../../../src/cli/boot-options.js';
import { bootGuest } from '../../../src/boot/boot-guest.js';
import { BootSession } from '../../../src/boot/boot-session.js';
import { GuestImageError, builtImagePaths, type BootImages } from '../../../src/boot/images.js';
import { ABI, FIRMWARE_REGION, FIRMWARE_VOLUME, guestPhysicalBytes, guestRamBytes, guestRamRanges } from '../../../src/boot/layout.js';
import { parseElf, type ElfImage, type ElfSegment } from '../../../src/boot/elf.js';
import { writeElf } from '../../helpers/elf-writer.js';
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

/** Our firmware with one more segment, [gpa, gpa + bytes) of a byte pattern, written to a file. */
function firmwareWith(extra: { gpa: bigint; bytes: bigint; fill?: (data: Uint8Array) => void }): string {
  const ours = parseElf(readFileSync(builtImagePaths().firmware), { physicalBytes: 1n << 32n });
  const data = new Uint8Array(Number(extra.bytes));
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 0xff;
  extra.fill?.(data);
  const segment: ElfSegment = { gpa: extra.gpa, vaddr: extra.gpa, data, memSize: extra.bytes, readable: true, writable: false, executable: false };
  const image: ElfImage = { entry: ours.entry, segments: [...ours.segments, segment] };
  const path = join(mkdtempSync(join(tmpdir(), 'minivisor-fv-')), `firmware-${extra.gpa.toString(16)}.elf`);
  writeFileSync(path, writeElf(image));
  return path;
}

describe('a firmware volume as large as td-shim\'s image (16 MiB below 4 GiB)', () => {
  // The whole region: [0xFF000000, 0xFFFFF000) of data below our firmware's last page.
  const whole = { gpa: FIRMWARE_REGION.gpa, bytes: ABI.MV_FIRMWARE_VOLUME_GPA - FIRMWARE_REGION.gpa };

  it.each(['tdx', 'snp'] as const)('%s: boots clean, every page of the volume is private and accepted and holds the image\'s bytes', (platform) => {
    const path = firmwareWith(whole);
    const run = bootGuest(parseBootOptions({ platform, memory: '128M', firmware: path }), { keepTrace: platform === 'tdx' });
    expect(run.result.outcome, run.result.outcomeReason).toBe('done');
    expect(verifyBoot(run).ok).toBe(true);
    const expected = parseElf(readFileSync(path), { physicalBytes: 1n << 32n }).segments.find((s) => s.gpa === whole.gpa)!.data;
    for (const gpa of [FIRMWARE_REGION.gpa, FIRMWARE_REGION.gpa + 0x7ff000n, 0xffdff000n, 0xffe00000n, FIRMWARE_VOLUME.gpa]) {
      const state = run.platform.pageState(gpa);
      expect([gpa, state.visibility, state.accepted]).toEqual([gpa, 'private', true]);
      if (gpa < FIRMWARE_VOLUME.gpa) {
        const offset = Number(gpa - whole.gpa);
        expect(Buffer.from(run.platform.machine.memory.read(gpa, 4096)).equals(Buffer.from(expected.subarray(offset, offset + 4096)))).toBe(true);
      }
    }
    if (platform === 'tdx') {
      // TDH.MEM.PAGE.ADD of all 4096 pages and TDH.MR.EXTEND of every 256-byte chunk of them (the
      // volume's PAGE.ADDs are one trace event with `pages`, their chunks one with `calls`).
      const setup = run.trace.events.filter((e) => e.type === 'seamcall' && e.stage === 'vmm' && typeof e.rcx === 'bigint' && e.rcx >= FIRMWARE_REGION.gpa && e.rcx < 1n << 32n);
      expect(setup.filter((e) => e.leaf === 'TDH_MEM_PAGE_ADD').reduce((n, e) => n + Number(e.pages ?? 1), 0)).toBe(4096);
      const extends_ = setup.filter((e) => e.leaf === 'TDH_MR_EXTEND');
      expect(extends_.reduce((n, e) => n + Number(e.calls ?? 1), 0)).toBe(4096 * 16);
      // One 2 MiB S-EPT level per 2 MiB of the volume: eight.
      expect(setup.filter((e) => e.leaf === 'TDH_MEM_SEPT_ADD' && (BigInt(e.rcx as bigint) & 7n) === 1n)).toHaveLength(8);
    }
    run.platform.machine.close();
  }, 120_000);

  it.each(['tdx', 'snp'] as const)('%s: its lowest byte is measured: changing it changes the launch measurement', (platform) => {
    const measure = (path: string) => {
      const session = BootSession.create(parseBootOptions({ platform, memory: '128M', firmware: path }));
      const m = session.platform.measurement;
      session.platform.machine.close();
      return m;
    };
    const a = measure(firmwareWith(whole));
    expect(measure(firmwareWith(whole))).toBe(a);
    expect(measure(firmwareWith({ ...whole, fill: (d) => { d[0] ^= 1; } }))).not.toBe(a);
    expect(a).not.toBe(measurement(platform));
  }, 120_000);

  it('a volume that starts mid-region spans only its own pages: the region below stays unaccepted hole', () => {
    const path = firmwareWith({ gpa: 0xffc00000n, bytes: 0x3ff000n });  // OVMF's 4 MiB image
    const run = bootGuest(parseBootOptions({ platform: 'snp', memory: '128M', firmware: path }));
    expect(run.result.outcome, run.result.outcomeReason).toBe('done');
    expect(run.platform.pageState(0xffc00000n).accepted).toBe(true);
    expect(run.platform.pageState(0xffbff000n).accepted).toBe(false);
    run.platform.machine.close();
  });

  it.each([
    ['a page just below the region', { gpa: 0xfefff000n, bytes: 0x1000n }, /firmware image ".*": segment \[0xfefff000, 0xff000000\) is outside the firmware's windows \[0x301000, 0x340000\) \(252 KiB in the initial image\) and \[0xff000000, 4 GiB\) \(the 16 MiB firmware region\)/],
    ['a page more than 16 MiB', { gpa: 0xfefff000n, bytes: 0x2000n }, /segment \[0xfefff000, 0xff001000\) makes the firmware volume 16388 KiB \(it would start at 0xfefff000\): too large/],
    ['a 32 MiB volume', { gpa: 0xfe000000n, bytes: 0x1800000n }, /segment \[0xfe000000, 0xff800000\) makes the firmware volume 32 MiB \(it would start at 0xfe000000\): too large, the volume holds at most 16 MiB, the firmware region \[0xff000000, 4 GiB\) \(td-shim's image size\)/],
    ['past the initial-image window', { gpa: 0x33f000n, bytes: 0x3000n }, /segment \[0x33f000, 0x342000\) runs 8 KiB past the firmware's window \[0x301000, 0x340000\) \(252 KiB in the initial image\): link a larger firmware into the firmware region \[0xff000000, 4 GiB\)/],
  ] as const)('refuses a firmware that does not fit with one clear error: %s', (_name, extra, message) => {
    const path = firmwareWith(extra);
    expect(() => bootGuest(parseBootOptions({ platform: 'tdx', memory: '128M', firmware: path }))).toThrow(GuestImageError);
    expect(() => bootGuest(parseBootOptions({ platform: 'tdx', memory: '128M', firmware: path }))).toThrow(message);
  });
});
