// `boot --handover crash`: the crash kernel's dump (guest/kernel/crash.c), checked by the host
// against the hardware. The crash kernel reports one range of the first kernel's memory per
// accepted run, as console stats dump_<n>_start / _end / _digest (64-bit FNV-1a over the range's
// little-endian qwords). The host checks, through the trusted side only (Platform.pageState and
// the guest-physical memory the model holds, never the VMM's handle):
//   - every page of every dumped range is accepted in hardware, and its digest is the content's;
//   - every page of the guest's RAM that the hardware holds accepted is in a dumped range, except
//     the crash kernel's own region (Linux leaves the crashkernel region out of /proc/vmcore);
//     so the pages skipped are exactly the unaccepted ones, which the crash kernel read as zeroes
//     without touching them.
import type { BootRun } from './boot-guest.js';
import { readGuestMemoryRecord } from './guest-record.js';

const PAGE = 0x1000n;
/** guest/kernel/handover.h: MV_KEXEC_REGION_GPA up to MV_KEXEC_RECORD_GPA + one page. */
export const CRASH_KERNEL_REGION = { start: 0x1800000n, end: 0x1a01000n } as const;

export interface DumpRange { start: bigint; end: bigint; digest: bigint }

export interface CrashDumpReport {
  ok: boolean;
  ranges: DumpRange[];
  /** Bytes the dump covers, and bytes of RAM it skipped as unaccepted. */
  dumpedBytes: bigint;
  problems: string[];
}


/**
 * 64-bit FNV-1a over little-endian qwords, in two 32-bit halves (no BigInt per qword): the FNV
 * prime is 2^40 + 0x1b3, so h * prime = (h << 40) + h * 0x1b3 (mod 2^64).
 */
export function dumpDigest(bytes: Uint8Array): bigint {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  let lo = 0x84222325;
  let hi = 0xcbf29ce4;
  for (let i = 0; i + 1 < words.length; i += 2) {
    lo = (lo ^ words[i]!) >>> 0;
    hi = (hi ^ words[i + 1]!) >>> 0;
    const t = lo * 0x1b3; // < 2^41: exact
    const carry = Math.floor(t / 0x100000000);
    const newLo = t >>> 0;
    hi = (hi * 0x1b3 + carry + ((lo << 8) >>> 0)) % 0x100000000;
    lo = newLo;
  }
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** The crash kernel's reported ranges, in the order it reported them. */
export function dumpRanges(stats: Record<string, bigint>): { ranges: DumpRange[]; problems: string[] } {
  const problems: string[] = [];
  const count = stats.dump_ranges;
  if (count === undefined) return { ranges: [], problems: ['the crash kernel reported no dump (no dump_ranges stat)'] };
  const ranges: DumpRange[] = [];
  for (let n = 0n; n < count; n++) {
    const start = stats[`dump_${n}_start`], end = stats[`dump_${n}_end`], digest = stats[`dump_${n}_digest`];
    if (start === undefined || end === undefined || digest === undefined) {
      problems.push(`dump range ${n} is incomplete`);
      continue;
    }
    ranges.push({ start, end, digest });
  }
  return { ranges, problems };
}

export function verifyCrashDump(run: Pick<BootRun, 'platform' | 'report'>): CrashDumpReport {
  const { machine } = run.platform;
  const { ranges, problems } = dumpRanges(run.report.stats);
  const accepted = (gpa: bigint) => run.platform.pageState(gpa).accepted;
  let dumpedBytes = 0n;
  let previousEnd = 0n;
  for (const r of ranges) {
    const where = `[0x${r.start.toString(16)}, 0x${r.end.toString(16)})`;
    if (r.start % PAGE !== 0n || r.end % PAGE !== 0n || r.end <= r.start || r.end > machine.memory.size || r.start < previousEnd) {
      problems.push(`dump range ${where} is not a page-aligned range in order inside guest memory`);
      continue;
    }
    previousEnd = r.end;
    dumpedBytes += r.end - r.start;
    let unaccepted = 0n;
    for (let gpa = r.start; gpa < r.end; gpa += PAGE) if (!accepted(gpa)) unaccepted++;
    if (unaccepted > 0n) problems.push(`dump range ${where} holds ${unaccepted} pages the hardware does not hold accepted`);
    const digest = dumpDigest(machine.memory.read(r.start, Number(r.end - r.start)));
    if (digest !== r.digest) problems.push(`dump range ${where}: the crash kernel's digest 0x${r.digest.toString(16)}, the memory's 0x${digest.toString(16)}`);
  }
  // Every accepted page of the guest's RAM is in the dump, except the crash kernel's own region.
  const record = readGuestMemoryRecord(machine.memory);
  if (!record) problems.push('the guest published no memory map to check the dump against');
  let missed = 0n;
  let firstMissed: bigint | undefined;
  let i = 0;
  for (const run of record?.runs ?? []) {
    for (let gpa = run.start; gpa < run.end; gpa += PAGE) {
      while (i < ranges.length && ranges[i]!.end <= gpa) i++;
      const dumped = i < ranges.length && ranges[i]!.start <= gpa;
      const own = gpa >= CRASH_KERNEL_REGION.start && gpa < CRASH_KERNEL_REGION.end;
      if (!dumped && !own && accepted(gpa)) {
        missed++;
        firstMissed ??= gpa;
      }
    }
  }
  if (missed > 0n) problems.push(`${missed} accepted pages of RAM are missing from the dump, the first at 0x${firstMissed!.toString(16)}`);
  return { ok: problems.length === 0, ranges, dumpedBytes, problems };
}
