// The firmware config the VMM writes at FW_CONFIG_GPA before the vCPU starts
// (struct mv_fw_config in guest/include/minivisor/boot_abi.h), and a reader for the boot
// params the firmware builds (struct mv_boot_params), for the host's checks and reports.
import { ABI, ACCEPT_MODE, PLATFORM, PRE_ACCEPT_ALL } from './layout.js';

export interface FirmwareConfig {
  memoryBytes: bigint;
  /** Bytes the firmware accepts from GPA 0 (rounded up to 2 MiB); 'all' = approach I. */
  preAccept: bigint | 'all';
  acceptMode: keyof typeof ACCEPT_MODE;
  acceptUnit: 4096 | 0x200000;
  workloadBytes: bigint;
  seed: bigint;
  /** Untrusted: the firmware detects the platform itself and only reports a mismatch. */
  platformHint?: keyof typeof PLATFORM;
  /** e_entry of guest-image.elf, or a Linux kernel's startup_64 with `linux`. */
  guestImageEntry: bigint;
  /** Enter a Linux kernel through the 64-bit boot protocol (MV_FW_CONFIG_FLAG_LINUX). */
  linux?: boolean;
  /** vCPUs the VMM gives the guest; above 1 the CPU table (MV_CPU_TABLE_OFFSET) follows the config. */
  cpus?: number;
}

export const DEFAULT_FIRMWARE_CONFIG = {
  preAccept: ABI.MV_DEFAULT_PRE_ACCEPT_BYTES,
  acceptMode: 'lazy',
  acceptUnit: 0x200000,
  workloadBytes: ABI.MV_DEFAULT_WORKLOAD_BYTES,
  seed: 0n,
} as const satisfies Partial<FirmwareConfig>;

const off = (name: keyof typeof ABI): number => Number(ABI[name]);

/**
 * The MV_FW_CONFIG_SIZE bytes to write at FW_CONFIG_GPA, and with several vCPUs the CPU table
 * after them (a one-vCPU config page is byte for byte what it was before the table existed).
 */
export function encodeFirmwareConfig(config: FirmwareConfig): Uint8Array {
  const cpus = config.cpus ?? 1;
  const b = Buffer.alloc(cpus > 1 ? Number(ABI.MV_CPU_TABLE_OFFSET) + 8 : Number(ABI.MV_FW_CONFIG_SIZE));
  if (cpus > 1) {
    b.writeUInt32LE(Number(ABI.MV_CPU_TABLE_MAGIC), off('MV_CPU_TABLE_OFFSET'));
    b.writeUInt32LE(cpus, off('MV_CPU_TABLE_OFFSET') + 4);
  }
  b.writeUInt32LE(Number(ABI.MV_FW_CONFIG_MAGIC), off('MV_FW_CONFIG_OFF_MAGIC'));
  b.writeUInt16LE(Number(ABI.MV_FW_CONFIG_VERSION), off('MV_FW_CONFIG_OFF_VERSION'));
  b.writeUInt16LE(Number(ABI.MV_FW_CONFIG_SIZE), off('MV_FW_CONFIG_OFF_SIZE'));
  b.writeBigUInt64LE(config.memoryBytes, off('MV_FW_CONFIG_OFF_MEMORY_BYTES'));
  b.writeBigUInt64LE(config.preAccept === 'all' ? PRE_ACCEPT_ALL : config.preAccept, off('MV_FW_CONFIG_OFF_PRE_ACCEPT_BYTES'));
  b.writeBigUInt64LE(config.workloadBytes, off('MV_FW_CONFIG_OFF_WORKLOAD_BYTES'));
  b.writeBigUInt64LE(BigInt.asUintN(64, config.seed), off('MV_FW_CONFIG_OFF_SEED'));
  b.writeUInt32LE(ACCEPT_MODE[config.acceptMode], off('MV_FW_CONFIG_OFF_ACCEPT_MODE'));
  b.writeUInt32LE(config.acceptUnit, off('MV_FW_CONFIG_OFF_ACCEPT_UNIT'));
  b.writeUInt32LE(PLATFORM[config.platformHint ?? 'none'], off('MV_FW_CONFIG_OFF_PLATFORM_HINT'));
  b.writeUInt32LE(config.linux ? Number(ABI.MV_FW_CONFIG_FLAG_LINUX) : 0, off('MV_FW_CONFIG_OFF_FLAGS'));
  b.writeBigUInt64LE(config.guestImageEntry, off('MV_FW_CONFIG_OFF_GUEST_IMAGE_ENTRY'));
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export interface E820Entry {
  addr: bigint;
  size: bigint;
  type: number;
}

export interface BootParamsView {
  magicOk: boolean;
  platform: number;
  memoryBytes: bigint;
  sharedMask: bigint;
  privateMask: bigint;
  acceptUnit: bigint;
  workloadBytes: bigint;
  bitmapGpa: bigint;
  bitmapBytes: bigint;
  kernelGpa: bigint;
  kernelBytes: bigint;
  e820: E820Entry[];
}

/** Reads the parts of struct mv_boot_params the host cares about (bytes from BOOT_PARAMS_GPA). */
export function decodeBootParams(bytes: Uint8Array): BootParamsView {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = Math.min(b.readUInt32LE(off('MV_BOOT_PARAMS_OFF_E820_COUNT')), Number(ABI.MV_E820_MAX_ENTRIES));
  const e820: E820Entry[] = [];
  for (let i = 0; i < count; i++) {
    const o = off('MV_BOOT_PARAMS_OFF_E820') + i * Number(ABI.MV_E820_ENTRY_SIZE);
    if (o + 24 > b.byteLength) break;
    e820.push({ addr: b.readBigUInt64LE(o), size: b.readBigUInt64LE(o + 8), type: b.readUInt32LE(o + 16) });
  }
  return {
    magicOk: b.readUInt32LE(off('MV_BOOT_PARAMS_OFF_MAGIC')) === Number(ABI.MV_BOOT_PARAMS_MAGIC),
    platform: b.readUInt32LE(off('MV_BOOT_PARAMS_OFF_PLATFORM')),
    memoryBytes: b.readBigUInt64LE(off('MV_BOOT_PARAMS_OFF_MEMORY_BYTES')),
    sharedMask: b.readBigUInt64LE(off('MV_BOOT_PARAMS_OFF_SHARED_MASK')),
    privateMask: b.readBigUInt64LE(off('MV_BOOT_PARAMS_OFF_PRIVATE_MASK')),
    acceptUnit: BigInt(b.readUInt32LE(off('MV_BOOT_PARAMS_OFF_ACCEPT_UNIT'))),
    workloadBytes: b.readBigUInt64LE(off('MV_BOOT_PARAMS_OFF_WORKLOAD_BYTES')),
    bitmapGpa: b.readBigUInt64LE(off('MV_BOOT_PARAMS_OFF_BITMAP_GPA')),
    bitmapBytes: b.readBigUInt64LE(off('MV_BOOT_PARAMS_OFF_BITMAP_BYTES')),
    kernelGpa: b.readBigUInt64LE(off('MV_BOOT_PARAMS_OFF_KERNEL_GPA')),
    kernelBytes: b.readBigUInt64LE(off('MV_BOOT_PARAMS_OFF_KERNEL_BYTES')),
    e820,
  };
}
