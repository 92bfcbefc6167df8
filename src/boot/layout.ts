// The boot ABI's numbers, mirrored from guest/include/minivisor/boot_abi.h (the header is the
// source of truth; test/unit/boot/layout.test.ts parses it and fails on any difference).
// Guest-physical layout, firmware config and boot-params offsets: see the header's comments.

/** Every `#define MV_* 0x...` of boot_abi.h, by name. */
export const ABI = {
  MV_PAGE_SIZE: 0x1000n,
  MV_SIZE_2M: 0x200000n,
  MV_TEMP_RAM_GPA: 0x200000n,
  MV_TEMP_RAM_BYTES: 0x100000n,
  MV_BOOT_PARAMS_GPA: 0x200000n,
  MV_BOOT_PARAMS_BYTES: 0x2000n,
  MV_GHCB_GPA: 0x202000n,
  MV_PT_POOL_GPA: 0x204000n,
  MV_PT_POOL_BYTES: 0x7a000n,
  MV_MP_MAILBOX_GPA: 0x27e000n,
  MV_MP_MAILBOX_OFF_COMMAND: 0x0n,
  MV_MP_MAILBOX_OFF_APIC_ID: 0x4n,
  MV_MP_MAILBOX_OFF_VECTOR: 0x8n,
  MV_MP_MAILBOX_OFF_OS: 0x10n,
  MV_MP_WAKEUP_COMMAND_NOOP: 0x0n,
  MV_MP_WAKEUP_COMMAND_WAKEUP: 0x1n,
  MV_MAX_VCPUS: 0x40n,
  MV_SNP_CPUID_PAGE_GPA: 0x27f000n,
  MV_FW_STACK_BOTTOM: 0x280000n,
  MV_FW_STACK_TOP: 0x2c0000n,
  MV_DECOMPRESSOR_STACK_TOP: 0x300000n,
  MV_INITIAL_IMAGE_GPA: 0x300000n,
  MV_INITIAL_IMAGE_BYTES: 0x100000n,
  MV_INITIAL_IMAGE_END: 0x400000n,
  MV_FW_CONFIG_GPA: 0x300000n,
  MV_FIRMWARE_LOAD_GPA: 0x301000n,
  MV_FIRMWARE_LOAD_LIMIT: 0x340000n,
  MV_GUEST_IMAGE_GPA: 0x340000n,
  MV_GUEST_IMAGE_LIMIT: 0x400000n,
  MV_FIRMWARE_REGION_GPA: 0xff000000n,
  MV_FIRMWARE_REGION_BYTES: 0x1000000n,
  MV_FIRMWARE_VOLUME_GPA: 0xfffff000n,
  MV_FIRMWARE_VOLUME_BYTES: 0x1000n,
  MV_RESET_VECTOR_GPA: 0xfffffff0n,
  MV_RAM_HOLE_GPA: 0xff000000n,
  MV_RAM_HOLE_END: 0x100000000n,
  MV_FIRMWARE_RESERVED_GPA: 0x200000n,
  MV_FIRMWARE_RESERVED_END: 0x400000n,
  MV_KERNEL_LOAD_GPA: 0x1000000n,
  MV_KERNEL_MAX_BYTES: 0x800000n,
  MV_KERNEL_STACK_BYTES: 0x10000n,
  MV_SHARED_WINDOW_VA: 0x400000000000n,
  MV_MIN_MEMORY_BYTES: 0x2000000n,
  MV_MAX_MEMORY_BYTES: 0x400000000000n,
  MV_FW_CONFIG_MAGIC: 0x4346564dn,
  MV_FW_CONFIG_VERSION: 0x1n,
  MV_PRE_ACCEPT_ALL: 0xffffffffffffffffn,
  MV_DEFAULT_PRE_ACCEPT_BYTES: 0x4000000n,
  MV_DEFAULT_WORKLOAD_BYTES: 0x4000000n,
  MV_ACCEPT_MODE_LAZY: 0x0n,
  MV_ACCEPT_MODE_EAGER: 0x1n,
  MV_PLATFORM_NONE: 0x0n,
  MV_PLATFORM_TDX: 0x1n,
  MV_PLATFORM_SNP: 0x2n,
  MV_FW_CONFIG_OFF_MAGIC: 0x0n,
  MV_FW_CONFIG_OFF_VERSION: 0x4n,
  MV_FW_CONFIG_OFF_SIZE: 0x6n,
  MV_FW_CONFIG_OFF_MEMORY_BYTES: 0x8n,
  MV_FW_CONFIG_OFF_PRE_ACCEPT_BYTES: 0x10n,
  MV_FW_CONFIG_OFF_WORKLOAD_BYTES: 0x18n,
  MV_FW_CONFIG_OFF_SEED: 0x20n,
  MV_FW_CONFIG_OFF_ACCEPT_MODE: 0x28n,
  MV_FW_CONFIG_OFF_ACCEPT_UNIT: 0x2cn,
  MV_FW_CONFIG_OFF_PLATFORM_HINT: 0x30n,
  MV_FW_CONFIG_OFF_FLAGS: 0x34n,
  MV_FW_CONFIG_OFF_GUEST_IMAGE_ENTRY: 0x38n,
  MV_FW_CONFIG_SIZE: 0x40n,
  MV_FW_CONFIG_FLAG_LINUX: 0x1n,
  MV_LINUX_BOOT_DATA_GPA: 0x340000n,
  MV_CONSOLE_BATCH_MAX: 0x7f0n,
  MV_CONSOLE_PAGE_GPA: 0x203000n,
  MV_CONSOLE_VMCALL: 0x4d56n,
  MV_CONSOLE_VMCALL_WRITE: 0x1n,
  MV_CPU_TABLE_OFFSET: 0x80n,
  MV_CPU_TABLE_MAGIC: 0x5550434dn,
  MV_MAP_OVERRIDE_OFFSET: 0x100n,
  MV_MAP_OVERRIDE_MAGIC: 0x564f564dn,
  MV_MAP_OVERRIDE_MAX_ENTRIES: 0x80n,
  MV_E820_RAM: 0x1n,
  MV_E820_RESERVED: 0x2n,
  MV_E820_UNACCEPTED: 0xfn,
  MV_E820_MAX_ENTRIES: 0x80n,
  MV_E820_ENTRY_SIZE: 0x18n,
  MV_BOOT_PARAMS_MAGIC: 0x5042564dn,
  MV_BOOT_PARAMS_VERSION: 0x1n,
  MV_STAGE_FIRMWARE: 0x0n,
  MV_STAGE_DECOMPRESSOR: 0x1n,
  MV_STAGE_KERNEL: 0x2n,
  MV_STAGE_COUNT: 0x3n,
  MV_BOOT_PARAMS_OFF_MAGIC: 0x0n,
  MV_BOOT_PARAMS_OFF_PLATFORM: 0x8n,
  MV_BOOT_PARAMS_OFF_E820_COUNT: 0x14n,
  MV_BOOT_PARAMS_OFF_MEMORY_BYTES: 0x18n,
  MV_BOOT_PARAMS_OFF_SHARED_MASK: 0x30n,
  MV_BOOT_PARAMS_OFF_PRIVATE_MASK: 0x38n,
  MV_BOOT_PARAMS_OFF_BITMAP_GPA: 0x68n,
  MV_BOOT_PARAMS_OFF_STATS: 0x90n,
  MV_BOOT_PARAMS_OFF_E820: 0x100n,
  MV_BOOT_PARAMS_OFF_ACCEPT_UNIT: 0x10n,
  MV_BOOT_PARAMS_OFF_WORKLOAD_BYTES: 0x20n,
  MV_BOOT_PARAMS_OFF_BITMAP_BYTES: 0x70n,
  MV_BOOT_PARAMS_OFF_KERNEL_GPA: 0x78n,
  MV_BOOT_PARAMS_OFF_KERNEL_BYTES: 0x80n,
  MV_PAYLOAD_MAGIC: 0x344c564dn,
  MV_PAYLOAD_HEADER_SIZE: 0x28n,
  MV_SNP_TERM_SET_GENERAL: 0x0n,
  MV_SNP_TERM_SET_LINUX: 0x1n,
  MV_SNP_TERM_GENERAL: 0x0n,
  MV_SNP_TERM_REGISTER: 0x0n,
  MV_SNP_TERM_PSC: 0x1n,
  MV_SNP_TERM_PVALIDATE: 0x2n,
  MV_SNP_TERM_NOT_VMPL0: 0x3n,
  MV_SNP_TERM_CPUID: 0x4n,
  MV_SNP_TERM_SET_MINIVISOR: 0x3n,
  MV_SNP_TERM_MINIVISOR_FATAL: 0x1n,
  MV_CONSOLE_PORT: 0x3f8n,
} as const satisfies Record<string, bigint>;

