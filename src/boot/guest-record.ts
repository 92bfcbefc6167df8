// The guest's own record of accepted memory, read from guest memory by the host. Any stub can
// publish one: it is struct mv_boot_params at MV_BOOT_PARAMS_GPA (guest/include/minivisor/boot_abi.h):
//   magic "MVBP" (MV_BOOT_PARAMS_MAGIC), the E820 map (type 1 RAM = accepted, type 15
//   UNACCEPTED = look at the bitmap), the acceptance unit (4 KiB or 2 MiB) and the acceptance
//   bitmap's GPA and size: one bit per unit from GPA 0, set = still unaccepted, like Linux's EFI
//   unaccepted-memory table (drivers/firmware/efi/unaccepted_memory.c). Units beyond the bitmap
//   count as accepted.
// Guest memory is untrusted input: every size is bounded before it is used, and a record that
// does not hold together is reported as absent rather than half-read.
import { decodeBootParams } from './fw-config.js';
import { ABI, BOOT_PARAMS_GPA, E820_TYPE } from './layout.js';

export interface GuestMemoryReader {
  readonly size: bigint;
  read(gpa: bigint, length: number): Uint8Array;
}

/** A stretch of RAM the guest's record describes, accepted or not in the guest's own view. */
export interface GuestMemoryRun {
  start: bigint;
  end: bigint;
  accepted: boolean;
}

export interface GuestMemoryRecord {
  /** The acceptance unit the guest's bitmap uses (0x1000 or 0x200000). */
  unit: bigint;
  /** RAM and unaccepted E820 ranges (clipped to guest memory), merged, in map order. */
  runs: GuestMemoryRun[];
}

/** The guest's record, or undefined when it has not published a valid one (yet). */
export function readGuestMemoryRecord(memory: GuestMemoryReader): GuestMemoryRecord | undefined {
  const bp = decodeBootParams(memory.read(BOOT_PARAMS_GPA, Number(ABI.MV_BOOT_PARAMS_BYTES)));
  const unit = bp.acceptUnit;
  if (!bp.magicOk || (unit !== 0x1000n && unit !== 0x200000n) || bp.bitmapBytes === 0n) return undefined;
  // One bit per unit (the last one possibly partial), in whole 64-bit words as the stubs keep it.
  const units = (memory.size + unit - 1n) / unit;
  const maxBytes = ((units + 63n) / 64n) * 8n;
  if (bp.bitmapBytes > maxBytes || bp.bitmapGpa + bp.bitmapBytes > memory.size) return undefined;
  const bitmap = memory.read(bp.bitmapGpa, Number(bp.bitmapBytes));
  const covered = bp.bitmapBytes * 8n * unit;
  const unacceptedBit = (gpa: bigint): boolean => {
    if (gpa >= covered) return false;
    const u = gpa / unit;
    return ((bitmap[Number(u >> 3n)]! >> Number(u & 7n)) & 1) === 1;
  };
  const runs: GuestMemoryRun[] = [];
  const push = (start: bigint, end: bigint, accepted: boolean) => {
    const last = runs[runs.length - 1];
    if (last && last.end === start && last.accepted === accepted) last.end = end;
    else runs.push({ start, end, accepted });
  };
  for (const e of bp.e820) {
    if (e.type !== E820_TYPE.ram && e.type !== E820_TYPE.unaccepted) continue;
    const stop = e.addr + e.size < memory.size ? e.addr + e.size : memory.size;
    if (e.type === E820_TYPE.ram) {
      if (e.addr < stop) push(e.addr, stop, true);
      continue;
    }
    const byteSpan = 8n * unit;
    for (let gpa = e.addr; gpa < stop;) {
      // A whole bitmap byte of one value (the common case) is taken at once: 64 GiB at 4 KiB is 16M units.
      if (gpa % byteSpan === 0n && gpa + byteSpan <= stop && gpa + byteSpan <= covered) {
        const byte = bitmap[Number(gpa / byteSpan)]!;
        if (byte === 0 || byte === 0xff) {
          push(gpa, gpa + byteSpan, byte === 0);
          gpa += byteSpan;
          continue;
        }
      }
      const next = (gpa / unit + 1n) * unit;
      const end = next < stop ? next : stop;
      push(gpa, end, !unacceptedBit(gpa));
      gpa = end;
    }
  }
  return { unit, runs };
}
