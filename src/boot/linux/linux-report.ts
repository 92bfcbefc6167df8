// What the hardware saw of a Linux boot, checked against the unaccepted-memory table it was
// given: every accept the kernel's decompressor made (from the trace: TDG.MEM.PAGE.ACCEPT on
// TDX, PVALIDATE on SEV-SNP), whether each accepted range was marked unaccepted in the table at
// launch, and whether the decompressor cleared exactly those units in the bitmap (read back from
// guest memory after the run), as Linux's libstub accept_memory() must (bitmap_clear after
// arch_accept_memory).
import type { TraceEvent } from '../../shared/trace.js';
import { bitmapRanges, UNACCEPTED_HEADER_SIZE, type GpaRange } from './boot-params.js';
import { mergeRanges } from './linux-launch.js';
import { PSC_OP } from '../../platform/snp/ghcb-msr.js';
import { PVALIDATE_FAIL_NOUPDATE } from '../../platform/snp/pvalidate.js';
import type { LinuxImages } from '../images.js';

export interface LinuxAcceptCall {
  gpa: bigint;
  bytes: bigint;
  status: bigint;
  rip: bigint;
}

export interface LinuxBootReport {
  platform: 'tdx' | 'snp';
  kernelVersion: string;
  loadAddress: bigint;
  entry: bigint;
  /** Where the run stopped when it reached the decompressed kernel (outcome handover). */
  handoverRip?: bigint;
  /**
   * Accepts after the firmware handed over (the decompressor's), as they completed:
   * TDG.MEM.PAGE.ACCEPT, or PVALIDATE with validate = 1 (status: its RAX, or 255 =
   * PVALIDATE_FAIL_NOUPDATE when CF = 1 said nothing changed, as Linux's pvalidate() reads it).
   */
  acceptCalls: LinuxAcceptCall[];
  /** TDX: accept TDCALLs that TD-exited to the VMM first (to be AUGed) and ran again. */
  acceptTdExits: number;
  /** SEV-SNP: the guest's page-state changes to private (GHCB MSR protocol or PSC NAE entries) before it validated. */
  pageStateChanges: number;
  /** The ranges those calls accepted (successful calls only, re-validations apart), merged. */
  accepted: GpaRange[];
  /**
   * SEV-SNP: pages the decompressor validated again after it had rescinded them itself (its
   * GHCB page, shared while it ran: sev_es_shutdown_ghcb makes it private again). Not accepts
   * of unaccepted memory, so not checked against the table.
   */
  revalidated: GpaRange[];
  /** Calls that failed (e.g. TDX_PAGE_ALREADY_ACCEPTED, PVALIDATE FAIL_SIZEMISMATCH): Linux panics on any. */
  failedAcceptCalls: number;
  /** Every accepted range lay in memory the table marked unaccepted at launch. */
  acceptedWasMarkedUnaccepted: boolean;
  /** The bitmap's cleared units are exactly the accepted ranges. */
  bitmapClearedExactly: boolean;
  /** Units still set in the bitmap at the end (left for the kernel proper). */
  stillUnaccepted: GpaRange[];
  /** #VE the TDX module injected after the hand-over, by exit reason; on SEV-SNP #VC, by exit code. */
  virtualizationExceptions: Record<string, number>;
  /** #PF injected (the decompressor's own on-demand identity mapping). */
  pageFaults: number;
}

const within = (r: GpaRange, outer: readonly GpaRange[]) => outer.some((o) => r.start >= o.start && r.end <= o.end);
const equalRanges = (a: readonly GpaRange[], b: readonly GpaRange[]) => a.length === b.length && a.every((r, i) => r.start === b[i]!.start && r.end === b[i]!.end);

/**
 * `events`: the boot's trace; `readGuest`: the trusted view of guest memory (the machine's),
 * for the bitmap as the decompressor left it.
 */
