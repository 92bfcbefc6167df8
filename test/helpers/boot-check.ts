// Checks a finished boot against the hardware: the guest's own record of what it accepted (its
// memory map and acceptance bitmap, read from guest memory) must equal what the trusted model
// says is accepted. The comparison itself is the library's verify (src/boot/verify.ts).
import { decodeBootParams, type BootParamsView } from '../../src/boot/fw-config.js';
import { ABI, BOOT_PARAMS_GPA, E820_TYPE, guestRamRanges } from '../../src/boot/layout.js';
import type { Machine } from '../../src/cpu/machine.js';
import type { BootRun } from '../../src/boot/boot-guest.js';
import { readGuestMemoryRecord, type GuestMemoryRun } from '../../src/boot/guest-record.js';
import { describeMismatch, verifyBoot } from '../../src/boot/verify.js';

const PAGE = 4096n;

export function bootParams(vm: Machine): BootParamsView {
  return decodeBootParams(vm.memory.read(BOOT_PARAMS_GPA, Number(ABI.MV_BOOT_PARAMS_BYTES)));
}

/** Guest-believed-accepted runs over RAM, from the E820 map and the acceptance bitmap. */
export function guestAcceptedRuns(vm: Machine): GuestMemoryRun[] {
  return readGuestMemoryRecord(vm.memory)?.runs ?? [];
}

/**
 * How the guest's memory map fails to tile its RAM exactly: every byte of each RAM range
 * (guestRamRanges: [0, memory) less the hole below 4 GiB that holds the firmware volume) in
 * exactly one entry, entries sorted, no gaps inside a range, nothing in the hole, no overlaps,
 * nothing past the end. Empty when it does.
 */
export function memoryMapTilingErrors(vm: Machine): string[] {
  const bp = bootParams(vm);
  const out: string[] = [];
  const ranges = guestRamRanges(bp.memoryBytes);
  let covered = 0n;
  let range = 0;
  for (const [i, e] of bp.e820.entries()) {
    if (e.size === 0n) out.push(`entry ${i} is empty`);
    // An entry that starts at the next RAM range closes the current one at its end.
    if (range + 1 < ranges.length && e.addr >= ranges[range + 1]!.start) {
      if (covered !== ranges[range]!.end) out.push(`RAM range ${range} ends at 0x${ranges[range]!.end.toString(16)}, the map at 0x${covered.toString(16)}`);
      range++;
      covered = ranges[range]!.start;
    }
    if (e.addr > covered) out.push(`gap [0x${covered.toString(16)}, 0x${e.addr.toString(16)})`);
    if (e.addr < covered) out.push(`entry ${i} at 0x${e.addr.toString(16)} overlaps what ends at 0x${covered.toString(16)}`);
    covered = e.addr + e.size > covered ? e.addr + e.size : covered;
  }
  if (range !== ranges.length - 1 || covered !== ranges[range]!.end) {
    out.push(`the map ends at 0x${covered.toString(16)}, RAM at 0x${ranges[ranges.length - 1]!.end.toString(16)}`);
  }
  return out;
}

/** Differences between the guest's view and the hardware's (verify), as readable strings. */
export function acceptanceMismatches(run: BootRun): string[] {
  const report = verifyBoot(run);
  return report.noRecord !== undefined ? [report.noRecord] : report.mismatches.map(describeMismatch);
}

/** Accept attempts on memory that was already accepted (TDX ALREADY_ACCEPTED, SNP CF=1). */
export function doubleAccepts(run: BootRun): number {
  let n = 0;
  for (const e of run.trace.events) {
    if (e.type === 'tdcall' && e.leaf === 'MEM_PAGE_ACCEPT' && typeof e.status === 'bigint' && (e.status >> 32n) === 0xb0an) n++;
    if (e.type === 'pvalidate' && e.validate === true && e.cf === true) n++;
  }
  return n;
}

/** Bytes the hardware holds accepted (private, accessible) in [start, end). */
export function hardwareAcceptedBytes(vm: Machine, start = 0n, end = vm.memoryBytes): bigint {
  return vm.gate.count('private', start, end - start) * PAGE;
}
