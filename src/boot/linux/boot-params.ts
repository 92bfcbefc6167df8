// The zero page and the EFI tables a 64-bit Linux entry finds, as Linux's EFI stub leaves them
// after ExitBootServices (drivers/firmware/efi/libstub/x86-stub.c: setup_e820, efi_info;
// libstub/unaccepted_memory.c: allocate_unaccepted_bitmap, process_unaccepted_memory).
//
// Layouts: struct boot_params, struct boot_e820_entry and struct efi_info in
// arch/x86/include/uapi/asm/bootparam.h; efi_system_table_64_t, efi_config_table_64_t and
// struct efi_unaccepted_memory in include/linux/efi.h. All of it is one block of bytes at a
// GPA the loader chooses: boot_params, the command line, the EFI system table with its
// configuration table, and the unaccepted-memory table with its bitmap.
import { SetupHeader } from './bzimage.js';

export const BootParams = {
  SIZE: 0x1000,
  EXT_CMD_LINE_PTR: 0x0c8,
  EFI_INFO: 0x1c0,
  E820_ENTRIES: 0x1e8,
  SENTINEL: 0x1ef,
  HDR: 0x1f1,
  E820_TABLE: 0x2d0,
  /** E820_MAX_ENTRIES_ZEROPAGE */
  E820_MAX: 128,
  /** struct boot_e820_entry is packed: u64 addr, u64 size, u32 type. */
  E820_ENTRY_SIZE: 20,
} as const;

/** struct efi_info, at boot_params + 0x1c0. */
export const EfiInfo = { LOADER_SIGNATURE: 0x00, SYSTAB: 0x04, MEMDESC_SIZE: 0x08, MEMDESC_VERSION: 0x0c, MEMMAP: 0x10, MEMMAP_SIZE: 0x14, SYSTAB_HI: 0x18, MEMMAP_HI: 0x1c } as const;
/** EFI64_LOADER_SIGNATURE (arch/x86/include/asm/efi.h): a 64-bit EFI loader handed over. */
export const EFI64_LOADER_SIGNATURE = 'EL64';
/** EFI_SYSTEM_TABLE_SIGNATURE, "IBI SYST" (UEFI spec 4.3). */
export const EFI_SYSTEM_TABLE_SIGNATURE = 0x5453595320494249n;
/** UEFI 2.70: (2 << 16) | 70. */
export const EFI_2_70_REVISION = (2 << 16) | 70;
export const EFI_SYSTEM_TABLE_64_SIZE = 0x78;
/** efi_config_table_64_t: 16-byte GUID, u64 table. */
export const EFI_CONFIG_TABLE_64_SIZE = 24;
/** struct efi_unaccepted_memory header: u32 version, u32 unit_size, u64 phys_base, u64 size. */
export const UNACCEPTED_HEADER_SIZE = 24;
/** Linux's EFI_UNACCEPTED_UNIT_SIZE on x86: PMD_SIZE. */
export const EFI_UNACCEPTED_UNIT_SIZE = 0x200000n;
/** type_of_loader 0xff: "undefined" boot loader (boot.rst). */
export const TYPE_OF_LOADER_UNDEFINED = 0xff;

export const E820 = { RAM: 1, RESERVED: 2, ACPI: 3 } as const;

/** EFI_MEMORY_TYPE values the loader uses (UEFI 2.10 §7.2; EfiUnacceptedMemoryType is 15, Linux EFI_UNACCEPTED_MEMORY). */
export const EfiMemoryType = { RESERVED: 0, LOADER_CODE: 1, LOADER_DATA: 2, CONVENTIONAL: 7, UNACCEPTED: 15 } as const;
/** EFI_MEMORY_WB: write-back cacheable. */
export const EFI_MEMORY_WB = 0x8n;
/**
 * efi_memory_desc_t (include/linux/efi.h): u32 type, u32 pad, u64 phys_addr, u64 virt_addr,
 * u64 num_pages, u64 attribute = 40 bytes; firmware reports a larger stride (OVMF: 48), which
 * Linux reads from efi_info.efi_memdesc_size, and so does the loader here.
 */
