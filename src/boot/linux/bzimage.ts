// The x86 Linux boot protocol's view of a bzImage: the real-mode setup header at 0x1f1
// (Documentation/arch/x86/boot.rst, "The Real-Mode Kernel Header"; arch/x86/boot/header.S) and
// the protected-mode kernel that follows the setup sectors. Only what a 64-bit boot loader needs
// (boot.rst "64-bit Boot Protocol") is decoded; every check says which field is wrong.

/** Offsets of setup_header fields in the image (and in boot_params, which embeds the header at 0x1f1). */
export const SetupHeader = {
  SETUP_SECTS: 0x1f1, SYSSIZE: 0x1f4, BOOT_FLAG: 0x1fe, HEADER: 0x202, VERSION: 0x206, KERNEL_VERSION: 0x20e,
  TYPE_OF_LOADER: 0x210, LOADFLAGS: 0x211, CODE32_START: 0x214, CMD_LINE_PTR: 0x228, KERNEL_ALIGNMENT: 0x230,
  RELOCATABLE_KERNEL: 0x234, MIN_ALIGNMENT: 0x235, XLOADFLAGS: 0x236, CMDLINE_SIZE: 0x238, PAYLOAD_OFFSET: 0x248,
  PAYLOAD_LENGTH: 0x24c, PREF_ADDRESS: 0x258, INIT_SIZE: 0x260, HANDOVER_OFFSET: 0x264, KERNEL_INFO_OFFSET: 0x268,
  /** End of the header as of protocol 2.15 (kernel_info_offset is its last field). */
  END: 0x26c,
} as const;

/** "HdrS" little-endian. */
export const HDRS_MAGIC = 0x53726448;
export const BOOT_FLAG = 0xaa55;
/** xloadflags bits (boot.rst): XLF_KERNEL_64 means startup_64 at load address + 0x200. */
export const Xlf = { KERNEL_64: 1 << 0, CAN_BE_LOADED_ABOVE_4G: 1 << 1, EFI_HANDOVER_32: 1 << 2, EFI_HANDOVER_64: 1 << 3, EFI_KEXEC: 1 << 4, FIVE_LEVEL: 1 << 5, FIVE_LEVEL_ENABLED: 1 << 6 } as const;
/** loadflags bit 0: the protected-mode code is loaded at 0x100000 (a bzImage). */
export const LOADED_HIGH = 1 << 0;
/** The 64-bit entry point's offset from the protected-mode kernel's load address (boot.rst). */
export const STARTUP_64_OFFSET = 0x200n;
/** pref_address and init_size exist from protocol 2.10, xloadflags from 2.12. */
export const MIN_PROTOCOL = 0x20c;

export interface BzImage {
  /** Boot protocol version, e.g. 0x20f for 2.15. */
  protocol: number;
  /** 512-byte sectors of real-mode setup code after the boot sector (0 means 4). */
  setupSects: number;
  /** The protected-mode kernel, as loaded at the load address. */
  kernel: Uint8Array;
  /** syssize: the protected-mode part in 16-byte paragraphs, as the header declares it. */
  syssizeBytes: number;
  loadflags: number;
  xloadflags: number;
  relocatable: boolean;
  /** Load addresses must be aligned to this when relocating. */
  kernelAlignment: bigint;
  minAlignment: number;
  prefAddress: bigint;
  /** Bytes from the load address the kernel needs before it can place its own buffers. */
  initSize: bigint;
  /** Longest command line (excluding the NUL). */
  cmdlineSize: number;
  /** The compressed payload inside `kernel` (offset from the protected-mode start, length). */
  payload: { offset: number; length: number };
  /** The kernel's version string (kernel_version field), if present. */
  version: string;
  /** The setup header bytes [0x1f1, END) to copy into boot_params.hdr. */
  header: Uint8Array;
}

export class BzImageError extends Error {
  override name = 'BzImageError';
}

