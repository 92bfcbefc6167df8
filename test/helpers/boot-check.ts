// Checks a finished boot against the hardware: the guest's own record of what it accepted (its
// memory map and acceptance bitmap, read from guest memory) must equal what the trusted model
// says is accepted (the private page gate, which mirrors SEPT MAPPED / RMP Validated).
import { decodeBootParams, type BootParamsView } from '../../src/boot/fw-config.js';
import { ABI, BOOT_PARAMS_GPA, E820_TYPE } from '../../src/boot/layout.js';
import type { Machine } from '../../src/cpu/machine.js';
import type { BootRun } from '../../src/boot/boot-guest.js';

const PAGE = 4096n;

export function bootParams(vm: Machine): BootParamsView {
  return decodeBootParams(vm.memory.read(BOOT_PARAMS_GPA, Number(ABI.MV_BOOT_PARAMS_BYTES)));
}

/** Guest-believed-accepted runs over RAM, from the E820 map and the acceptance bitmap. */
export function guestAcceptedRuns(vm: Machine): { start: bigint; end: bigint; accepted: boolean }[] {
  const bp = bootParams(vm);
  const unit = bp.acceptUnit;
  const bitmap = bp.bitmapBytes > 0n ? vm.memory.read(bp.bitmapGpa, Number(bp.bitmapBytes)) : new Uint8Array();
  const covered = bp.bitmapBytes * 8n * unit;
  const unacceptedBit = (gpa: bigint): boolean => {
    if (gpa >= covered) return false;  // beyond the bitmap counts as accepted (boot_abi.h)
    const u = gpa / unit;
    return ((bitmap[Number(u >> 3n)]! >> Number(u & 7n)) & 1) === 1;
  };
  const runs: { start: bigint; end: bigint; accepted: boolean }[] = [];
  const push = (start: bigint, end: bigint, accepted: boolean) => {
    const last = runs[runs.length - 1];
    if (last && last.end === start && last.accepted === accepted) last.end = end;
    else runs.push({ start, end, accepted });
  };
  for (const e of bp.e820) {
    if (e.type !== E820_TYPE.ram && e.type !== E820_TYPE.unaccepted) continue;
    for (let gpa = e.addr; gpa < e.addr + e.size;) {
      const next = (gpa / unit + 1n) * unit;
      const end = next < e.addr + e.size ? next : e.addr + e.size;
      push(gpa, end, e.type === E820_TYPE.ram || !unacceptedBit(gpa));
      gpa = end;
    }
  }
  return runs;
}

/**
 * How the guest's memory map fails to tile its RAM exactly: every byte of [0, memory) in exactly
 * one entry, entries sorted, no gaps, no overlaps, nothing past the end. Empty when it does.
 */
export function memoryMapTilingErrors(vm: Machine): string[] {
  const bp = bootParams(vm);
  const out: string[] = [];
  let covered = 0n;
  for (const [i, e] of bp.e820.entries()) {
    if (e.size === 0n) out.push(`entry ${i} is empty`);
    if (e.addr > covered) out.push(`gap [0x${covered.toString(16)}, 0x${e.addr.toString(16)})`);
    if (e.addr < covered) out.push(`entry ${i} at 0x${e.addr.toString(16)} overlaps what ends at 0x${covered.toString(16)}`);
    covered = e.addr + e.size > covered ? e.addr + e.size : covered;
  }
  if (covered !== vm.memoryBytes) out.push(`the map ends at 0x${covered.toString(16)}, RAM at 0x${vm.memoryBytes.toString(16)}`);
  return out;
}

/** Differences between the guest's view and the hardware's, as readable strings. */
export function acceptanceMismatches(run: BootRun): string[] {
  const vm = run.platform.machine;
  const out: string[] = [];
  for (const r of guestAcceptedRuns(vm)) {
    const pages = (r.end - r.start) / PAGE;
    const hw = vm.gate.count('private', r.start, r.end - r.start);
    const want = r.accepted ? pages : 0n;
    if (hw !== want) {
      out.push(`[0x${r.start.toString(16)}, 0x${r.end.toString(16)}): guest says ${r.accepted ? 'accepted' : 'unaccepted'}, hardware has ${hw}/${pages} pages accepted`);
    }
    if (out.length > 10) break;
  }
  return out;
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