export const EFI_MEMORY_DESCRIPTOR_SIZE = 48;
export const EFI_MEMORY_DESCRIPTOR_VERSION = 1;

export interface EfiMemoryDescriptor {
  type: number;
  start: bigint;
  pages: bigint;
  attribute: bigint;
}

/**
 * EFI_GUID(a, b, c, d0..d7) as its 16 bytes in memory (include/linux/efi.h EFI_GUID: a, b and c
 * little-endian, then the 8 bytes as written).
 */
export function efiGuid(a: number, b: number, c: number, d: readonly number[]): Uint8Array {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, a >>> 0, true);
  view.setUint16(4, b, true);
  view.setUint16(6, c, true);
  bytes.set(d, 8);
  return bytes;
}

/** LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID (include/linux/efi.h). */
export const LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID = efiGuid(0xd5d1de3c, 0x105c, 0x44f9, [0x9e, 0xa9, 0xbc, 0xef, 0x98, 0x12, 0x00, 0x31]);
/** EFI_CC_BLOB_GUID (include/linux/efi.h): OVMF's ConfidentialComputingSevSnpBlob table. */
export const EFI_CC_BLOB_GUID = efiGuid(0x067b1f5f, 0xcf26, 0x44c5, [0x85, 0x54, 0x93, 0xd7, 0x77, 0x91, 0x2d, 0x42]);

/**
 * struct cc_blob_sev_info (arch/x86/include/asm/sev.h), packed: u32 magic, u16 version, u16
 * reserved, u64 secrets_phys, u32 secrets_len, u32 rsvd1, u64 cpuid_phys, u32 cpuid_len, u32 rsvd2.
 * The decompressor's snp_init() finds it through EFI_CC_BLOB_GUID and copies the CPUID page it
 * names (setup_cpuid_table: cpuid_len must be at least a page); svsm_setup_ca() reads the
 * secrets page when it does not run at VMPL0.
 */
export const CcBlob = { MAGIC: 0x00, VERSION: 0x04, SECRETS_PHYS: 0x08, SECRETS_LEN: 0x10, CPUID_PHYS: 0x18, CPUID_LEN: 0x20, SIZE: 0x28 } as const;
/** CC_BLOB_SEV_HDR_MAGIC, "AMDE". */
export const CC_BLOB_SEV_HDR_MAGIC = 0x45444d41;

export interface E820Entry {
  addr: bigint;
  size: bigint;
  type: number;
}

export interface GpaRange {
  start: bigint;
  end: bigint;
}

/** The bitmap of struct efi_unaccepted_memory: one bit per unit, set = unaccepted. */
export interface UnacceptedBitmap {
  unitSize: bigint;
  physBase: bigint;
  /** Bitmap length in bytes (the `size` field). */
  sizeBytes: bigint;
  bits: Uint8Array;
}

/**
 * The bitmap allocate_unaccepted_bitmap + process_unaccepted_memory leave for `unaccepted`
 * ranges: phys_base is the lowest unaccepted unit, the bitmap reaches the highest, and every
 * unit of every range is set. The ranges must be unit-aligned: the stub accepts unaligned heads
 * and tails up front, which the loader has done before calling this.
 */
