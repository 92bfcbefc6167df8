// `verify`: the guest's own record of accepted memory (guest-record.ts) against the hardware's
// page states (Platform.pageState: TDX SEPT MAPPED/BLOCKED, SNP RMP assigned+Validated). A page
// the guest believes accepted must be accepted in hardware (else its first touch is a #VE/#VC,
// or the VMM swapped it: Linux's accept_memory() contract, mm/page_alloc.c); a page it believes
// unaccepted must not be (else a second accept: TDX ALREADY_ACCEPTED, SNP PVALIDATE CF=1, or a
// page it can never reuse). Every mismatch is reported, merged into maximal ranges.
import { governingLeafEnd, type PageState } from '../platform/platform.js';
import { readGuestMemoryRecord, type GuestMemoryReader } from './guest-record.js';
import type { BootRun } from './boot-guest.js';

const PAGE = 0x1000n;

export interface PageStateSource {
  pageState(gpa: bigint): PageState;
}

export interface VerifyMismatch {
  start: bigint;
  end: bigint;
  guest: 'accepted' | 'unaccepted';
  /** The hardware's state of the range's first page (a platform-specific name, e.g. PENDING). */
  hardware: string;
}

export interface VerifyReport {
  /** No mismatch and a record was found. */
  ok: boolean;
  /** Why there is nothing to compare: the guest published no valid record. */
  noRecord?: string;
  /** Bytes of RAM the guest's record describes (all of them were compared). */
  checkedBytes: bigint;
  mismatches: VerifyMismatch[];
}

/** A mismatch in words: "[0x400000, 0x600000): guest says accepted, hardware has PENDING". */
export function describeMismatch(m: VerifyMismatch): string {
  return `[0x${m.start.toString(16)}, 0x${m.end.toString(16)}): guest says ${m.guest}, hardware has ${m.hardware} (${(m.end - m.start) / PAGE} pages)`;
}

/**
 * Compares the guest's acceptance record in `memory` with `hardware`'s page states. Pages are
 * stepped by the leaf that governs them (a 2 MiB SEPT leaf or RMP entry has one state).
 */
export function verifyAcceptance(hardware: PageStateSource, memory: GuestMemoryReader): VerifyReport {
  const record = readGuestMemoryRecord(memory);
  if (!record) {
    return { ok: false, noRecord: `no valid acceptance record at the boot params (struct mv_boot_params, magic "MVBP")`, checkedBytes: 0n, mismatches: [] };
  }
  const mismatches: VerifyMismatch[] = [];
  let checkedBytes = 0n;
  for (const run of record.runs) {
    checkedBytes += run.end - run.start;
    for (let gpa = run.start & ~(PAGE - 1n); gpa < run.end;) {
      const state = hardware.pageState(gpa);
      const leafEnd = governingLeafEnd({ gpa, pageSize: state.pageSize });
      const end = leafEnd < run.end ? leafEnd : run.end;
      if (state.accepted !== run.accepted) {
        const guest = run.accepted ? 'accepted' : 'unaccepted';
        const last = mismatches[mismatches.length - 1];
        const start = gpa < run.start ? run.start : gpa;
        if (last && last.end === start && last.guest === guest && last.hardware === state.raw) last.end = end;
        else mismatches.push({ start, end, guest, hardware: state.raw });
      }
      gpa = end;
    }
  }
  return { ok: mismatches.length === 0, checkedBytes, mismatches };
}

/** verify for a finished boot: its guest memory against its platform's page states. */
export function verifyBoot(run: Pick<BootRun, 'platform'>): VerifyReport {
  return verifyAcceptance(run.platform, run.platform.machine.memory);
}

/** The report as JSON data (bigints as "0x…"), for `minivisor boot --json --verify`. */
export function verifyReportJson(report: VerifyReport): { ok: boolean; noRecord?: string; checkedBytes: number; mismatches: { start: string; end: string; guest: string; hardware: string }[] } {
  return {
    ok: report.ok, ...(report.noRecord !== undefined ? { noRecord: report.noRecord } : {}), checkedBytes: Number(report.checkedBytes),
    mismatches: report.mismatches.map((m) => ({ start: `0x${m.start.toString(16)}`, end: `0x${m.end.toString(16)}`, guest: m.guest, hardware: m.hardware })),
  };
}
