// The launch part of an attack program that edits the initial image (src/fuzz/launch.ts): image
// writes and the memory description go into a copy of the image the VMM loads, into the config
// page or the segment that holds them, and nowhere else. The boot keeps one set of images for
// every launch of a campaign, so an edit that reached it would leak into every later launch.
import { describe, expect, it } from 'vitest';
import { launchOverride } from '../../../src/fuzz/launch.js';
import { ABI, FW_CONFIG_GPA } from '../../../src/boot/layout.js';
import type { BootImages } from '../../../src/boot/images.js';
import type { AttackProgram, LaunchAction } from '../../../src/fuzz/attack-program.js';

const FIRMWARE_GPA = 0xffff0000n;
const GUEST_GPA = 0x800000n;

function images(): BootImages {
  return {
    firmware: { entry: FIRMWARE_GPA, segments: [{ gpa: FIRMWARE_GPA, data: new Uint8Array(0x100).fill(0x11), vaddr: FIRMWARE_GPA, memSize: 0x100n, readable: true, writable: false, executable: true }] },
    guestImage: { entry: GUEST_GPA, segments: [{ gpa: GUEST_GPA, data: new Uint8Array(0x200).fill(0x22), vaddr: GUEST_GPA, memSize: 0x200n, readable: true, writable: true, executable: true }] },
    config: { gpa: FW_CONFIG_GPA, bytes: new Uint8Array(0x80).fill(0x33) },
  };
}

function edit(launch: LaunchAction[], memoryDescription?: AttackProgram['memoryDescription']) {
  const program: AttackProgram = { platform: 'tdx', decisions: [], launch, ...(memoryDescription ? { memoryDescription } : {}) };
  const before = images();
  const kept = structuredClone(before);
  const after = launchOverride(program).images!(before);
  expect(before).toEqual(kept);  // the images it was given are untouched
  return after;
}

const write = (gpa: bigint, value: bigint, size: 1 | 2 | 4 | 8): LaunchAction => ({ kind: 'image-write', gpa, value, size });

describe('launch image writes', () => {
  it('a write inside a segment lands in a copy of that segment, little-endian, and nowhere else', () => {
    const after = edit([write(GUEST_GPA + 0x1fcn, 0x0a0b0c0dn, 4)]);
    const data = after.guestImage.segments[0]!.data;
    expect([...data.subarray(0x1fa, 0x200)]).toEqual([0x22, 0x22, 0x0d, 0x0c, 0x0b, 0x0a]);
    expect(data.length).toBe(0x200);
    expect(after.firmware).toEqual(images().firmware);
    expect(after.config).toEqual(images().config);
  });

  it('a write that would cross a segment\'s end, or fall outside every segment and the config page, changes nothing', () => {
    for (const gpa of [GUEST_GPA + 0x1fdn, FIRMWARE_GPA + 0xfen, GUEST_GPA - 1n, 0x10000000n]) {
      expect(edit([write(gpa, 0xffffffffn, 4)])).toEqual(images());
    }
  });

  it('the config page takes writes up to its last byte, grown to a whole page with the old bytes kept', () => {
    const after = edit([write(FW_CONFIG_GPA + 0xff8n, 0x0102030405060708n, 8)]);
    expect(after.config.gpa).toBe(FW_CONFIG_GPA);
    expect(after.config.bytes.length).toBe(0x1000);
    expect([...after.config.bytes.subarray(0, 0x80)]).toEqual(Array(0x80).fill(0x33));
    expect([...after.config.bytes.subarray(0x80, 0xff8)].every((b) => b === 0)).toBe(true);
    expect([...after.config.bytes.subarray(0xff8)]).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    // One byte further would cross the page: not written.
    expect(edit([write(FW_CONFIG_GPA + 0xff9n, 0x0102030405060708n, 8)])).toEqual(images());
  });

  it('the memory description is written at the config fields boot_abi.h names', () => {
    const after = edit([], { memoryBytes: 0x1234_5678_9000n, preAcceptBytes: 0x20_0000n });
    const view = new DataView(after.config.bytes.buffer, after.config.bytes.byteOffset);
    expect(view.getBigUint64(Number(ABI.MV_FW_CONFIG_OFF_MEMORY_BYTES), true)).toBe(0x1234_5678_9000n);
    expect(view.getBigUint64(Number(ABI.MV_FW_CONFIG_OFF_PRE_ACCEPT_BYTES), true)).toBe(0x20_0000n);
  });

  it('several writes apply in order, the later one winning where they overlap', () => {
    const after = edit([write(GUEST_GPA, 0x1111n, 2), write(GUEST_GPA + 1n, 0xffn, 1)]);
    expect([...after.guestImage.segments[0]!.data.subarray(0, 3)]).toEqual([0x11, 0xff, 0x22]);
  });
});