export function unacceptedBitmap(unaccepted: readonly GpaRange[], unitSize = EFI_UNACCEPTED_UNIT_SIZE): UnacceptedBitmap {
  const ranges = unaccepted.filter((r) => r.end > r.start);
  for (const r of ranges) {
    if (r.start % unitSize !== 0n || r.end % unitSize !== 0n) {
      throw new RangeError(`unaccepted range [0x${r.start.toString(16)}, 0x${r.end.toString(16)}) is not aligned to the 0x${unitSize.toString(16)}-byte unit`);
    }
  }
  if (ranges.length === 0) return { unitSize, physBase: 0n, sizeBytes: 0n, bits: new Uint8Array(0) };
  const physBase = ranges.reduce((m, r) => (r.start < m ? r.start : m), ranges[0]!.start);
  const end = ranges.reduce((m, r) => (r.end > m ? r.end : m), 0n);
  const units = (end - physBase) / unitSize;
  const sizeBytes = (units + 7n) / 8n;
  const bits = new Uint8Array(Number(sizeBytes));
  for (const r of ranges) {
    for (let u = (r.start - physBase) / unitSize; u < (r.end - physBase) / unitSize; u++) bits[Number(u >> 3n)]! |= 1 << Number(u & 7n);
  }
  return { unitSize, physBase, sizeBytes, bits };
}

/** The unaccepted units of a bitmap as merged GPA ranges (for checks and reports). */
export function bitmapRanges(bitmap: Pick<UnacceptedBitmap, 'unitSize' | 'physBase'>, bits: Uint8Array, sizeBytes = BigInt(bits.byteLength)): GpaRange[] {
  const out: GpaRange[] = [];
  for (let u = 0n; u < sizeBytes * 8n; u++) {
    if ((bits[Number(u >> 3n)]! & (1 << Number(u & 7n))) === 0) continue;
    const start = bitmap.physBase + u * bitmap.unitSize;
    const last = out[out.length - 1];
    if (last && last.end === start) last.end = start + bitmap.unitSize;
    else out.push({ start, end: start + bitmap.unitSize });
  }
  return out;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3), as EFI table headers use it (UEFI spec 4.2, CRC32 over HeaderSize bytes). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface LinuxBootDataInput {
  /** Where the block goes; boot_params sits at its start. 4 KiB aligned. */
  gpa: bigint;
  /** The image's setup header bytes [0x1f1, …) (BzImage.header). */
  setupHeader: Uint8Array;
  /** The longest command line the kernel takes (BzImage.cmdlineSize). */
  cmdlineSize: number;
  cmdline: string;
  e820: readonly E820Entry[];
  bitmap: UnacceptedBitmap;
  /**
   * SEV-SNP: where the launch puts the CPUID page. The block then also holds the CC blob
   * (EFI_CC_BLOB_GUID in the configuration table, as OVMF publishes it) and a page for the
   * secrets page after the unaccepted table, which the VMM launches as SNP page type SECRETS.
   */
  snp?: { cpuidPageGpa: bigint };
  /**
   * The EFI memory map the stub leaves in efi_info after ExitBootServices (efi_memmap,
   * efi_memmap_size, efi_memdesc_size, efi_memdesc_version). The decompressor reads it for KASLR
   * (kaslr.c process_efi_entries: conventional and unaccepted regions only), the kernel proper
   * for its EFI memory map. At most 64 descriptors.
   */
  efiMemoryMap?: readonly EfiMemoryDescriptor[];
}

/** Offsets of the parts inside the block (each 4 KiB aligned). */
export const BootDataOffset = { BOOT_PARAMS: 0x0, CMDLINE: 0x1000, SYSTAB: 0x2000, CONFIG_TABLE: 0x2100, FW_VENDOR: 0x2200, CC_BLOB: 0x2300, EFI_MEMMAP: 0x2400, UNACCEPTED: 0x3000 } as const;
const EFI_MEMMAP_MAX = Math.floor((BootDataOffset.UNACCEPTED - BootDataOffset.EFI_MEMMAP) / EFI_MEMORY_DESCRIPTOR_SIZE);

export interface LinuxBootData {
  gpa: bigint;
  bytes: Uint8Array;
  bootParamsGpa: bigint;
  cmdlineGpa: bigint;
  systemTableGpa: bigint;
  unacceptedTableGpa: bigint;
  /** SEV-SNP only: the CC blob and the page the VMM launches as the secrets page. */
  ccBlobGpa?: bigint;
  secretsPageGpa?: bigint;
}

export class BootParamsError extends Error {
  override name = 'BootParamsError';
}