export function linuxBootReport(linux: LinuxImages, events: readonly TraceEvent[], readGuest: (gpa: bigint, length: number) => Uint8Array, handoverRip?: bigint): LinuxBootReport {
  const { plan, bootData } = linux;
  const acceptCalls: LinuxAcceptCall[] = [];
  const revalidations: GpaRange[] = [];
  const rescinded = new Set<bigint>();
  const virtualizationExceptions: Record<string, number> = {};
  let platform: LinuxBootReport['platform'] = 'tdx';
  let pageFaults = 0;
  let acceptTdExits = 0;
  let pageStateChanges = 0;
  let handedOver = false;
  for (const e of events) {
    // The firmware's own accepts come before it enters the kernel; its last console line says so.
    if (!handedOver) {
      if (e.source === 'guest' && e.type === 'stage' && e.stage === 'decompressor') handedOver = true;
      continue;
    }
    if (e.source === 'vmm' && e.type === 'psc' && e.op === PSC_OP.PRIVATE) pageStateChanges++;
    if (e.source !== 'hw') continue;
    if (e.type === 'tdcall' && e.leaf === 'MEM_PAGE_ACCEPT' && typeof e.rcx === 'bigint') {
      // A TD exit is not a completed call: the VMM adds the page (TDH.MEM.PAGE.AUG, as KVM does on
      // demand) and the guest's TDCALL runs again.
      if (typeof e.result === 'string' && e.result.startsWith('td-exit')) {
        acceptTdExits++;
        continue;
      }
      const level = e.rcx & 7n;
      acceptCalls.push({ gpa: e.rcx & ~0xfffn, bytes: level === 1n ? 0x200000n : level === 2n ? 0x40000000n : 0x1000n, status: typeof e.status === 'bigint' ? e.status : -1n, rip: e.rip as bigint });
    } else if (e.type === 'pvalidate' && typeof e.gpa === 'bigint' && typeof e.rc === 'number') {
      // An NPF or fault (no rc) is no completed call: the VMM fixes it up and the guest runs it again.
      platform = 'snp';
      const bytes = e.size === '2m' ? 0x200000n : 0x1000n;
      const status = e.rc !== 0 ? BigInt(e.rc) : e.cf === true ? BigInt(PVALIDATE_FAIL_NOUPDATE) : 0n;
      if (e.validate !== true) {
        if (status === 0n) for (let p = e.gpa; p < e.gpa + bytes; p += 0x1000n) rescinded.add(p);
        continue;
      }
      if (status === 0n && bytes === 0x1000n && rescinded.delete(e.gpa)) {
        revalidations.push({ start: e.gpa, end: e.gpa + bytes });
        continue;
      }
      acceptCalls.push({ gpa: e.gpa, bytes, status, rip: e.rip as bigint });
    } else if (e.type === 've-injected') {
      const reason = String(e.exitReason);
      virtualizationExceptions[reason] = (virtualizationExceptions[reason] ?? 0) + 1;
    } else if (e.type === 'inject-vc' && typeof e.errorCode === 'bigint') {
      const code = `0x${e.errorCode.toString(16)}`;
      virtualizationExceptions[code] = (virtualizationExceptions[code] ?? 0) + 1;
    } else if ((e.type === 'exception-injected' || e.type === 'inject') && e.vector === 14) {
      pageFaults++;
    }
  }
  const accepted = mergeRanges(acceptCalls.filter((c) => c.status === 0n).map((c) => ({ start: c.gpa, end: c.gpa + c.bytes })));
  const { bitmap } = plan;
  const finalBits = bitmap.sizeBytes > 0n ? readGuest(bootData.unacceptedTableGpa + BigInt(UNACCEPTED_HEADER_SIZE), Number(bitmap.sizeBytes)) : new Uint8Array(0);
  const cleared = bitmap.bits.map((b, i) => b & ~finalBits[i]!);
  return {
    platform,
    kernelVersion: linux.image.version,
    loadAddress: plan.loadAddress,
    entry: plan.entry,
    ...(handoverRip !== undefined ? { handoverRip } : {}),
    acceptCalls,
    acceptTdExits,
    pageStateChanges,
    accepted,
    revalidated: mergeRanges(revalidations),
    failedAcceptCalls: acceptCalls.filter((c) => c.status !== 0n).length,
    acceptedWasMarkedUnaccepted: accepted.every((r) => within(r, plan.unaccepted)),
    bitmapClearedExactly: equalRanges(bitmapRanges(bitmap, cleared), accepted),
    stillUnaccepted: bitmapRanges(bitmap, finalBits),
    virtualizationExceptions,
    pageFaults,
  };
}

/** The report with GPAs as hex strings, for `boot --json`. */
export interface LinuxBootReportJson {
  platform: 'tdx' | 'snp';
  kernelVersion: string;
  loadAddress: string;
  entry: string;
  handoverRip?: string;
  acceptCalls: Record<string, number>;
  acceptTdExits: number;
  pageStateChanges: number;
  failedAcceptCalls: number;
  accepted: Array<{ start: string; end: string }>;
  acceptedBytes: number;
  revalidated: Array<{ start: string; end: string }>;
  acceptedWasMarkedUnaccepted: boolean;
  bitmapClearedExactly: boolean;
  stillUnacceptedBytes: number;
  virtualizationExceptions: Record<string, number>;
  pageFaults: number;
}