/** Parses `bytes` as a bzImage for the 64-bit boot protocol; throws BzImageError saying what is wrong. */
export function parseBzImage(bytes: Uint8Array): BzImage {
  if (bytes.byteLength < SetupHeader.END) throw new BzImageError(`not a bzImage: ${bytes.byteLength} bytes is shorter than the setup header (0x${SetupHeader.END.toString(16)})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u8 = (o: number) => view.getUint8(o);
  const u16 = (o: number) => view.getUint16(o, true);
  const u32 = (o: number) => view.getUint32(o, true);
  const u64 = (o: number) => view.getBigUint64(o, true);
  if (u16(SetupHeader.BOOT_FLAG) !== BOOT_FLAG) throw new BzImageError(`not a bzImage: boot_flag at 0x1fe is 0x${u16(SetupHeader.BOOT_FLAG).toString(16)}, not 0xaa55`);
  if (u32(SetupHeader.HEADER) !== HDRS_MAGIC) throw new BzImageError(`not a bzImage: no "HdrS" setup header at 0x202 (a kernel older than boot protocol 2.00, or not a kernel)`);
  const protocol = u16(SetupHeader.VERSION);
  const protocolText = `${protocol >> 8}.${(protocol & 0xff).toString().padStart(2, '0')}`;
  if (protocol < MIN_PROTOCOL) throw new BzImageError(`boot protocol ${protocolText} is too old: the 64-bit entry needs 2.12 or later (xloadflags, init_size, pref_address)`);
  const loadflags = u8(SetupHeader.LOADFLAGS);
  if ((loadflags & LOADED_HIGH) === 0) throw new BzImageError('a zImage (loadflags LOADED_HIGH clear), not a bzImage: its kernel loads at 0x10000, which the 64-bit protocol does not support');
  const xloadflags = u16(SetupHeader.XLOADFLAGS);
  if ((xloadflags & Xlf.KERNEL_64) === 0) throw new BzImageError('the kernel has no 64-bit entry point (xloadflags XLF_KERNEL_64 clear): a 32-bit kernel');
  const setupSects = u8(SetupHeader.SETUP_SECTS) || 4;
  const kernelStart = (setupSects + 1) * 512;
  if (kernelStart >= bytes.byteLength) throw new BzImageError(`setup_sects ${setupSects} puts the protected-mode kernel at 0x${kernelStart.toString(16)}, past the end of the ${bytes.byteLength}-byte file`);
  const kernel = bytes.subarray(kernelStart);
  const syssizeBytes = u32(SetupHeader.SYSSIZE) * 16;
  // syssize is rounded up to whole paragraphs, so a file may end up to 15 bytes short of it.
  if (syssizeBytes > kernel.byteLength + 15) throw new BzImageError(`truncated: syssize declares ${syssizeBytes} bytes of protected-mode kernel, the file holds ${kernel.byteLength}`);
  if (kernel.byteLength <= Number(STARTUP_64_OFFSET)) throw new BzImageError(`the protected-mode kernel (${kernel.byteLength} bytes) ends before startup_64 at +0x200`);
  const kernelAlignment = BigInt(u32(SetupHeader.KERNEL_ALIGNMENT));
  if (kernelAlignment === 0n || (kernelAlignment & (kernelAlignment - 1n)) !== 0n) throw new BzImageError(`kernel_alignment 0x${kernelAlignment.toString(16)} is not a power of two`);
  const initSize = BigInt(u32(SetupHeader.INIT_SIZE));
  if (initSize < BigInt(kernel.byteLength)) throw new BzImageError(`init_size 0x${initSize.toString(16)} is smaller than the protected-mode kernel (0x${kernel.byteLength.toString(16)} bytes)`);
  const payload = { offset: u32(SetupHeader.PAYLOAD_OFFSET), length: u32(SetupHeader.PAYLOAD_LENGTH) };
  if (payload.offset + payload.length > kernel.byteLength) throw new BzImageError(`payload_offset+payload_length (0x${(payload.offset + payload.length).toString(16)}) run past the protected-mode kernel`);
  const versionOffset = u16(SetupHeader.KERNEL_VERSION);
  let version = '';
  if (versionOffset !== 0 && versionOffset + 0x200 < bytes.byteLength) {
    const start = versionOffset + 0x200;
    const end = bytes.indexOf(0, start);
    version = Buffer.from(bytes.subarray(start, end < 0 ? Math.min(start + 256, bytes.byteLength) : Math.min(end, start + 256))).toString('latin1');
  }
  return {
    protocol, setupSects, kernel, syssizeBytes, loadflags, xloadflags,
    relocatable: u8(SetupHeader.RELOCATABLE_KERNEL) !== 0, kernelAlignment, minAlignment: u8(SetupHeader.MIN_ALIGNMENT),
    prefAddress: u64(SetupHeader.PREF_ADDRESS), initSize, cmdlineSize: u32(SetupHeader.CMDLINE_SIZE), payload, version,
    header: bytes.slice(SetupHeader.SETUP_SECTS, SetupHeader.END),
  };
}
