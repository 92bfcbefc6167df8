// Guest memory holding an acceptance record as the stubs write it (struct mv_boot_params at
// MV_BOOT_PARAMS_GPA with its E820 map and bitmap; guest/include/minivisor/boot_abi.h), for the
// tests of the host's reader (guest-record.ts) and of `verify`.
import { ABI, BOOT_PARAMS_GPA, E820_TYPE } from '../../src/boot/layout.js';

export const MiB = 1n << 20n;
export const MEMORY = 16n * MiB;
export const BITMAP_GPA = 0x300000n;

export interface RecordSpec { unit: bigint; bitmap: number[]; bitmapBytes?: bigint; bitmapGpa?: bigint; memory?: bigint; e820: { addr: bigint; size: bigint; type: number }[] }

/** Guest memory (MEMORY bytes, or `r.memory`) holding `r` as the stubs write it. */
export function memoryWith(r: RecordSpec) {
  const size = r.memory ?? MEMORY;
  const ram = Buffer.alloc(Number(size));
  const bp = Number(BOOT_PARAMS_GPA);
  ram.writeUInt32LE(Number(ABI.MV_BOOT_PARAMS_MAGIC), bp + Number(ABI.MV_BOOT_PARAMS_OFF_MAGIC));
  ram.writeUInt32LE(Number(r.unit), bp + Number(ABI.MV_BOOT_PARAMS_OFF_ACCEPT_UNIT));
  const bitmapGpa = r.bitmapGpa ?? BITMAP_GPA;
  ram.writeBigUInt64LE(bitmapGpa, bp + Number(ABI.MV_BOOT_PARAMS_OFF_BITMAP_GPA));
  ram.writeBigUInt64LE(r.bitmapBytes ?? BigInt(r.bitmap.length), bp + Number(ABI.MV_BOOT_PARAMS_OFF_BITMAP_BYTES));
  ram.writeUInt32LE(r.e820.length, bp + Number(ABI.MV_BOOT_PARAMS_OFF_E820_COUNT));
  r.e820.forEach((e, i) => {
    const o = bp + Number(ABI.MV_BOOT_PARAMS_OFF_E820) + i * Number(ABI.MV_E820_ENTRY_SIZE);
    ram.writeBigUInt64LE(e.addr, o);
    ram.writeBigUInt64LE(e.size, o + 8);
    ram.writeUInt32LE(e.type, o + 16);
  });
  Buffer.from(r.bitmap).copy(ram, Number(bitmapGpa));
  return { size, read: (gpa: bigint, length: number) => new Uint8Array(ram.subarray(Number(gpa), Number(gpa) + length)) };
}

export const ram = (addr: bigint, size: bigint) => ({ addr, size, type: E820_TYPE.ram });
export const unaccepted = (addr: bigint, size: bigint) => ({ addr, size, type: E820_TYPE.unaccepted });