export function linuxBootReportJson(r: LinuxBootReport): LinuxBootReportJson {
  const calls: Record<string, number> = {};
  for (const c of r.acceptCalls) {
    const name = c.bytes === 0x40000000n ? '1G' : c.bytes === 0x200000n ? '2M' : '4K';
    calls[name] = (calls[name] ?? 0) + 1;
  }
  const bytes = (rs: readonly GpaRange[]) => Number(rs.reduce((s, x) => s + (x.end - x.start), 0n));
  const ranges = (rs: readonly GpaRange[]) => rs.map((x) => ({ start: hex(x.start), end: hex(x.end) }));
  return {
    platform: r.platform, kernelVersion: r.kernelVersion, loadAddress: hex(r.loadAddress), entry: hex(r.entry),
    ...(r.handoverRip !== undefined ? { handoverRip: hex(r.handoverRip) } : {}),
    acceptCalls: calls, acceptTdExits: r.acceptTdExits, pageStateChanges: r.pageStateChanges, failedAcceptCalls: r.failedAcceptCalls,
    accepted: ranges(r.accepted), acceptedBytes: bytes(r.accepted), revalidated: ranges(r.revalidated),
    acceptedWasMarkedUnaccepted: r.acceptedWasMarkedUnaccepted, bitmapClearedExactly: r.bitmapClearedExactly,
    stillUnacceptedBytes: bytes(r.stillUnaccepted), virtualizationExceptions: r.virtualizationExceptions, pageFaults: r.pageFaults,
  };
}

const mib = (b: bigint) => `${Number(b) / 2 ** 20} MiB`;
const hex = (v: bigint) => `0x${v.toString(16)}`;

/** The report as lines for the CLI summary. */
export function formatLinuxBootReport(r: LinuxBootReport): string[] {
  const bySize = new Map<bigint, number>();
  for (const c of r.acceptCalls) bySize.set(c.bytes, (bySize.get(c.bytes) ?? 0) + 1);
  const sizes = [...bySize].map(([bytes, n]) => `${n} × ${bytes >= 0x100000n ? mib(bytes).replace(' MiB', 'M') : `${bytes / 1024n}K`}`).join(', ') || 'none';
  const snp = r.platform === 'snp';
  const ves = Object.entries(r.virtualizationExceptions).map(([reason, n]) => `${n} × ${snp ? 'exit code' : 'exit reason'} ${reason}`).join(', ') || 'none';
  const total = r.accepted.reduce((s, x) => s + (x.end - x.start), 0n);
  const left = r.stillUnaccepted.reduce((s, x) => s + (x.end - x.start), 0n);
  const list = (rs: readonly GpaRange[]) => rs.map((x) => `[${hex(x.start)}, ${hex(x.end)})`).join(' ') || '-';
  const how = snp
    ? `PVALIDATE calls (${sizes}; ${r.failedAcceptCalls} failed; ${r.pageStateChanges} page-state changes to private first)`
    : `TDG.MEM.PAGE.ACCEPT calls (${sizes}; ${r.failedAcceptCalls} failed; ${r.acceptTdExits} TD exits for AUG first)`;
  return [
    `  linux: ${r.kernelVersion || '(no version string)'}; loaded at ${hex(r.loadAddress)}, startup_64 ${hex(r.entry)}${r.handoverRip !== undefined ? `; decompressed kernel entered at ${hex(r.handoverRip)}` : ''}`,
    `  decompressor accepted ${mib(total)} in ${r.acceptCalls.length} ${how}: ${list(r.accepted)}`,
    ...(r.revalidated.length ? [`  and validated again what it had made shared itself (its GHCB page): ${list(r.revalidated)}`] : []),
    `  unaccepted table: every accepted range was marked unaccepted: ${r.acceptedWasMarkedUnaccepted ? 'yes' : 'NO'}; the bitmap cleared exactly those units: ${r.bitmapClearedExactly ? 'yes' : 'NO'}; ${mib(left)} still unaccepted for the kernel`,
    `  after the hand-over: ${snp ? '#VC' : '#VE'} ${ves}; #PF ${r.pageFaults} (the decompressor's on-demand identity map)`,
  ];
}