export type AbiName = keyof typeof ABI;

// Named views for the VMM.
/** Pre-accepted, zero-filled, not measured: boot params, GHCB, page-table pool, stacks. */
export const TEMP_RAM = { gpa: ABI.MV_TEMP_RAM_GPA, bytes: ABI.MV_TEMP_RAM_BYTES } as const;
/** Pre-accepted and measured: firmware config, firmware ELF, guest image. */
export const INITIAL_IMAGE = { gpa: ABI.MV_INITIAL_IMAGE_GPA, bytes: ABI.MV_INITIAL_IMAGE_BYTES } as const;
/**
 * The initial image's first page, the firmware config (FW_CONFIG_GPA), and the rest of it (the
 * firmware ELF and the guest image): the VMM measures the config page after the rest and after
 * the firmware volume (platforms.ts says why).
 */
export const FW_CONFIG_PAGE = { gpa: ABI.MV_FW_CONFIG_GPA, bytes: 0x1000n } as const;
export const INITIAL_IMAGE_PAST_CONFIG = { gpa: ABI.MV_FW_CONFIG_GPA + 0x1000n, bytes: ABI.MV_INITIAL_IMAGE_END - ABI.MV_FW_CONFIG_GPA - 0x1000n } as const;
/** Everything the VMM must pre-accept (PAGE.ADD / SNP launch update) before the vCPU starts. */
export const PRE_ACCEPTED = { gpa: ABI.MV_TEMP_RAM_GPA, bytes: ABI.MV_TEMP_RAM_BYTES + ABI.MV_INITIAL_IMAGE_BYTES } as const;
/**
 * Our firmware's volume at the top of 4 GiB (TDVF's BFV): its last page, pre-accepted and
 * measured like the initial image, the reset vector in its last 16 bytes. Not RAM: it lies in
 * the RAM hole. A user's firmware has the volume its segments span (`firmwareVolume`).
 */
