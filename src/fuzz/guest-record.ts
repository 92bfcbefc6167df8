// The guest's own record of accepted memory, read from guest memory by the host: the boot params'
// E820 map and acceptance bitmap (guest/include/minivisor/boot_abi.h; one bit per unit, set =
// unaccepted, like Linux's EFI unaccepted-memory table). Guest memory is untrusted input, so
// every size is bounded before it is used.
import { decodeBootParams } from '../boot/fw-config.js';
import { ABI, BOOT_PARAMS_GPA, E820_TYPE } from '../boot/layout.js';
import type { GuestAcceptanceRecord } from './oracle.js';

export interface GuestMemoryReader {
  readonly size: bigint;
  read(gpa: bigint, length: number): Uint8Array;
}

/** undefined when the guest has not written valid boot params (yet). */
export function readGuestAcceptanceRecord(memory: GuestMemoryReader): GuestAcceptanceRecord | undefined {
  const bp = decodeBootParams(memory.read(BOOT_PARAMS_GPA, Number(ABI.MV_BOOT_PARAMS_BYTES)));
  const unit = bp.acceptUnit;
  if (!bp.magicOk || (unit !== 0x1000n && unit !== 0x200000n) || bp.bitmapBytes === 0n) return undefined;
  const maxBytes = (memory.size / unit + 7n) / 8n;
  if (bp.bitmapBytes > maxBytes || bp.bitmapGpa + bp.bitmapBytes > memory.size) return undefined;
  const bitmap = memory.read(bp.bitmapGpa, Number(bp.bitmapBytes));
  const covered = bp.bitmapBytes * 8n * unit;
  const ranges: { start: bigint; end: bigint }[] = [];
  for (const e of bp.e820) {
    if (e.type !== E820_TYPE.unaccepted) continue;
    const end = e.addr + e.size < covered ? e.addr + e.size : covered;
    for (let gpa = e.addr - (e.addr % unit); gpa < end; gpa += unit) {
      const u = gpa / unit;
      if (((bitmap[Number(u >> 3n)]! >> Number(u & 7n)) & 1) === 0) continue;
      const start = gpa < e.addr ? e.addr : gpa;
      const stop = gpa + unit < end ? gpa + unit : end;
      const last = ranges[ranges.length - 1];
      if (last && last.end === start) last.end = stop;
      else ranges.push({ start, end: stop });
    }
  }
  return { unacceptedRanges: ranges };
}
