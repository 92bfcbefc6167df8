// The guest images build from source and load into a Machine at their ABI addresses. The full
// boot needs the TDX/SNP platform models; here the firmware only runs up to platform
// detection, with the host answering "neither TDX nor SNP" (so it must stop by itself).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Machine } from '../../../src/cpu/machine.js';
import { loadElf, parseElf, type ElfImage } from '../../../src/boot/elf.js';
import { ABI, FIRMWARE_LOAD, FIRMWARE_REGION_LOAD, FIRMWARE_VOLUME, FW_CONFIG_GPA, GUEST_IMAGE_LOAD, KERNEL_LOAD_GPA, PRE_ACCEPTED, guestPhysicalBytes } from '../../../src/boot/layout.js';
import { encodeFirmwareConfig } from '../../../src/boot/fw-config.js';
import { crc32, decodeLz4Block } from '../../../src/boot/lz4.js';

const root = join(import.meta.dirname, '../../..');
const FIRMWARE_ELF = join(root, 'firmware/build/firmware.elf');
const GUEST_IMAGE_ELF = join(root, 'guest/build/guest-image.elf');
const MEMORY = 256n << 20n;
/** RAM plus the firmware volume below 4 GiB. */
const PHYSICAL = guestPhysicalBytes(MEMORY);

let firmware: ElfImage;
let guestImage: ElfImage;

beforeAll(() => {
  // Incremental and quiet: a no-op when the install step already built them.
  execFileSync('make', ['-s', '-C', join(root, 'firmware')], { stdio: 'pipe' });
  execFileSync('make', ['-s', '-C', join(root, 'guest')], { stdio: 'pipe' });
  firmware = parseElf(readFileSync(FIRMWARE_ELF), { physicalBytes: PHYSICAL, windows: [FIRMWARE_LOAD, FIRMWARE_REGION_LOAD] });
  guestImage = parseElf(readFileSync(GUEST_IMAGE_ELF), { physicalBytes: PHYSICAL, windows: [GUEST_IMAGE_LOAD] });
});

function bootMachine(): Machine {
  const vm = new Machine({ memoryBytes: PHYSICAL });
  vm.gate.set('private', PRE_ACCEPTED.gpa, PRE_ACCEPTED.bytes, 'readwrite');
  vm.gate.set('private', FIRMWARE_VOLUME.gpa, FIRMWARE_VOLUME.bytes, 'readwrite');
  loadElf(vm.memory, firmware);
  loadElf(vm.memory, guestImage);
  vm.memory.write(FW_CONFIG_GPA, encodeFirmwareConfig({
    memoryBytes: MEMORY, preAccept: 64n << 20n, acceptMode: 'lazy', acceptUnit: 0x200000,
    workloadBytes: 64n << 20n, seed: 1n, guestImageEntry: guestImage.entry,
  }));
  // The entry state of a TD vCPU (32-bit, paging off, EFER.LME) at the reset vector, without the TDX module.
  vm.vcpu.enter({ mode: 'protected32' });
  vm.vcpu.writeSpecial('efer', 0x901n);
  vm.vcpu.regs.rip = firmware.entry;
  return vm;
}

describe('guest images', () => {
  it('link at their ABI addresses: a text and a data segment, and the firmware volume with the reset vector', () => {
    expect(firmware.entry).toBe(ABI.MV_RESET_VECTOR_GPA);
    expect(guestImage.entry).toBe(ABI.MV_GUEST_IMAGE_GPA);
    expect(firmware.segments.map((s) => [s.executable, s.writable])).toEqual([[true, false], [false, true], [true, false]]);
    expect(guestImage.segments.map((s) => [s.executable, s.writable])).toEqual([[true, false], [false, true]]);
    for (const s of [...firmware.segments, ...guestImage.segments]) expect(s.gpa).toBe(s.vaddr);
    // The volume ends exactly at 4 GiB; its last 16 bytes are the reset vector.
    const volume = firmware.segments[2]!;
    expect([volume.gpa, volume.memSize, BigInt(volume.data.byteLength)]).toEqual([FIRMWARE_VOLUME.gpa, FIRMWARE_VOLUME.bytes, FIRMWARE_VOLUME.bytes]);
    expect([...volume.data.subarray(-16, -11)]).toEqual([0x0f, 0x20, 0xc0, 0xa8, 0x01]);  // mov eax, cr0; test al, 1
    const kernel = parseElf(readFileSync(join(root, 'guest/build/kernel.elf')), { physicalBytes: MEMORY });
    expect(kernel.entry).toBe(KERNEL_LOAD_GPA);
  });

  it('carry the kernel as an LZ4 payload that decodes to the flat kernel image', () => {
    const payload = readFileSync(join(root, 'guest/build/kernel.mvkz'));
    expect(payload.readUInt32LE(0)).toBe(Number(ABI.MV_PAYLOAD_MAGIC));
    const compressed = payload.readUInt32LE(4);
    const imageBytes = payload.readUInt32LE(8);
    expect(payload.readBigUInt64LE(16)).toBe(KERNEL_LOAD_GPA);
    expect(payload.byteLength).toBe(Number(ABI.MV_PAYLOAD_HEADER_SIZE) + compressed);
    const flat = decodeLz4Block(payload.subarray(Number(ABI.MV_PAYLOAD_HEADER_SIZE)), imageBytes);
    expect(flat.byteLength).toBe(imageBytes);
    expect(payload.readUInt32LE(32)).toBe(crc32(flat));
    expect(Buffer.compare(flat, readFileSync(join(root, 'guest/build/kernel.bin')))).toBe(0);
    // ... and the payload really is inside the guest image's read-only segment.
    const text = Buffer.from(guestImage.segments[0]!.data);
    expect(text.indexOf(payload.subarray(0, 64))).toBeGreaterThan(0);
  });

  it('load into a Machine: bytes at the segment addresses, bss zeroed', () => {
    using vm = bootMachine();
    for (const s of [...firmware.segments, ...guestImage.segments]) {
      expect(Buffer.from(vm.memory.read(s.gpa, s.data.byteLength)).equals(Buffer.from(s.data))).toBe(true);
      const bss = Number(s.memSize) - s.data.byteLength;
      if (bss > 0) expect(vm.memory.read(s.gpa + BigInt(s.data.byteLength), bss).every((b) => b === 0)).toBe(true);
    }
  });

  it('firmware runs to platform detection and stops when the platform is neither TDX nor SNP', () => {
    using vm = bootMachine();
    const detect = vm.vcpu.run();
    expect(detect).toMatchObject({ kind: 'cpuid', leaf: 0x21 });
    vm.vcpu.regs.rax = 0n; vm.vcpu.regs.rbx = 0n; vm.vcpu.regs.rcx = 0n; vm.vcpu.regs.rdx = 0n;
    vm.vcpu.complete(detect as { length: number });
    const sevStatus = vm.vcpu.run();
    expect(sevStatus).toMatchObject({ kind: 'rdmsr', msr: 0xc0010131 });
    vm.vcpu.regs.rax = 0n; vm.vcpu.regs.rdx = 0n;
    vm.vcpu.complete(sevStatus as { length: number });
    expect(vm.vcpu.run().kind).toBe('hlt');
    // It loaded its own GDT and IDT from the image, not the VMM's.
    const gdtr = vm.vcpu.readSpecial('gdtrBase');
    expect(gdtr >= FIRMWARE_LOAD.start && gdtr < FIRMWARE_LOAD.end).toBe(true);
    expect(vm.vcpu.readSpecial('idtrLimit')).toBe(32n * 16n - 1n);
  });
});