export const FIRMWARE_VOLUME = { gpa: ABI.MV_FIRMWARE_VOLUME_GPA, bytes: ABI.MV_FIRMWARE_VOLUME_BYTES } as const;
/**
 * Where a firmware volume may lie: the 16 MiB below 4 GiB, td-shim's whole image
 * (td-layout build_time.rs: TD_SHIM_FIRMWARE_BASE 0xFF000000, TD_SHIM_FIRMWARE_SIZE 16 MiB);
 * OVMF/TDVF's 4 MiB image maps at 0xFFC00000 inside it.
 */
export const FIRMWARE_REGION = { gpa: ABI.MV_FIRMWARE_REGION_GPA, bytes: ABI.MV_FIRMWARE_REGION_BYTES } as const;
/** Where the vCPU starts on both platforms (TDX RIP 0xFFFFFFF0; SNP CS base 0xFFFF0000, IP 0xFFF0). */
export const RESET_VECTOR_GPA = ABI.MV_RESET_VECTOR_GPA;
/** Where firmware.elf's PT_LOAD segments must lie: its window in the initial image, or the firmware region. */
export const FIRMWARE_LOAD = { start: ABI.MV_FIRMWARE_LOAD_GPA, end: ABI.MV_FIRMWARE_LOAD_LIMIT } as const;
/** FIRMWARE_REGION as a load window [start, end): the other place firmware.elf's segments may lie. */
export const FIRMWARE_REGION_LOAD = { start: ABI.MV_FIRMWARE_REGION_GPA, end: ABI.MV_FIRMWARE_REGION_GPA + ABI.MV_FIRMWARE_REGION_BYTES } as const;
/** Where guest-image.elf's PT_LOAD segments must lie. */
export const GUEST_IMAGE_LOAD = { start: ABI.MV_GUEST_IMAGE_GPA, end: ABI.MV_GUEST_IMAGE_LIMIT } as const;
export const FW_CONFIG_GPA = ABI.MV_FW_CONFIG_GPA;
export const BOOT_PARAMS_GPA = ABI.MV_BOOT_PARAMS_GPA;
export const GHCB_GPA = ABI.MV_GHCB_GPA;
export const SNP_CPUID_PAGE_GPA = ABI.MV_SNP_CPUID_PAGE_GPA;
export const KERNEL_LOAD_GPA = ABI.MV_KERNEL_LOAD_GPA;
export const SHARED_WINDOW_VA = ABI.MV_SHARED_WINDOW_VA;
export const PRE_ACCEPT_ALL = ABI.MV_PRE_ACCEPT_ALL;

/** A guest-physical range [start, end). */
export interface GpaRange { start: bigint; end: bigint }

/**
 * Guest RAM for `memoryBytes` (the top of guest-physical RAM): [0, memoryBytes) less the hole
 * [MV_RAM_HOLE_GPA, 4 GiB) that holds the firmware volume, as on a PC (RAM below the 32-bit
 * hole, the rest from 4 GiB). The firmware's E820 map describes exactly these ranges.
 */
export function guestRamRanges(memoryBytes: bigint): GpaRange[] {
  if (memoryBytes <= ABI.MV_RAM_HOLE_GPA) return [{ start: 0n, end: memoryBytes }];
  const ranges: GpaRange[] = [{ start: 0n, end: ABI.MV_RAM_HOLE_GPA }];
  if (memoryBytes > ABI.MV_RAM_HOLE_END) ranges.push({ start: ABI.MV_RAM_HOLE_END, end: memoryBytes });
  return ranges;
}

/** Bytes of guest RAM for `memoryBytes`. */
export function guestRamBytes(memoryBytes: bigint): bigint {
  return guestRamRanges(memoryBytes).reduce((n, r) => n + r.end - r.start, 0n);
}

/** The guest-physical space the machine backs: RAM and, below 4 GiB, the firmware volume. */
export function guestPhysicalBytes(memoryBytes: bigint): bigint {
  return memoryBytes > ABI.MV_RAM_HOLE_END ? memoryBytes : ABI.MV_RAM_HOLE_END;
}

export const E820_TYPE = { ram: 1, reserved: 2, unaccepted: 15 } as const;
export const PLATFORM = { none: 0, tdx: 1, snp: 2 } as const;
export const ACCEPT_MODE = { lazy: 0, eager: 1 } as const;
export const STAGES = ['firmware', 'decompressor', 'kernel'] as const;