/** Lays out boot_params, the command line, the EFI system/configuration tables and the unaccepted table. */
export function buildLinuxBootData(input: LinuxBootDataInput): LinuxBootData {
  if (input.gpa % 0x1000n !== 0n) throw new BootParamsError(`boot data GPA 0x${input.gpa.toString(16)} is not 4 KiB aligned`);
  const cmdline = Buffer.from(input.cmdline, 'latin1');
  if (cmdline.byteLength > input.cmdlineSize || cmdline.byteLength >= 0x1000) {
    throw new BootParamsError(`the command line is ${cmdline.byteLength} bytes; this kernel takes at most ${Math.min(input.cmdlineSize, 0xfff)}`);
  }
  if (input.e820.length > BootParams.E820_MAX) throw new BootParamsError(`${input.e820.length} E820 entries; boot_params holds ${BootParams.E820_MAX}`);
  const memmap = input.efiMemoryMap ?? [];
  if (memmap.length > EFI_MEMMAP_MAX) throw new BootParamsError(`${memmap.length} EFI memory descriptors; the block holds ${EFI_MEMMAP_MAX}`);
  const bitmapBytes = Number(input.bitmap.sizeBytes);
  // The bitmap is an unsigned long array: Linux's bitmap helpers read whole 8-byte words.
  const unacceptedBytes = UNACCEPTED_HEADER_SIZE + Math.ceil(bitmapBytes / 8) * 8;
  const unacceptedEnd = BootDataOffset.UNACCEPTED + Math.ceil(unacceptedBytes / 0x1000) * 0x1000;
  const total = unacceptedEnd + (input.snp ? 0x1000 : 0);
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  const at = (offset: number) => input.gpa + BigInt(offset);

  // boot_params: zero, then the image's setup header, then what the loader fills in.
  bytes.set(input.setupHeader.subarray(0, SetupHeader.END - SetupHeader.SETUP_SECTS), BootParams.HDR);
  view.setUint8(SetupHeader.TYPE_OF_LOADER, TYPE_OF_LOADER_UNDEFINED);
  const cmdlineGpa = at(BootDataOffset.CMDLINE);
  view.setUint32(SetupHeader.CMD_LINE_PTR, Number(cmdlineGpa & 0xffffffffn), true);
  view.setUint32(BootParams.EXT_CMD_LINE_PTR, Number(cmdlineGpa >> 32n), true);
  view.setUint8(BootParams.E820_ENTRIES, input.e820.length);
  input.e820.forEach((e, i) => {
    const o = BootParams.E820_TABLE + i * BootParams.E820_ENTRY_SIZE;
    view.setBigUint64(o, e.addr, true);
    view.setBigUint64(o + 8, e.size, true);
    view.setUint32(o + 16, e.type, true);
  });
  const systemTableGpa = at(BootDataOffset.SYSTAB);
  bytes.set(Buffer.from(EFI64_LOADER_SIGNATURE, 'latin1'), BootParams.EFI_INFO + EfiInfo.LOADER_SIGNATURE);
  view.setUint32(BootParams.EFI_INFO + EfiInfo.SYSTAB, Number(systemTableGpa & 0xffffffffn), true);
  view.setUint32(BootParams.EFI_INFO + EfiInfo.SYSTAB_HI, Number(systemTableGpa >> 32n), true);

  if (memmap.length) {
    const memmapGpa = at(BootDataOffset.EFI_MEMMAP);
    view.setUint32(BootParams.EFI_INFO + EfiInfo.MEMDESC_SIZE, EFI_MEMORY_DESCRIPTOR_SIZE, true);
    view.setUint32(BootParams.EFI_INFO + EfiInfo.MEMDESC_VERSION, EFI_MEMORY_DESCRIPTOR_VERSION, true);
    view.setUint32(BootParams.EFI_INFO + EfiInfo.MEMMAP, Number(memmapGpa & 0xffffffffn), true);
    view.setUint32(BootParams.EFI_INFO + EfiInfo.MEMMAP_HI, Number(memmapGpa >> 32n), true);
    view.setUint32(BootParams.EFI_INFO + EfiInfo.MEMMAP_SIZE, memmap.length * EFI_MEMORY_DESCRIPTOR_SIZE, true);
    memmap.forEach((d, i) => {
      const o = BootDataOffset.EFI_MEMMAP + i * EFI_MEMORY_DESCRIPTOR_SIZE;
      view.setUint32(o, d.type, true);
      view.setBigUint64(o + 8, d.start, true);   // phys_addr
      view.setBigUint64(o + 16, 0n, true);       // virt_addr: no SetVirtualAddressMap yet
      view.setBigUint64(o + 24, d.pages, true);
      view.setBigUint64(o + 32, d.attribute, true);
    });
  }

  bytes.set(cmdline, BootDataOffset.CMDLINE);

  // The EFI system table (64-bit) with one configuration table entry.
  const unacceptedTableGpa = at(BootDataOffset.UNACCEPTED);
  const vendor = Buffer.from('minivisor\0', 'utf16le');
  bytes.set(vendor, BootDataOffset.FW_VENDOR);
  const st = BootDataOffset.SYSTAB;
  view.setBigUint64(st, EFI_SYSTEM_TABLE_SIGNATURE, true);
  view.setUint32(st + 8, EFI_2_70_REVISION, true);
  view.setUint32(st + 12, EFI_SYSTEM_TABLE_64_SIZE, true);
  view.setBigUint64(st + 0x18, at(BootDataOffset.FW_VENDOR), true);
  const tables: Array<[Uint8Array, bigint]> = [[LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID, unacceptedTableGpa]];
  const snp = input.snp ? { ccBlobGpa: at(BootDataOffset.CC_BLOB), secretsPageGpa: at(unacceptedEnd) } : undefined;
  if (snp) tables.push([EFI_CC_BLOB_GUID, snp.ccBlobGpa]);
  view.setUint32(st + 0x68, tables.length, true); // nr_tables
  view.setBigUint64(st + 0x70, at(BootDataOffset.CONFIG_TABLE), true);
  view.setUint32(st + 16, crc32(bytes.subarray(st, st + EFI_SYSTEM_TABLE_64_SIZE)), true);
  tables.forEach(([guid, table], i) => {
    bytes.set(guid, BootDataOffset.CONFIG_TABLE + i * EFI_CONFIG_TABLE_64_SIZE);
    view.setBigUint64(BootDataOffset.CONFIG_TABLE + i * EFI_CONFIG_TABLE_64_SIZE + 16, table, true);
  });
  if (snp) {
    const c = BootDataOffset.CC_BLOB;
    view.setUint32(c + CcBlob.MAGIC, CC_BLOB_SEV_HDR_MAGIC, true);
    view.setUint16(c + CcBlob.VERSION, 0, true);
    view.setBigUint64(c + CcBlob.SECRETS_PHYS, snp.secretsPageGpa, true);
    view.setUint32(c + CcBlob.SECRETS_LEN, 0x1000, true);
    view.setBigUint64(c + CcBlob.CPUID_PHYS, input.snp!.cpuidPageGpa, true);
    view.setUint32(c + CcBlob.CPUID_LEN, 0x1000, true);
  }

  // struct efi_unaccepted_memory.
  const u = BootDataOffset.UNACCEPTED;
  view.setUint32(u, 1, true);
  view.setUint32(u + 4, Number(input.bitmap.unitSize), true);
  view.setBigUint64(u + 8, input.bitmap.physBase, true);
  view.setBigUint64(u + 16, input.bitmap.sizeBytes, true);
  bytes.set(input.bitmap.bits, u + UNACCEPTED_HEADER_SIZE);

  return { gpa: input.gpa, bytes, bootParamsGpa: input.gpa, cmdlineGpa, systemTableGpa, unacceptedTableGpa, ...snp };
}
