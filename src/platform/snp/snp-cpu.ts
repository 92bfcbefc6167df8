// The trusted half of an SNP guest: what the AMD CPU and its security processor enforce.
// It owns the RMP, the per-vCPU GHCB MSR, the launch digest and the page gate, turns vCPU
// exits into architectural effects (PVALIDATE, #VC, NPF, VMGEXIT, MSRs, CPUID), and offers the
// untrusted VMM only its handle (SnpVmmHandle, vmm-handle.ts): RMPUPDATE, PSMASH, NPT page size,
// SNP_LAUNCH_*, the GHCB MSR value on VMGEXIT, host-view memory and injection.
import { InjectionError } from '../../cpu/errors.js';
import type { Access, CacheOrWaitExit, CacheOrWaitInstruction, GateFaultExit, MovDrExit, SystemCallExit, VmExit } from '../../cpu/exits.js';
import { cacheOrWaitFault } from '../../cpu/cache-or-wait.js';
import { rdpmcFault } from '../../cpu/rdpmc.js';
import { movDrFault } from '../../cpu/mov-dr.js';
import { executeFastSystemCall, MSR_CSTAR, MSR_LSTAR, MSR_SFMASK, MSR_STAR, MSR_SYSENTER_CS } from '../../cpu/fast-system-call.js';
import { Machine, type MachineState, type RamPaging } from '../../cpu/machine.js';
import { CR4_OSXSAVE } from '../../cpu/registers.js';
import { GP_VECTOR, UD_VECTOR, VC_VECTOR } from '../../shared/x86-vectors.js';
import type { GateAccess, GateFetch } from '../../memory/page-gate.js';
import type { Space } from '../../memory/address-marker.js';
import type { RunOutcome } from '../../shared/outcome.js';
import { Trace } from '../../shared/trace.js';
import { checkAccess, failedCheck, type AccessRequest, type GuestContext } from './access-check.js';
import { LaunchDigest, NO_LOWER_VMPL_PERMS, type LaunchPageType, type LaunchVmplPerms } from './launch.js';
import { EFER_SVME, MSR_PAT, VMSA_MEASURED_GPA, applyGuestVmsa, applyVmsa, decodeVmsaPage, patValid, vmsaEntryState, vmsaPage, type Vmsa } from './vmsa.js';
import { VcpuScheduler, type ScheduleOptions, type VcpuSchedulerState } from '../../cpu/vcpu-scheduler.js';
import type { TraceValue } from '../../shared/trace.js';
import { MemoryEncryption } from './memory-encryption.js';
import { validateCpuidPage } from './cpuid-page.js';
import { u64ToNumber } from '../../shared/u64.js';
import { PAGE_2M, PAGE_2M_BASE, PAGE_4K, PAGE_4K_BASE, PAGES_PER_2M, Rmp, VMPL_PERM_ALL, regionOf, type RmpEntry, type RmpTable, type RmpPageSize } from './rmp.js';
import { legality, RMP_RC, LAUNCH_STATUS, type HostOp, type HostResult, type LaunchStatusName, type TargetState } from './rmp-legality.js';
import { decodePvalidateRegs, pvalidate, pvalidateFlags } from './pvalidate.js';
import { decodeRmpadjustRegs, rmpadjust } from './rmpadjust.js';
import type { RmpInsnEarlyOutcome } from './rmp-instruction.js';
import { MSR_GHCB, MSR_SEV_STATUS, SNP_GUEST_SEV_FEATURES, SNP_GUEST_SEV_STATUS, snpCpuid } from './sev-status.js';
import { SVM_EXIT } from './ghcb-page.js';
import { svmInstruction } from './svm-insn.js';
import { GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN, ghcbMsr } from './ghcb-msr.js';
import { secretsPage, vmpckOf } from './secrets-page.js';
import { GMSG, GuestRequestFirmware } from './guest-request.js';
import { SnpVmmHandle } from './vmm-handle.js';
import type { PageState, Platform, PlatformStep } from '../platform.js';
import { GateResyncGuard, type RefusedAccess } from '../gate-resync.js';
import { enterVm, runsOnCpu, type HardwareHandled } from '../vm-entry.js';
import { denseBytes, type SparsePages } from '../../shared/sparse-pages.js';

export { VC_VECTOR } from '../../shared/x86-vectors.js';
const MSR_EFER = 0xc0000080;
/**
 * MSRs that are guest state in the VMSA and that KVM never intercepts for an SVM guest
 * (arch/x86/kvm/svm/svm.c direct_access_msrs, `.always = true`: MSR_STAR, MSR_IA32_SYSENTER_CS,
 * MSR_GS_BASE, MSR_FS_BASE, MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK), so an
 * SEV-ES/SNP guest reads and writes them without a #VC; Linux's secondary_startup_64 writes
 * MSR_GS_BASE on every AP for its per-CPU area, and syscall_init the SYSCALL MSRs, which its
 * SYSCALLs then use (src/cpu/fast-system-call.ts).
 */
const PASSTHROUGH_MSRS: ReadonlySet<number> = new Set([
  MSR_EFER, 0xc0000100, 0xc0000101, 0xc0000102, MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SFMASK, MSR_SYSENTER_CS,
  // PAT too for an SEV-ES/SNP guest: KVM sev_es_recalc_msr_intercepts ("Clear intercepts on MSRs
  // that are context switched by hardware": the GHCB MSR, EFER, MSR_IA32_CR_PAT; torvalds/linux
  // 0097f9df), so RDMSR reads, and WRMSR writes, G_PAT in the VMSA (offset 0x268) without a #VC.
  MSR_PAT,
]);
/** The SVM exit code of each cache-or-wait instruction's intercept (WBNOINVD's is WBINVD's: #cacheOrWait). */
const CACHE_OR_WAIT_EXIT_CODE: Readonly<Record<CacheOrWaitInstruction, number>> = {
  invd: SVM_EXIT.INVD, wbinvd: SVM_EXIT.WBINVD, wbnoinvd: SVM_EXIT.WBINVD, monitor: SVM_EXIT.MONITOR, mwait: SVM_EXIT.MWAIT,
};
export { SNP_GUEST_SEV_FEATURES } from './sev-status.js';
const RFLAGS_IF = 1n << 9n;
/** Machine.debugRegisterIntercepts of an SNP guest: reads (bit 7) and writes (bit 23) of DR7 (VMCB offset 000h layout). */
const DR7_INTERCEPTS = (1 << 7) | (1 << 23);

/**
 * Whether the RFLAGS image an exception pushes has RF = 1. AMD APM Vol. 2 §3.1.6 "Resume Flag
 * (RF) Bit 16": "When an exception occurs (or when a string instruction is interrupted), the
 * processor normally sets RF=1 in the RFLAGS image saved on the interrupt stack", clearing it only
 * for an instruction-breakpoint #DB. So every exception the CPU raises on a guest instruction (#VC
 * included: a fault, RIP at the instruction) pushes RF = 1, and an interrupt arriving between
 * instructions pushes RF as it is. Which vectors count as fault-class (the rest: #DB, #BP, #OF
 * traps; #DF, #MC aborts; NMI and vectors 32-255 interrupts) follows Linux KVM's exception_type()
 * (arch/x86/kvm/x86.c), which also sets RF for the fault-class exceptions it injects
 * (inject_pending_event).
 */
export function pushesResumeFlag(vector: number): boolean {
  return vector < 32 && ![1, 2, 3, 4, 8, 18].includes(vector);
}
/** The step of every exit the hardware completes itself: one object, read only (one per exit was garbage). */
const RESUME: { readonly kind: 'resume' } = Object.freeze({ kind: 'resume' });
/** The 4 KiB page number of a 64-bit address: below 2^52, so exact as a number. */
const pageNumber = (address: bigint): number => Number(address >> 12n);

export interface SnpPlatformOptions {
  /** The guest's ASID (non-zero). Default 1. */
  asid?: number;
  /** C-bit position reported by CPUID 0x8000001F and used by the page gate. Default 51. */
  cBit?: number;
  /** VMPL the vCPU runs at. Default 0. */
  vmpl?: 0 | 1 | 2 | 3;
  /** Names this VM's memory-encryption key (with the ASID); equal values give equal keys. Default 0. */
  keySeed?: bigint;
  trace?: Trace;
  /** With several vCPUs: who runs when (default round-robin, seed 1). */
  schedule?: ScheduleOptions;
}

export interface SnpMachineOptions extends SnpPlatformOptions {
  memoryBytes: bigint;
  /** vCPUs (default 1). vCPU 0 starts from the launch VMSA; the others only once the guest creates them (AP creation VMGEXIT). */
  vcpus?: number;
  countInstructions?: boolean;
  instructionLimit?: bigint;
  /** How the host backs guest RAM (MachineOptions.ramPaging; default 'huge-pages'). */
  ramPaging?: RamPaging;
}

/** What the hardware hands to the VMM (a #VMEXIT). */
export type SnpVmExit =
  | { kind: 'npf'; rip: bigint; gpa: bigint; gva?: bigint; access: Access; errorCode: bigint; reason: string }
  | { kind: 'vmgexit'; rip: bigint; ghcbMsr: bigint }
  /**
   * interruptsBlocked: RFLAGS.IF was 0. The hypervisor of an SEV-ES/SNP guest sees it without the
   * encrypted VMSA: the VMCB's GUEST_INTERRUPT_MASK (int_state bit 1), which the processor sets
   * from RFLAGS.IF on #VMEXIT (AMD APM Vol. 2 §15.35.7; KVM svm_interrupt_blocked).
   */
  | { kind: 'hlt'; rip: bigint; interruptsBlocked: boolean };

export type HwStep =
  | { kind: 'resume' }
  | { kind: 'vmexit'; exit: SnpVmExit }
  | { kind: 'outcome'; outcome: RunOutcome };

export interface RmpUpdateRequest {
  assigned: boolean;
  pageSize: RmpPageSize;
  immutable?: boolean;
  gpa: bigint;
  asid: number;
}

export interface HostOpResult {
  rc: number;
  result: HostResult;
  state: TargetState;
  /** SNP_LAUNCH_UPDATE of a CPUID page that failed the firmware's check: the corrected table. */
  corrected?: Uint8Array;
}

/** Everything the SNP hardware keeps about a guest. The encryption key never changes, so it is not part of it. */
export interface SnpPlatformState {
  machine: MachineState;
  rmp: RmpTable;
  npt2m: ReadonlySet<bigint>;
  /** Per vCPU (the GHCB MSR is VMSA state). */
  ghcbMsrs: readonly bigint[];
  /** Per vCPU: created (the BSP, or an AP the guest started through AP creation). */
  runnable: readonly boolean[];
  scheduler?: VcpuSchedulerState;
  launch: ReturnType<LaunchDigest['saveState']>;
  /** The firmware's guest-message counts, one per VMPCK. */
  guestMessageCounts: readonly bigint[];
  pendingOutcome: RunOutcome | undefined;
  /** SnpPlatform's host-written pages, by page number (GPA / 4 KiB). */
  dramPages: ReadonlySet<number>;
}

/** Why VMRUN from an AP's VMSA did not happen, or that it did. */
export type ApStartResult = { ok: true } | { ok: false; reason: string };

/**
 * Whether `b`, the entry `distance` pages after `a` in the same 2 MiB region, gives every check of
 * access-check.ts (and the ciphertext gate) the same inputs as `a`: the same fields, and a
 * reverse map that is off from its page by the same amount (both map their own page, or both
 * map elsewhere alike). The nested page size and the region's ownership are the region's.
 */
function sameAccessInputs(a: Readonly<RmpEntry>, b: Readonly<RmpEntry>, distance: number): boolean {
  return a.assigned === b.assigned && a.asid === b.asid && a.immutable === b.immutable && a.validated === b.validated
    && a.vmsa === b.vmsa && a.pageSize === b.pageSize
    && (a.vmplPerms === b.vmplPerms || (a.vmplPerms[0] === b.vmplPerms[0] && a.vmplPerms[1] === b.vmplPerms[1]
      && a.vmplPerms[2] === b.vmplPerms[2] && a.vmplPerms[3] === b.vmplPerms[3]))
    && sameDistance(a.gpa, b.gpa, distance);
}

/** b - a === distance pages; on numbers (no BigInt allocated) when both are exact as numbers. */
function sameDistance(a: bigint, b: bigint, distance: number): boolean {
  const na = u64ToNumber(a), nb = u64ToNumber(b);
  if (Number.isSafeInteger(na) && Number.isSafeInteger(nb)) return nb - na === distance * 0x1000;
  return b - a === BigInt(distance) * PAGE_4K;
}

/**
 * What the page gate allows a page in each space, and at which CPLs it may be fetched from (every
 * instruction fetch is a private access: APM Vol. 2 §15.34.5).
 */
type PageGates = { private: GateAccess; fetch: GateFetch; shared: GateAccess };
/** What the private gate allows a page. */
type PrivateGate = { access: GateAccess; fetch: GateFetch };
/** One gate update of a region's derivation: [base + offset, base + offset + length) of `space`; `fetch` private only. */
type RegionGateUpdate = Readonly<{ space: Space; offset: bigint; length: bigint; access: GateAccess; fetch?: GateFetch }>;
/** Derivations remembered (SnpPlatform.#regionGateUpdates) before the memo starts again. */
const REGION_GATE_MEMO_LIMIT = 4096;

export class SnpPlatform implements Platform<SnpVmExit, SnpVmmHandle, SnpPlatformState> {
  readonly kind = 'snp' as const;
  readonly machine: Machine;
  readonly rmp: Rmp;
  readonly trace: Trace;
  readonly asid: number;
  readonly cBit: number;
  readonly vmpl: 0 | 1 | 2 | 3;
  readonly launch = new LaunchDigest();
  readonly #guestRequests = new GuestRequestFirmware();
  /** 2 MiB regions the VMM maps with a 2 MiB NPT page (default: 4 KiB). */
  readonly #npt2m = new Set<bigint>();
  readonly #encryption: MemoryEncryption;
  /**
   * The GHCB MSR of each vCPU: the GHCB GPA field of its VMCB control area (Linux struct
   * vmcb_control_area ghcb_gpa; KVM set_ghcb_msr), the hypervisor's to write, not VMSA state.
   */
  #ghcbMsrs: bigint[];
  /**
   * Which vCPUs exist for the guest: the BSP from launch, an AP once the VMM ran it from the VMSA
   * the guest created (KVM: an SNP AP stays KVM_MP_STATE_UNINITIALIZED until AP creation).
   */
  #runnable: boolean[];
  /** Several vCPUs: who runs when. */
  readonly scheduler: VcpuScheduler | undefined;
  /** Names this VM's keys: the memory-encryption key and the secrets page's VMPCKs. */
  readonly #identity: string;
  /** What the untrusted VMM may use. */
  readonly handle: SnpVmmHandle;
  /** An outcome decided between steps (an event the VMM injected could not be delivered). */
  #pendingOutcome: RunOutcome | undefined;
  /** Inside batchGateSync: the 2 MiB regions whose gate is derived when the batch ends. */
  #deferredRegions: Set<bigint> | undefined;
  readonly #batchRegions = new Set<bigint>();
  /** Gate updates of small regions by RMP version and nested page size (#regionGateUpdates). */
  readonly #regionGateMemo = new Map<number, readonly RegionGateUpdate[]>();
  /** #privateGateOfEntry's last answer and what it was derived from (a cache: every input is compared). */
  #lastEntryGate: { pageNumber: number; entry: Readonly<RmpEntry>; nptSize: RmpPageSize; gate: PrivateGate } | undefined;
  /**
   * Hypervisor-owned pages whose bytes in `machine.memory` are DRAM content the guest's key must
   * decrypt when the page is assigned to it again (see #changeOwner): the ciphertext a validated
   * page kept when the hypervisor took it, or bytes the host wrote. By page number (GPA / 4 KiB,
   * exact: RAM ends below 2^53): a 2 MiB RMPUPDATE looks up its 512 pages, and building and
   * hashing a BigInt for each was ~2.4% of an SNP fuzz campaign's CPU time (issue 10).
   */
  readonly #dramPages = new Set<number>();

  /** A new SNP guest: its machine (RAM, gate, vCPU) and the platform, every page hypervisor-owned. */
  static create(options: SnpMachineOptions): SnpPlatform {
    const machine = new Machine({
      memoryBytes: options.memoryBytes, countInstructions: options.countInstructions ?? true,
      marker: { kind: 'snp-c-bit', position: options.cBit ?? 51 }, vcpus: options.vcpus ?? 1,
      ...(options.instructionLimit !== undefined ? { instructionLimit: options.instructionLimit } : {}),
      ...(options.ramPaging !== undefined ? { ramPaging: options.ramPaging } : {}),
    });
    return new SnpPlatform(machine, options);
  }

  constructor(machine: Machine, options: SnpPlatformOptions = {}) {
    this.machine = machine;
    this.asid = options.asid ?? 1;
    if (this.asid <= 0) throw new RangeError('an SNP guest needs a non-zero ASID');
    this.cBit = options.cBit ?? 51;
    this.vmpl = options.vmpl ?? 0;
    this.#ctx = { asid: this.asid, vmpl: this.vmpl };
    this.trace = options.trace ?? new Trace();
    this.rmp = new Rmp(machine.memoryBytes);
    this.#identity = `asid ${this.asid} seed ${options.keySeed ?? 0n}`;
    this.#encryption = new MemoryEncryption(this.#identity);
    machine.marker = { kind: 'snp-c-bit', position: this.cBit };
    // KVM sev_es_init_vmcb: while SEV_FEATURES lack DebugSwap (ours do: SNP_GUEST_SEV_FEATURES),
    // clr_dr_intercepts then set INTERCEPT_DR7_READ and INTERCEPT_DR7_WRITE: MOV to or from DR7
    // is intercepted (#movDr), any other debug register runs on the CPU.
    machine.debugRegisterIntercepts = DR7_INTERCEPTS;
    // Reset state: every page hypervisor-owned, so private accesses fail and shared ones pass.
    // The gate is a cache of what the RMP allows: it starts closed and a shared access opens
    // its 2 MiB region on first use (#gateFault -> 'ok'), so a 1 TiB guest pays only for the
    // regions it touches.
    machine.gate.set('private', 0n, machine.memoryBytes, 'none');
    machine.gate.set('shared', 0n, machine.memoryBytes, 'none');
    // At vCPU RESET a GHCB-spec hypervisor puts the SEV Information response there, unasked (KVM
    // sev_es_init_vmcb: "Set the GHCB MSR value as per the GHCB specification when emulating vCPU
    // RESET"; COCONUT-SVSM d72a9aac: "the HV is required to put an unsolicited SEV Information
    // response into the GHCB MSR"). An AP keeps it until it first runs (runApFromVmsa).
    this.#ghcbMsrs = new Array<bigint>(machine.vcpuCount).fill(ghcbMsr.sevInfoResp(GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN, this.cBit));
    this.#runnable = Array.from({ length: machine.vcpuCount }, (_, i) => i === 0);
    this.scheduler = machine.vcpuCount > 1 ? new VcpuScheduler(machine, options.schedule ?? { policy: 'round-robin', seed: 1n, quantum: 2000 }) : undefined;
    if (this.scheduler) this.scheduler.isRunnable = (i) => this.#runnable[i]!;
    this.#syncPauseExits();
    this.handle = new SnpVmmHandle(this);
  }

  /** PAUSE is a switch point only while another vCPU can run (before AP creation none can). */
  #syncPauseExits(): void {
    if (this.machine.vcpuCount > 1) this.machine.pauseExits = this.#runnable.filter(Boolean).length > 1;
  }

  readonly #recordHw = (type: string, fields: Record<string, TraceValue>): void => this.#record(type, fields);

  /** An event of the hardware; with several vCPUs it says which one it happened on (as on TDX). */
  #record(type: string, fields: Record<string, TraceValue>): void {
    this.trace.record('hw', type, this.machine.withVcpu(fields));
  }

  get memoryBytes(): bigint { return this.machine.memoryBytes; }
  /** The guest's ASID and VMPL for the access checks (one object: it was built on every check). */
  get ctx(): GuestContext { return this.#ctx; }
  readonly #ctx: GuestContext;
  /** nptPageSize as a function value, made once rather than per RMP instruction. */
  readonly #nptSizeAt = (gpa: bigint): RmpPageSize => this.nptPageSize(gpa);

  // ---------------------------------------------------------------- host interface

  rmpEntry(spa: bigint): Readonly<RmpEntry> { return this.rmp.lookup(spa); }

  /** RMPUPDATE: always clears Validated (B2). New guest pages give VMPL0 all permissions (B3). */
  rmpUpdate(spa: bigint, req: RmpUpdateRequest): HostOpResult {
    const op: HostOp = req.pageSize === '2m' ? 'rmpupdate-2m' : 'rmpupdate-4k';
    const { state, result } = legality(this.rmp, op, spa);
    const rc = RMP_RC[result as keyof typeof RMP_RC];
    this.#record('rmpupdate', { spa, gpa: req.gpa, assigned: req.assigned, pageSize: req.pageSize, immutable: req.immutable ?? false, asid: req.asid, state, result });
    if (result !== 'SUCCESS') return { rc, result, state };
    this.#changeOwner(spa, req);
    const entry: RmpEntry = {
      assigned: req.assigned, pageSize: req.pageSize, immutable: req.immutable ?? false, gpa: req.gpa, asid: req.asid,
      validated: false, vmsa: false, vmplPerms: req.assigned ? [VMPL_PERM_ALL, 0, 0, 0] : [0, 0, 0, 0],
    };
    if (req.pageSize === '2m') {
      this.rmp.put2m(spa, entry);
      this.#syncRegion(regionOf(spa));
    } else {
      this.rmp.put4k(spa, entry);
      this.#syncPage(spa);
    }
    return { rc, result, state };
  }

  /**
   * The host-written pages (#dramPages) in [base, end). Visits whichever is fewer, those pages (a
   * handful in a boot: GHCB and PSC buffers) or the range's: walking the 512 pages of each 2 MiB
   * range with a BigInt set lookup per page was most of the extra per-GiB cost of an eager SNP
   * acceptance over TDX's (issue 11).
   */
  #dramPagesIn(base: bigint, end: bigint): bigint[] {
    // Both callers pass a page-aligned base.
    const first = pageNumber(base);
    const rangePages = Number((end - base) / PAGE_4K);
    const pages: bigint[] = [];
    if (this.#dramPages.size < rangePages) {
      for (const page of this.#dramPages) if (page >= first && page < first + rangePages) pages.push(BigInt(page) * PAGE_4K);
      return pages;
    }
    for (let i = 0; i < rangePages; i++) {
      if (this.#dramPages.has(first + i)) pages.push(BigInt(first + i) * PAGE_4K);
    }
    return pages;
  }

  /**
   * What DRAM holds across RMPUPDATE of `spa` (4 KiB, or the 2 MiB range), in this model's terms:
   * `machine.memory` keeps the guest's plaintext (its C=1 view) for assigned pages and the DRAM
   * bytes (everyone's C=0 view) for hypervisor-owned ones. Guest memory is encrypted with the
   * guest's key and a tweak from the system-physical address (APM Vol. 2 §15.34.1; "swapping or
   * moving a ciphertexts of two guest pages will not result in plaintexts being swapped", QEMU
   * commit 2b308e44 by AMD), and RMPUPDATE writes the RMP entry, not memory (APM Vol. 3
   * "RMPUPDATE"). So:
   * - a validated page the hypervisor takes from the guest keeps the ciphertext of what the guest
   *   had there: the host reads (and may copy) that, not the plaintext;
   * - a page assigned to the guest whose DRAM the host wrote meanwhile reads as the decryption of
   *   those bytes at this address: the old plaintext when they are this page's own earlier
   *   ciphertext (a replay: only the Validated bit RMPUPDATE cleared stops the guest from using
   *   it, SEV-SNP whitepaper "Page Validation"), garbage when they came from another address or
   *   are the host's own bytes;
   * - pre-guest pages (Immutable: SNP_LAUNCH_UPDATE next) keep the host's bytes, which the
   *   firmware encrypts in place (Firmware ABI §8.17).
   * Not modelled, to keep a conversion free of AES passes (~8 ms per 2 MiB): a page the guest
   * itself rescinded (Validated clear: it asked for it to be shared) leaves with its plaintext, and
   * what the guest writes with C=0 into shared memory comes back as written when the page is
   * private again (on hardware: its decryption, garbage). Neither is live data of the guest's:
   * a guest must write memory it validates again before it uses it.
   */
  #changeOwner(spa: bigint, req: RmpUpdateRequest): void {
    const base = spa & (req.pageSize === '2m' ? PAGE_2M_BASE : PAGE_4K_BASE);
    const end = base + (req.pageSize === '2m' ? PAGE_2M : PAGE_4K);
    if (req.assigned) {
      // Only pages the host wrote can need decrypting (most conversions find none).
      if (this.#dramPages.size === 0) return;
      const written = this.#dramPagesIn(base, end).filter((page) => page < this.memoryBytes);
      for (const page of written) {
        if (this.rmp.lookup(page).assigned) continue;
        this.#dramPages.delete(pageNumber(page));
        if (req.immutable) continue;
        this.machine.memory.write(page, this.#encryption.decryptPage(page, this.machine.memory.read(page, Number(PAGE_4K))));
        // Garbage or a replay of old plaintext: watched byte by byte (foreign-content.ts).
        this.machine.watchContent(page, PAGE_4K, true);
      }
      return;
    }
    // A page the guest gives up (or the host takes) holds, when it comes back, what DRAM held in
    // between, which the host could write: watched from now (only private accesses are seen, so
    // the guest's shared use of it does not count) until the guest's first private store after
    // it validates the page again, page by page (foreign-content.ts).
    // A region with no assigned page has none of the guest's: nothing to watch or keep.
    if (this.rmp.regionHypervisorOwned(base)) return;
    const stop = end < this.memoryBytes ? end : this.memoryBytes;
    if (this.rmp.isLarge(base)) {
      // One 2 MiB entry governs every page (a 4 KiB RMPUPDATE inside it is refused): what the loop
      // below does page by page, without looking the same entry up 512 times.
      const old = this.rmp.lookup(base);
      if (!(old.assigned && old.asid === this.asid) || base >= stop) return;
      if (old.validated) {
        for (let page = base; page < stop; page += PAGE_4K) {
          this.machine.memory.write(page, this.#ciphertextOf(page));
          this.#dramPages.add(pageNumber(page));
        }
      }
      this.machine.watchContent(base, stop - base, true, 'page');
      return;
    }
    let watchFrom: bigint | undefined;
    for (let page = base; page < stop; page += PAGE_4K) {
      const old = this.rmp.lookup(page);
      const guests = old.assigned && old.asid === this.asid;
      if (guests && watchFrom === undefined) watchFrom = page;
      if (!guests && watchFrom !== undefined) {
        this.machine.watchContent(watchFrom, page - watchFrom, true, 'page');
        watchFrom = undefined;
      }
      if (!guests || !old.validated) continue;
      this.machine.memory.write(page, this.#ciphertextOf(page));
      this.#dramPages.add(pageNumber(page));
    }
    if (watchFrom !== undefined) this.machine.watchContent(watchFrom, stop - watchFrom, true, 'page');
  }

  /** A host write reached `page` (it may write only hypervisor-owned pages): DRAM now holds its bytes there. */
  noteHostWrite(page: bigint): void {
    if (!this.rmp.lookup(page).assigned) this.#dramPages.add(pageNumber(page));
  }

  /** PSMASH: 2 MiB entry -> 512 4 KiB entries, Validated preserved (B2). */
  psmash(spa: bigint): HostOpResult {
    const { state, result } = legality(this.rmp, 'psmash', spa);
    const rc = RMP_RC[result as keyof typeof RMP_RC];
    this.#record('psmash', { spa, state, result });
    if (result === 'SUCCESS') {
      this.rmp.split(spa);
      this.#syncRegion(regionOf(spa));
    }
    return { rc, result, state };
  }

  setNptPageSize(gpa: bigint, size: RmpPageSize): void {
    const key = regionOf(gpa);
    if (size === '2m') this.#npt2m.add(key);
    else this.#npt2m.delete(key);
    this.trace.record('vmm', 'npt-page-size', { gpa: key << 21n, size });
    this.#syncRegion(key);
  }

  nptPageSize(gpa: bigint): RmpPageSize {
    // Most guests never get a 2 MiB nested mapping: skip the BigInt key then.
    return this.#npt2m.size !== 0 && this.#npt2m.has(regionOf(gpa)) ? '2m' : '4k';
  }

  /**
   * SNP_LAUNCH_UPDATE of one 4 KiB page already made pre-guest (RMPUPDATE assigned+immutable):
   * the firmware copies `source` in (or, without one, encrypts the page's current contents in
   * place, which the host wrote while the page was still its own), measures it and marks it
   * validated (B4 "pre-validation"); it clears Immutable (Firmware ABI §8.17).
   *
   * Its checks, in the firmware's order (amd/AMD-ASPFW sev_mcmd.c snp_mcmd_launch_update): the
   * address's reserved bits (INVALID_PARAM); the page's RMP state must be PRE_GUEST, Assigned,
   * Immutable, not Validated, a non-zero ASID (sev_rmp.c rmp_entry_get_state; an address the RMP
   * does not cover is a DEFAULT page): INVALID_PAGE_STATE; the entry's page size must be the
   * command's, 4 KiB here: INVALID_PAGE_SIZE; the guest must still be launching:
   * INVALID_GUEST_STATE; the page's ASID must be the guest's: INVALID_PAGE_OWNER. The entry's GPA
   * is not checked: it is what the measurement records (PAGE_INFO.GPA = the RMP entry's GPA).
   */
  launchUpdatePage(gpa: bigint, type: LaunchPageType = 'NORMAL', source?: Uint8Array, vmplPerms: LaunchVmplPerms = NO_LOWER_VMPL_PERMS): HostOpResult {
    let { state, result } = legality(this.rmp, 'launch-update', gpa);
    const e = this.rmp.lookup(gpa);
    if (state === 'misaligned' && gpa % PAGE_4K === 0n) result = 'INVALID_PAGE_STATE';  // aligned but not covered: DEFAULT
    else if (result === 'SUCCESS' && (!e.assigned || e.validated || e.asid === 0)) result = 'INVALID_PAGE_STATE';
    else if (result === 'SUCCESS' && e.pageSize !== '4k') result = 'INVALID_PAGE_SIZE';
    else if (result === 'SUCCESS' && this.launch.finished) result = 'INVALID_GUEST_STATE';
    else if (result === 'SUCCESS' && e.asid !== this.asid) result = 'INVALID_PAGE_OWNER';
    this.#record('launch-update', { gpa, pageType: type, state, result });
    if (result !== 'SUCCESS') return { rc: LAUNCH_STATUS[result as LaunchStatusName], result, state };
    if (source !== undefined && source.byteLength !== Number(PAGE_4K)) return { rc: RMP_RC.FAIL_INPUT, result: 'FAIL_INPUT', state };
    if (vmplPerms.some((p) => !Number.isInteger(p) || p < 0 || p > VMPL_PERM_ALL)) return { rc: RMP_RC.FAIL_INPUT, result: 'FAIL_INPUT', state };
    if (type === 'CPUID') {
      // The firmware checks the proposed table against the CPU before the guest may trust it
      // (cpuid-page.ts); a bad one stays pre-guest and the corrected table goes back to the host.
      const check = validateCpuidPage(source ?? this.machine.memory.read(gpa, Number(PAGE_4K)), (leaf, sub) => snpCpuid(leaf, sub, this.cBit));
      if (!check.ok) {
        this.#record('launch-cpuid-rejected', { gpa, leaves: check.mismatches });
        return { rc: LAUNCH_STATUS.INVALID_PARAM, result: 'INVALID_PARAM', state, corrected: check.corrected };
      }
    }
    if (type === 'ZERO') this.machine.memory.fill(gpa, PAGE_4K, 0);
    // The firmware writes the secrets page itself (secrets-page.ts); what the host proposed is dropped.
    else if (type === 'SECRETS') this.machine.memory.write(gpa, secretsPage(this.#identity, snpCpuid(1, 0, this.cBit).eax));
    else if (source !== undefined) this.machine.memory.write(gpa, source);
    // NORMAL and VMSA pages are measured by their bytes (launch.ts): what was just written, or the page as it was.
    const measured = type === 'NORMAL' || type === 'VMSA' ? source ?? this.machine.memory.read(gpa, Number(PAGE_4K)) : undefined;
    this.launch.extend(type, e.gpa, measured, vmplPerms);
    // A VMSA page gets the RMP VMSA bit ("Set the RMP.VMSA of the page to 1h", snp_mcmd_launch_update).
    this.rmp.put4k(gpa, { ...e, immutable: false, validated: true, vmsa: e.vmsa || type === 'VMSA', vmplPerms: [VMPL_PERM_ALL, ...vmplPerms] });
    this.#syncPage(gpa);
    return { rc: 0, result, state };
  }

  /**
   * launchRange() of the pages overlapping [gpa, gpa+length), their bytes as they are in memory,
   * VMPL1-3 given `vmplPerms`; throws if one fails.
   */
  launchUpdateRange(gpa: bigint, length: bigint, type: LaunchPageType = 'NORMAL', vmplPerms: LaunchVmplPerms = NO_LOWER_VMPL_PERMS): void {
    const base = gpa & ~(PAGE_4K - 1n);
    const end = (gpa + length + PAGE_4K - 1n) & ~(PAGE_4K - 1n);
    const r = this.launchRange(base, end - base, type, undefined, vmplPerms);
    if (r.rc !== 0) throw new Error(`${r.op === 'rmpupdate' ? 'launch RMPUPDATE' : 'SNP_LAUNCH_UPDATE'} of 0x${r.at.toString(16)} failed: ${r.result}`);
  }

  /**
   * What a VMM's launch of one piece of the initial image does (KVM_SEV_SNP_LAUNCH_UPDATE over a
   * range: KVM's sev_gmem_post_populate makes each page pre-guest with RMPUPDATE, then issues the
   * firmware's SNP_LAUNCH_UPDATE for it): every 4 KiB page of [gpa, gpa+bytes) assigned to this
   * guest at its own GPA, Immutable, then LAUNCH_UPDATEd as `type`, in address order. `source`
   * holds the pages' bytes back to back; without it a NORMAL or UNMEASURED page keeps what memory
   * holds there. It stops at the first page that fails, as KVM does; the result is that page's
   * (`at`, `op`), or the last page's. RMP, memory and launch digest end as after rmpUpdate() and
   * launchUpdatePage() of each page in turn.
   *
   * The trace: when the VMM launches fresh memory (every page in the reset state; type NORMAL,
   * ZERO or UNMEASURED; good input), one `rmpupdate` and one `launch-update` event stand for all
   * the pages, with `pages` when there are several (trace schema 3; 513 pairs of per-page events
   * and their gate updates were most of an SNP boot's VM setup, issue 11). Otherwise (CPUID,
   * SECRETS, VMSA pages, pages the host changed before) the per-page events, as launchUpdatePage.
   */
  launchRange(gpa: bigint, bytes: bigint, type: LaunchPageType, source?: Uint8Array | SparsePages, vmplPerms: LaunchVmplPerms = NO_LOWER_VMPL_PERMS): HostOpResult & { at: bigint; op: 'rmpupdate' | 'launch-update' } {
    const pages = Number(bytes / PAGE_4K);
    const wholeFreshRange = (type === 'NORMAL' || type === 'ZERO' || type === 'UNMEASURED') && !this.launch.finished
      && pages > 0 && bytes % PAGE_4K === 0n && gpa % PAGE_4K === 0n && gpa >= 0n && gpa + bytes <= this.rmp.coveredBytes
      && (source === undefined || source.byteLength === pages * Number(PAGE_4K))
      && vmplPerms.every((p) => Number.isInteger(p) && p >= 0 && p <= VMPL_PERM_ALL) && this.rmp.allReset(gpa, bytes);
    if (!wholeFreshRange) return this.#launchPageByPage(gpa, bytes, type, source && denseBytes(source), vmplPerms);
    const count: Record<string, TraceValue> = pages > 1 ? { pages } : {};
    const asid = this.asid;
    // rmpUpdate()'s legality for each page: aligned, covered, reset entry -> hv-owned, SUCCESS.
    this.#record('rmpupdate', { spa: gpa, gpa, assigned: true, pageSize: '4k', immutable: true, asid, state: 'hv-owned', result: 'SUCCESS', ...count });
    // #changeOwner of a pre-guest page: DRAM the host wrote there is now the firmware's to encrypt in place.
    for (const page of this.#dramPagesIn(gpa, gpa + bytes)) this.#dramPages.delete(pageNumber(page));
    // launchUpdatePage()'s legality for each page, now pre-guest at its own GPA: immutable, SUCCESS.
    this.#record('launch-update', { gpa, pageType: type, state: 'immutable', result: 'SUCCESS', ...count });
    if (type === 'ZERO') this.machine.memory.fill(gpa, bytes, 0);
    else if (source !== undefined) this.machine.memory.writePages(gpa, source);
    this.launch.extendRange(type, gpa, pages, type === 'NORMAL' ? source ?? this.machine.memory.read(gpa, Number(bytes)) : undefined, vmplPerms);
    // Each page's entry after both: the RMPUPDATE's, then LAUNCH_UPDATE's Immutable cleared, Validated set, VMPL permissions.
    const perms: RmpEntry['vmplPerms'] = [VMPL_PERM_ALL, vmplPerms[0], vmplPerms[1], vmplPerms[2]];
    for (let i = 0; i < pages; i++) {
      const page = gpa + BigInt(i) * PAGE_4K;
      this.rmp.put4k(page, { assigned: true, pageSize: '4k', immutable: false, gpa: page, asid, validated: true, vmsa: false, vmplPerms: perms });
    }
    this.#syncUniformRange(gpa, bytes);
    return { rc: 0, result: 'SUCCESS', state: 'immutable', at: gpa + bytes - PAGE_4K, op: 'launch-update' };
  }

  /** launchRange() one rmpUpdate() and launchUpdatePage() after the other, each with its own events. */
  #launchPageByPage(gpa: bigint, bytes: bigint, type: LaunchPageType, source: Uint8Array | undefined, vmplPerms: LaunchVmplPerms): HostOpResult & { at: bigint; op: 'rmpupdate' | 'launch-update' } {
    if (bytes <= 0n) return { rc: RMP_RC.FAIL_INPUT, result: 'FAIL_INPUT', state: 'misaligned', at: gpa, op: 'rmpupdate' };
    let last: HostOpResult | undefined;
    let page = gpa;
    for (let offset = 0; BigInt(offset) < bytes; offset += Number(PAGE_4K), page += PAGE_4K) {
      const assign = this.rmpUpdate(page, { assigned: true, pageSize: '4k', immutable: true, gpa: page, asid: this.asid });
      if (assign.rc !== 0) return { ...assign, at: page, op: 'rmpupdate' };
      last = this.launchUpdatePage(page, type, source?.subarray(offset, offset + Number(PAGE_4K)), vmplPerms);
      if (last.rc !== 0) return { ...last, at: page, op: 'launch-update' };
    }
    return { ...last!, at: page - PAGE_4K, op: 'launch-update' };
  }

  launchUpdateVmsa(vmsa: Vmsa): void {
    if (this.launch.finished) throw new Error('the VMSA of a launched guest is encrypted');
    this.launch.extend('VMSA', VMSA_MEASURED_GPA, vmsaPage(vmsa));
    applyVmsa(this.machine, vmsa);
    this.#record('launch-vmsa', { cs: BigInt(vmsa.cs.selector), csBase: vmsa.cs.base, rip: vmsa.rip });
  }

  launchFinish(): string {
    const digest = this.launch.finish();
    this.#record('launch-finish', { digest });
    return digest;
  }

  /**
   * SNP_GUEST_REQUEST (guest-request.ts): the hypervisor hands the firmware the guest's message in
   * `request` (a page of its own) and a page `response` for the answer. Returns the firmware status.
   */
  guestRequest(request: Uint8Array, response: Uint8Array): number {
    const ctx = {
      running: this.launch.finished,
      vmpck: (index: number) => vmpckOf(this.#identity, index),
      report: { measurement: this.launch.digest, vmIdentity: this.#identity },
      cpuid: (leaf: number, subleaf: number) => snpCpuid(leaf, subleaf, this.cBit),
    };
    const vmpck = request[GMSG.MSG_VMPCK] ?? 0;
    const status = this.#guestRequests.handle(ctx, request, response);
    this.#record('guest-message', { status, vmpck, count: vmpck < 4 ? this.#guestRequests.count(vmpck) : 0n });
    return status;
  }

  /** The GHCB MSR of the vCPU that runs (or whose exit the VMM is handling). */
  get ghcbMsr(): bigint { return this.#ghcbMsrs[this.machine.vcpuIndex]!; }
  set ghcbMsr(v: bigint) { this.#ghcbMsrs[this.machine.vcpuIndex] = BigInt.asUintN(64, v); }

  /** Whether vCPU `index` exists for the guest (the BSP, or an AP it created). */
  isRunnable(index: number): boolean { return this.#runnable[index] === true; }

  /**
   * VMRUN of vCPU `index` from the VMSA page at `vmsaGpa`, as the hypervisor does after an AP
   * creation request (KVM sev_snp_ap_creation + __sev_snp_update_protected_guest_state: the
   * target's VMCB points at the guest's page, the vCPU becomes runnable). The hardware loads
   * the vCPU from that page only if it passes VMRUN's page checks for the VMSA of an SNP-active
   * guest, APM Vol. 2 §15.36.12 "VMRUN Page Checks": RMP-Covered, Guest-Owned, Reverse-Map,
   * Mutable and VMSA (the bit the guest sets with RMPADJUST at VMPL0: Linux snp_set_vmsa), else
   * VMEXIT_INVALID. Validated is not among them. Then the VMSA's VMPL and SEV_FEATURES must match
   * the guest's (U: these are the ones KVM and Linux rely on). The VMSA is read here, once: this
   * model has no later VMRUN from it.
   */
  runApFromVmsa(index: number, vmsaGpa: bigint): ApStartResult {
    const refuse = (reason: string): ApStartResult => {
      this.trace.record('hw', 'ap-vmrun', { vcpu: index, vmsaGpa, refused: reason });
      return { ok: false, reason };
    };
    if (!Number.isInteger(index) || index < 0 || index >= this.machine.vcpuCount) return refuse(`no vCPU ${index}`);
    // KVM lets a vCPU create itself (kvm_get_vcpu_by_id finds it; the kick makes it reset and load
    // the VMSA at its next entry). Here the running vCPU can start over only on a machine that kept
    // the reset state, one of several vCPUs.
    if (index === this.machine.vcpuIndex && this.machine.vcpuCount === 1) return refuse('the target vCPU is the only one, running');
    if ((vmsaGpa & (PAGE_4K - 1n)) !== 0n || vmsaGpa < 0n || vmsaGpa >= this.memoryBytes) return refuse('VMSA address not a page in guest RAM');
    // VMRUN Page Checks in their order; guest RAM is RMP-covered (Rmp.coveredBytes = memoryBytes).
    const e = this.rmp.lookup(vmsaGpa);
    if (!e.assigned || e.asid !== this.asid) return refuse('VMSA page not assigned to the guest');
    const mappedGpa = e.pageSize === '2m' ? e.gpa + (vmsaGpa & (PAGE_2M - PAGE_4K)) : e.gpa;
    if (mappedGpa !== vmsaGpa) return refuse(`VMSA page's reverse map says GPA 0x${mappedGpa.toString(16)}`);
    if (e.immutable) return refuse('VMSA page immutable');
    if (!e.vmsa) return refuse('RMP VMSA bit clear');
    const vmsa = decodeVmsaPage(this.machine.memory.read(vmsaGpa, Number(PAGE_4K)));
    if (vmsa.vmpl !== this.vmpl) return refuse(`VMSA VMPL ${vmsa.vmpl}, the guest runs at VMPL${this.vmpl}`);
    if (vmsa.sevFeatures !== SNP_GUEST_SEV_FEATURES) return refuse(`SEV_FEATURES 0x${vmsa.sevFeatures.toString(16)} differ from the guest's`);
    const entry = vmsaEntryState(vmsa);
    if ('refused' in entry) return refuse(entry.refused);
    this.#syncDeferredRegions();
    // The target starts over from its reset state (a no-op for an AP that never ran; one created
    // again, after an AP destroy, while it runs or by itself, loses what it had): KVM resets it
    // (kvm_vcpu_reset with init_event, from KVM_REQ_UPDATE_PROTECTED_GUEST_STATE) before it runs
    // it from the new VMSA. The vCPU asking has completed its VMGEXIT (trap-like) already.
    this.machine.resetVcpu(index);
    const running = this.machine.vcpuIndex;
    this.machine.switchVcpu(index);
    let failed: string | undefined;
    try {
      failed = applyGuestVmsa(this.machine, vmsa, entry.mode);
    } finally {
      this.machine.switchVcpu(running);
    }
    if (failed !== undefined) {
      // VMRUN failed after the reset: the target has no state it can run from (an AP that ran
      // before is stopped; KVM's VM ends on KVM_EXIT_FAIL_ENTRY anyway).
      this.#runnable[index] = false;
      this.#syncPauseExits();
      return refuse(failed);
    }
    this.#runnable[index] = true;
    this.#syncPauseExits();
    // VMRUN loads the vCPU from the VMSA page; the VMCB's GHCB field is not in it and stays what
    // the hypervisor left there (KVM's AP creation is an INIT-like reset, svm_vcpu_reset with
    // init_event, which does not set the GHCB MSR: the AP sees the value from its vCPU RESET).
    this.trace.record('hw', 'ap-vmrun', { vcpu: index, vmsaGpa, mode: entry.mode, rip: vmsa.rip });
    return { ok: true };
  }

  /**
   * The hypervisor no longer runs vCPU `index`: what KVM does for an SNP AP destroy request
   * (arch/x86/kvm/svm/sev.c sev_snp_ap_creation, SVM_VMGEXIT_AP_DESTROY: snp_vmsa_gpa =
   * INVALID_PAGE, then kvm_make_request_and_kick(KVM_REQ_UPDATE_PROTECTED_GUEST_STATE); at its next
   * entry the target is reset and sev_snp_init_protected_guest_state sets its VMCB's vmsa_pa to
   * INVALID_PAGE and its mp_state to KVM_MP_STATE_HALTED, and pre_sev_run refuses a VMRUN without a
   * VMSA). It stays out of the schedule until an AP creation runs it from a VMSA again
   * (runApFromVmsa); its register state is whatever that VMSA then holds. When no vCPU is left
   * to run, the run ends at the next step.
   */
  stopVcpu(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.machine.vcpuCount) throw new RangeError(`no vCPU ${index}`);
    const was = this.#runnable[index]!;
    this.#runnable[index] = false;
    this.#syncPauseExits();
    this.trace.record('hw', 'vcpu-stopped', { vcpu: index, wasRunnable: was });
  }

  /**
   * What a host (C=0) read of guest memory returns: the bytes of hypervisor-owned pages, the
   * ciphertext of assigned ones (memory-encryption.ts), the same bytes the guest's own shared
   * reads of those pages see.
   */
  hostRead(gpa: bigint, length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let at = 0; at < length;) {
      const addr = gpa + BigInt(at);
      const page = addr & ~(PAGE_4K - 1n);
      const offset = Number(addr - page);
      const n = Math.min(length - at, Number(PAGE_4K) - offset);
      const bytes = this.rmp.lookup(page).assigned ? this.#ciphertextOf(page) : this.machine.memory.read(page, Number(PAGE_4K));
      out.set(bytes.subarray(offset, offset + n), at);
      at += n;
    }
    return out;
  }

  #ciphertextOf(page: bigint): Readonly<Uint8Array> {
    return this.#encryption.encryptPage(page, this.machine.memory.readInto(page, this.#pageScratch));
  }

  /**
   * The plaintext #ciphertextOf reads (encryptPage keeps a copy of what it remembers): a fresh
   * 4 KiB Buffer per page, too large for Node's pool, was ~2% of a steady SNP fuzz campaign (issue 10).
   */
  readonly #pageScratch = Buffer.alloc(Number(PAGE_4K));

  // ---------------------------------------------------------------- Platform

  saveState(): SnpPlatformState {
    return {
      machine: this.machine.saveState(), rmp: this.rmp.saveState(), npt2m: new Set(this.#npt2m), ghcbMsrs: [...this.#ghcbMsrs],
      runnable: [...this.#runnable], launch: this.launch.saveState(), guestMessageCounts: this.#guestRequests.saveState(), pendingOutcome: this.#pendingOutcome, dramPages: new Set(this.#dramPages),
      ...(this.scheduler ? { scheduler: this.scheduler.saveState() } : {}),
    };
  }

  loadState(state: SnpPlatformState): void {
    this.#resyncGuard.reset();
    this.machine.loadState(state.machine);
    this.rmp.loadState(state.rmp);
    this.#npt2m.clear();
    for (const region of state.npt2m) this.#npt2m.add(region);
    this.#ghcbMsrs = [...state.ghcbMsrs];
    this.#runnable = [...state.runnable];
    this.#syncPauseExits();
    if (this.scheduler && state.scheduler) this.scheduler.loadState(state.scheduler);
    this.launch.loadState(state.launch);
    this.#guestRequests.loadState(state.guestMessageCounts);
    this.#pendingOutcome = state.pendingOutcome;
    this.#dramPages.clear();
    for (const page of state.dramPages) this.#dramPages.add(page);
  }

  step(): PlatformStep<SnpVmExit> {
    if (this.#pendingOutcome) {
      const outcome = this.#pendingOutcome;
      this.#pendingOutcome = undefined;
      return { kind: 'outcome', outcome };
    }
    // No vCPU has a VMSA the hypervisor runs (every one stopped, stopVcpu): KVM leaves them all
    // halted (KVM_MP_STATE_HALTED, vmsa_pa INVALID_PAGE) and the guest never runs again.
    if (!this.#runnable.includes(true)) return { kind: 'outcome', outcome: { outcome: 'done', reason: 'no vCPU left to run: the hypervisor stopped every one (SNP AP destroy)' } };
    const scheduler = this.scheduler;
    scheduler?.switchPoint('exit');
    return enterVm(this.machine, scheduler, this.#recordHw, this.#handleExitForVmm);
  }

  readonly #handleExitForVmm = (exit: VmExit): HardwareHandled<SnpVmExit> => {
    let step: HwStep;
    try {
      step = this.handleExit(exit);
    } catch (e) {
      // The model must turn guest input into architecture; anything else is our bug, reported.
      if (e instanceof InjectionError || e instanceof RangeError) return { kind: 'outcome', outcome: { outcome: 'fault', reason: `hardware model: ${e.message}` } };
      throw e;
    }
    if (step.kind === 'resume') return undefined;
    if (step.kind === 'outcome') return step;
    return { kind: 'exit', exit: step.exit };
  };


  pageState(gpa: bigint): PageState {
    const page = gpa & ~(PAGE_4K - 1n);
    const e = this.rmp.lookup(page);
    const guest = e.assigned && e.asid === this.asid;
    const owner = !e.assigned ? 'hypervisor' : e.asid === 0 ? 'firmware' : e.asid === this.asid ? 'guest' : `asid-${e.asid}`;
    return {
      gpa: page, visibility: e.assigned ? 'private' : 'shared', accepted: guest && e.validated, pending: guest && !e.validated,
      pageSize: e.pageSize, raw: e.assigned ? `${owner}${e.validated ? '-validated' : ''}` : owner,
    };
  }

  /**
   * An event the VMM injects (SnpVmmHandle.inject); a failed delivery ends the run at the next
   * step. EVENTINJ events "are treated in every way as though they had occurred normally in the
   * guest" (AMD APM Vol. 2 §15.20), so a fault-class exception pushes RF = 1 and an interrupt RF
   * as it is (pushesResumeFlag). The VMM cannot set RF itself: RFLAGS is in the encrypted VMSA.
   */
  injectFromHost(vector: number, errorCode?: bigint): void {
    this.#syncDeferredRegions();
    const step = this.inject(vector, errorCode, undefined, 'injected by the VMM', pushesResumeFlag(vector));
    if (step.kind === 'outcome') this.#pendingOutcome = step.outcome;
  }

  // ---------------------------------------------------------------- the page gate

  /**
   * What the gate allows for one page: private readwrite iff a write would pass every check;
   * shared reads of an assigned page see its ciphertext (memory-encryption.ts).
   */
  gateFor(gpa: bigint): PageGates {
    const nptSize = this.nptPageSize(gpa);
    const sharedWrite = failedCheck(this.rmp, { gpa, space: 'shared', access: 'write', pageWalk: false, nptSize }, this.#ctx) === undefined;
    const privateGate = this.#privateGate(gpa, nptSize);
    return {
      private: privateGate.access,
      fetch: privateGate.fetch,
      shared: sharedWrite ? 'readwrite' : this.rmp.lookup(gpa).assigned ? 'ciphertext' : 'read',
    };
  }

  /**
   * Private readwrite iff a write would pass every check, read iff a read would; fetchable at the
   * CPLs whose fetch would (the VMPL's Execute-Supervisor at CPL 0-2, Execute-User at CPL 3:
   * access-check.ts), so a fetch the VMPL may not make exits and gets its #VMEXIT(NPF) there.
   */
  #privateGate(gpa: bigint, nptSize: RmpPageSize): PrivateGate {
    const rmp = this.rmp, ctx = this.#ctx;
    // The check each access fails, undefined for one that passes.
    const write = failedCheck(rmp, { gpa, space: 'private', access: 'write', pageWalk: false, nptSize }, ctx);
    const read = write === undefined ? undefined : failedCheck(rmp, { gpa, space: 'private', access: 'read', pageWalk: false, nptSize }, ctx);
    const access: GateAccess = write === undefined ? 'readwrite' : read === undefined ? 'read' : 'none';
    // The checks before the VMPL permission's do not look at the kind of access (access-check.ts):
    // a read they refuse, they refuse a fetch too.
    if (read !== undefined && read !== 'vmpl-permission') return { access, fetch: 'none' };
    const supervisor = failedCheck(rmp, { gpa, space: 'private', access: 'fetch', pageWalk: false, nptSize, cpl: 0 }, ctx) === undefined;
    const user = failedCheck(rmp, { gpa, space: 'private', access: 'fetch', pageWalk: false, nptSize, cpl: 3 }, ctx) === undefined;
    return { access, fetch: supervisor ? (user ? 'any' : 'supervisor') : user ? 'user' : 'none' };
  }

  /** Sets both spaces of the gate for [base, base+length) to what the RMP allows at `base`. */
  #applyGate(base: bigint, length: bigint): void {
    const g = this.gateFor(base);
    this.machine.gate.set('private', base, length, g.private, g.fetch);
    this.machine.gate.set('shared', base, length, g.shared);
  }

  /**
   * #syncPage of every page of [base, base+length) after the same change to each (4 KiB entries
   * alike but for their own GPA, none inside a 2 MiB entry): without 2 MiB nested mappings, which
   * make a page's gate depend on its region, they all get the first page's gate, in one update.
   */
  #syncUniformRange(base: bigint, length: bigint): void {
    if (this.#npt2m.size === 0) {
      this.#applyGate(base, length);
      return;
    }
    for (let page = base; page < base + length; page += PAGE_4K) this.#syncPage(page);
  }

  /** Re-derives the gate for one 4 KiB page after a 4 KiB RMP change (this opens it for shared use too). */
  #syncPage(gpa: bigint): void {
    const page = gpa & ~(PAGE_4K - 1n);
    if (page >= this.memoryBytes) return;
    if (this.rmp.isLarge(page) || this.nptPageSize(page) === '2m') this.#syncRegion(regionOf(page));
    else this.#applyGate(page, PAGE_4K);
  }

  /**
   * Runs `fn`, a series of host operations between two guest runs, and derives the gate of each
   * 2 MiB region they resynchronised once, when it ends: neighbouring regions that end up with the
   * same gate in one update. The gate is only the emulator's enforcement of the RMP and nested
   * page tables, and nothing reads it until the guest runs again (host accesses are checked
   * against the RMP), so the result is the same as resynchronising after every operation. A PSC
   * of many 2 MiB entries resynchronised each region twice (RMPUPDATE, then the 2 MiB NPT
   * mapping), two gate updates each time, most of an eager SNP boot's host work (issue 11).
   */
  batchGateSync<T>(fn: () => T): T {
    if (this.#deferredRegions) return fn();
    // One set for every batch (the VMM runs each exit's answer in one): emptied when it ends.
    const regions = this.#batchRegions;
    this.#deferredRegions = regions;
    try {
      return fn();
    } finally {
      this.#deferredRegions = undefined;
      // Most exits change no region (a console byte, a refused NPF): nothing to sort or derive.
      if (regions.size > 0) {
        try {
          this.#syncRegions(regions);
        } finally {
          regions.clear();
        }
      }
    }
  }

  /**
   * Inside batchGateSync, before something reads guest memory through the gate (an event the
   * host injects pushes its frame through the guest's page tables and the gate, as the CPU
   * would): the regions deferred so far get their gate now, so it sees what it would have seen
   * without the batch. The batch goes on.
   */
  #syncDeferredRegions(): void {
    const regions = this.#deferredRegions;
    if (regions === undefined || regions.size === 0) return;
    this.#deferredRegions = undefined;
    try {
      this.#syncRegions(regions);
    } finally {
      regions.clear();
      this.#deferredRegions = regions;
    }
  }

  /** #syncRegion of each region, in address order; whole-region gates of neighbours in one update each. */
  #syncRegions(keys: ReadonlySet<bigint>): void {
    const sorted = [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    /** Neighbouring 2 MiB entries with one gate; `entry` and `nptSize` are its last region's. */
    let run: { first: bigint; end: bigint; gate: PageGates; entry: Readonly<RmpEntry>; nptSize: RmpPageSize } | undefined;
    const flush = () => {
      if (!run) return;
      const base = run.first << 21n;
      const end = (run.end << 21n) > this.memoryBytes ? this.memoryBytes : run.end << 21n;
      this.machine.gate.set('private', base, end - base, run.gate.private, run.gate.fetch);
      this.machine.gate.set('shared', base, end - base, run.gate.shared);
      run = undefined;
    };
    for (const key of sorted) {
      const base = key << 21n;
      if (base >= this.memoryBytes) break;
      // A 2 MiB RMP entry gives its whole region one gate (#syncRegion's first case).
      if (!this.rmp.isLarge(base)) {
        flush();
        this.#syncRegion(key);
        continue;
      }
      // A 2 MiB entry that gives the access checks the same inputs as its left neighbour's, under
      // the same nested page size, gets the same gate without them (as pages do in
      // #deriveRegionGate): a PSC of many 2 MiB pages converts runs of such regions, and each
      // went through gateFor's checkAccess calls (issue 11).
      const entry = this.rmp.lookup(base);
      const nptSize = this.nptPageSize(base);
      const neighbour = run !== undefined && key === run.end ? run : undefined;
      if (neighbour && nptSize === neighbour.nptSize && sameAccessInputs(neighbour.entry, entry, PAGES_PER_2M)) {
        neighbour.end = key + 1n;
        neighbour.entry = entry;
        continue;
      }
      const gate = this.gateFor(base);
      if (neighbour && gate.private === neighbour.gate.private && gate.fetch === neighbour.gate.fetch && gate.shared === neighbour.gate.shared) {
        neighbour.end = key + 1n;
        neighbour.entry = entry;
        neighbour.nptSize = nptSize;
        continue;
      }
      flush();
      run = { first: key, end: key + 1n, gate, entry, nptSize };
    }
    flush();
  }

  #syncRegion(key: bigint): void {
    if (this.#deferredRegions) {
      this.#deferredRegions.add(key);
      return;
    }
    const base = key << 21n;
    if (base >= this.memoryBytes) return;
    const end = base + PAGE_2M > this.memoryBytes ? this.memoryBytes : base + PAGE_2M;
    if (this.rmp.isLarge(base)) {
      this.#applyGate(base, end - base);
      return;
    }
    const gate = this.machine.gate;
    for (const u of this.#regionGateUpdates(key, base, end)) gate.set(u.space, base + u.offset, u.length, u.access, u.fetch);
  }

  /**
   * The gate updates that derive the gate of the region `key` (4 KiB RMP entries, or none) from
   * the RMP and the nested page size, in the order #syncRegion makes them. They depend on nothing
   * else (access-check.ts looks at the page's own region only), so they are remembered by the
   * region's RMP version (Rmp.regionVersion) and nested page size: a fuzz execution that answers
   * the same NPF again and again re-derives an unchanged region on every exit (the PSMASH or NPT
   * split of a no-progress loop), and walking its 512 entries was ~10% of such executions (issue 10).
   * The same updates are made, not skipped: a gate update also drops the pages' ciphertext shadows
   * and may flush the TLB, which the guest's next shared read or the budget can see.
   */
  #regionGateUpdates(key: bigint, base: bigint, end: bigint): readonly RegionGateUpdate[] {
    const npt2m = this.nptPageSize(base) === '2m';
    const version = this.rmp.regionVersion(Number(key));
    // Regions that store nothing share version 0: they are told apart by their index (the last one may be short).
    const memoKey = version !== 0 ? version * 2 + (npt2m ? 1 : 0) : -(Number(key) * 2 + (npt2m ? 1 : 0)) - 1;
    const known = this.#regionGateMemo.get(memoKey);
    if (known !== undefined) return known;
    const updates = this.#deriveRegionGate(key, base, end, npt2m);
    if (this.#regionGateMemo.size >= REGION_GATE_MEMO_LIMIT) this.#regionGateMemo.clear();
    this.#regionGateMemo.set(memoKey, updates);
    return updates;
  }

  #deriveRegionGate(key: bigint, base: bigint, end: bigint, npt2m: boolean): RegionGateUpdate[] {
    const updates: RegionGateUpdate[] = [];
    // Hypervisor-owned pages: no private access; shared writes unless a 2 MiB nested
    // translation covers assigned pages too (it needs the whole region hypervisor-owned).
    const hvOwnedGate: PageGates = { private: 'none', fetch: 'none', shared: npt2m && !this.rmp.regionHypervisorOwned(base) ? 'read' : 'readwrite' };
    // Each space of the region as runs of neighbouring pages that get the same gate, each set
    // once: one gate update per run instead of two native calls per page (a PSMASHed region has
    // 512 entries, and a fuzz execution that converts one re-derived it page by page, ~2 ms).
    // Runs that do not overlap: closing the whole region first and then opening its runs again
    // made every resynchronisation flush the vCPU's TLB, even when no page's gate changed.
    let privateStart = 0, privateAccess = hvOwnedGate.private, privateFetch = hvOwnedGate.fetch;
    let sharedStart = 0, sharedAccess = hvOwnedGate.shared;
    /** The update for the run of `space` from page `start` up to page `until`, if it holds any. */
    const closeRun = (space: Space, start: number, until: number, access: GateAccess, fetch?: GateFetch): void => {
      if (until > start) updates.push({ space, offset: BigInt(start) * PAGE_4K, length: BigInt(until - start) * PAGE_4K, access, fetch });
    };
    /** The pages from `index` on get `g` (so far): closes the run of each space whose gate changes there. */
    const continueWith = (index: number, g: PageGates): void => {
      if (g.private !== privateAccess || g.fetch !== privateFetch) {
        closeRun('private', privateStart, index, privateAccess, privateFetch);
        privateStart = index;
        privateAccess = g.private;
        privateFetch = g.fetch;
      }
      if (g.shared !== sharedAccess) {
        closeRun('shared', sharedStart, index, sharedAccess);
        sharedStart = index;
        sharedAccess = g.shared;
      }
    };
    // A page whose entry gives the access checks the same inputs as its left neighbour's gets
    // the same gate without them: after a PSMASH all 512 entries do, and three checkAccess calls
    // per page made one region resynchronisation ~10 ms of a cold boot (issue 11). Its runs then
    // go on as they are.
    const endIndex = Number((end - base) / PAGE_4K);
    let next = 0;  // the first page after the last entry visited
    let previousIndex = -1;
    let previousEntry: Readonly<RmpEntry> | undefined;
    let previousGate: PageGates | undefined;
    const entries = this.rmp.smallEntries(Number(key)) ?? [];
    for (let index = 0; index < endIndex && index < entries.length; index++) {
      const entry = entries[index];
      if (entry === undefined) continue;
      const gap = index > next;
      if (gap) continueWith(next, hvOwnedGate);  // pages without an entry of their own
      if (previousEntry !== undefined && sameAccessInputs(previousEntry, entry, index - previousIndex)) {
        if (gap) continueWith(index, previousGate!);
      } else {
        previousGate = this.gateFor(base + BigInt(index) * PAGE_4K);
        continueWith(index, previousGate);
      }
      previousIndex = index;
      previousEntry = entry;
      next = index + 1;
    }
    if (next < endIndex) continueWith(next, hvOwnedGate);
    closeRun('private', privateStart, endIndex, privateAccess, privateFetch);
    closeRun('shared', sharedStart, endIndex, sharedAccess);
    return updates;
  }

  // ---------------------------------------------------------------- guest exits

  /** Applies the architecture to one vCPU exit. Never throws for bad guest input. */
  handleExit(exit: VmExit): HwStep {
    const vcpu = this.machine.vcpu;
    this.#resyncGuard.nextExit();
    switch (exit.kind) {
      case 'hlt': return { kind: 'vmexit', exit: { kind: 'hlt', rip: exit.rip, interruptsBlocked: (vcpu.regs.rflags & RFLAGS_IF) === 0n } };
      case 'pvalidate': return this.#pvalidate(exit);
      case 'rmpadjust': return this.#rmpadjust(exit);
      case 'vmgexit': {
        // VMGEXIT is an automatic exit: the guest resumes after it (the host cannot touch RIP).
        vcpu.complete(exit);
        this.#record('vmgexit', { rip: exit.rip, ghcbMsr: this.ghcbMsr });
        return { kind: 'vmexit', exit: { kind: 'vmgexit', rip: exit.rip, ghcbMsr: this.ghcbMsr } };
      }
      case 'rdmsr': {
        let value: bigint;
        if (exit.msr === MSR_GHCB) value = this.ghcbMsr;
        else if (exit.msr === MSR_SEV_STATUS) value = SNP_GUEST_SEV_STATUS;
        // EFER is guest state in the VMSA: KVM passes RDMSR/WRMSR of it through for SEV-ES
        // guests (arch/x86/kvm/svm/sev.c, sev_es_init_vmcb: set_msr_interception(MSR_EFER, 1, 1);
        // writes only trap to the host afterwards), so no #VC.
        // FS/GS bases likewise (PASSTHROUGH_MSRS).
        // EFER.SVME is set in every running SEV-ES/SNP guest (VMRUN refuses a VMSA without it),
        // and Linux copies what it reads into its AP trampoline (arch/x86/realmode/init.c,
        // setup_real_mode: trampoline_header->efer). Unicorn's CPU has no SVM and drops the bit.
        else if (exit.msr === MSR_EFER) value = vcpu.readMsr(exit.msr) | EFER_SVME;
        else if (PASSTHROUGH_MSRS.has(exit.msr)) value = vcpu.readMsr(exit.msr);
        // Other MSRs are intercepted and raise #VC (SVM_EXIT_MSR) in an SEV-ES/SNP guest.
        else return this.injectVc(BigInt(SVM_EXIT.MSR), undefined, `rdmsr 0x${exit.msr.toString(16)}`);
        vcpu.regs.rax = value & 0xffffffffn;
        vcpu.regs.rdx = value >> 32n;
        this.#record('rdmsr', { msr: exit.msr, value });
        vcpu.complete(exit);
        return RESUME;
      }
      case 'wrmsr': {
        if (exit.msr === MSR_GHCB) {
          this.ghcbMsr = exit.value;
          this.#record('wrmsr', { msr: exit.msr, value: exit.value });
          vcpu.complete(exit);
          return RESUME;
        }
        // The write lands in the VMSA and traps to the host afterwards (SVM_EXIT_EFER_WRITE_TRAP;
        // KVM sev_es_init_vmcb sets TRAP_EFER_WRITE). Without SVME the VMRUN that resumes the
        // guest fails its consistency checks (VMEXIT_INVALID; KVM reports KVM_EXIT_FAIL_ENTRY).
        if (exit.msr === MSR_EFER && (exit.value & EFER_SVME) === 0n) {
          this.#record('wrmsr', { msr: exit.msr, value: exit.value });
          return { kind: 'outcome', outcome: { outcome: 'terminated', reason: 'the guest cleared EFER.SVME: VMRUN refuses the VMSA (VMEXIT_INVALID)' } };
        }
        // A reserved memory type in the PAT is the CPU's #GP(0) (APM Vol. 2 §7.8.1), which the
        // emulator (QEMU's helper_wrmsr stores any value) does not raise itself.
        if (exit.msr === MSR_PAT && !patValid(exit.value)) return this.inject(GP_VECTOR, 0n, undefined, 'wrmsr PAT with a reserved memory type');
        if (PASSTHROUGH_MSRS.has(exit.msr)) {
          vcpu.writeMsr(exit.msr, exit.value);
          this.#record('wrmsr', { msr: exit.msr, value: exit.value });
          vcpu.complete(exit);
          return RESUME;
        }
        if (exit.msr === MSR_SEV_STATUS) return this.inject(GP_VECTOR, 0n, undefined, 'wrmsr SEV_STATUS (read-only)');
        return this.injectVc(BigInt(SVM_EXIT.MSR), undefined, `wrmsr 0x${exit.msr.toString(16)}`);
      }
      // CPUID is intercepted in an SEV-ES/SNP guest: #VC with SW_EXITCODE 0x72, RIP at the
      // CPUID; the guest answers from its CPUID page or asks the VMM through the GHCB (GHCB spec
      // §2.3.1 / §4.1.1; Linux do_vc_no_ghcb, vc_handle_cpuid).
      case 'cpuid': return this.injectVc(BigInt(SVM_EXIT.CPUID), undefined, `cpuid 0x${exit.leaf.toString(16)}`);
      // Port I/O is intercepted: #VC with SW_EXITCODE IOIO; the guest then uses the GHCB.
      case 'io': return this.injectVc(BigInt(SVM_EXIT.IOIO), undefined, `${exit.direction} port 0x${exit.port.toString(16)}`);
      case 'gate-fault': return this.#gateFault(exit);
      // A fault pushes RF = 1; INT n, INT3 and INTO (after the instruction) push RF as it is.
      case 'exception': return this.inject(exit.vector, exit.errorCode, exit.cr2, 'guest exception', !exit.afterInstruction);
      case 'svm': return this.#svmInstruction(exit);
      // AMD CPUs have no VMX: VMCALL (0F 01 C1) is an invalid opcode there, as TDCALL is.
      case 'invalid-opcode':
      case 'tdcall':
      case 'vmcall':
        return this.inject(UD_VECTOR, undefined, undefined, `${exit.kind} on an SNP CPU`);
      // RDRAND/RDSEED and RDTSC run on the CPU (SEV-SNP leaves them unintercepted, KVM does not
      // intercept RDTSC); PAUSE exits only on machines with several vCPUs (a scheduler hint): they just run.
      case 'random':
      case 'rdtsc':
      case 'pause':
        return runsOnCpu(this.machine, this.trace, exit);
      case 'system-call': return this.#fastSystemCall(exit);
      case 'cache-or-wait': return this.#cacheOrWait(exit);
      case 'rdpmc': return this.#rdpmc();
      case 'mov-dr': return this.#movDr(exit);
      // XSETBV is not intercepted (KVM sev.c sev_es_init_vmcb: "Can't intercept XSETBV, HV can't
      // modify XCR0 directly"): it runs on the CPU, and this machine leaves Machine.xsetbvAllowed at
      // all ones. It exits only for a value whose bit combination the CPU refuses and the emulator
      // would take (native/src/xcr0.h): the CPU's #GP(0), or its #UD first while CR4.OSXSAVE is
      // clear (SDM Vol. 2D XSETBV, Protected Mode Exceptions).
      case 'xsetbv':
        if ((this.machine.vcpu.readSpecial('cr4') & CR4_OSXSAVE) === 0n) return this.inject(UD_VECTOR, undefined, undefined, 'xsetbv with CR4.OSXSAVE clear');
        return this.inject(GP_VECTOR, 0n, undefined, 'xsetbv of an XCR0 the CPU refuses');
      case 'budget': return { kind: 'outcome', outcome: { outcome: 'budget', reason: `instruction budget exhausted at rip 0x${exit.rip.toString(16)}` } };
      case 'exec-watch': return { kind: 'outcome', outcome: { outcome: 'handover', reason: `execution reached RIP 0x${exit.rip.toString(16)} (GPA 0x${exit.gpa.toString(16)})` } };
      case 'fatal': return { kind: 'outcome', outcome: { outcome: 'fault', reason: exit.reason } };
    }
  }

  /**
   * INVD, WBINVD, MONITOR and MWAIT are intercepted (KVM svm.c init_vmcb: INTERCEPT_INVD,
   * INTERCEPT_WBINVD, and INTERCEPT_MONITOR/MWAIT unless MWAIT runs in the guest, which it does not
   * by default): an intercepted non-automatic exit of an SEV-ES/SNP guest is #VC with the SVM exit
   * code (SVM_EXIT_INVD 0x76, WBINVD 0x89, MONITOR 0x8a, MWAIT 0x8b), RIP at the instruction (APM
   * Vol. 2 §15.35.5). WBNOINVD is taken as a WBINVD (the APM's WBINVD intercept covers it; not
   * checked against hardware here). The CPU's own checks come first (src/cpu/cache-or-wait.ts).
   */
  #cacheOrWait(exit: CacheOrWaitExit): HwStep {
    const fault = cacheOrWaitFault(this.machine.vcpu, exit);
    if (fault === 'ud') return this.inject(UD_VECTOR, undefined, undefined, `${exit.instruction} at CPL > 0`);
    if (fault === 'gp') return this.inject(GP_VECTOR, 0n, undefined, `${exit.instruction} at CPL > 0`);
    return this.injectVc(BigInt(CACHE_OR_WAIT_EXIT_CODE[exit.instruction]), undefined, exit.instruction);
  }

  /**
   * RDPMC is intercepted (KVM svm.c init_vmcb: INTERCEPT_RDPMC): #VC with SVM_EXIT_RDPMC (0x6f),
   * RIP at the instruction (APM Vol. 2 §15.35.5). The CPU's own checks come first (src/cpu/rdpmc.ts).
   */
  #rdpmc(): HwStep {
    if (rdpmcFault(this.machine.vcpu) === 'gp') return this.inject(GP_VECTOR, 0n, undefined, 'rdpmc at CPL > 0 with CR4.PCE clear');
    return this.injectVc(BigInt(SVM_EXIT.RDPMC), undefined, 'rdpmc');
  }

  /**
   * MOV to or from DR7, intercepted (the constructor's DR7_INTERCEPTS; no other exits): #VC with
   * SVM_EXIT_READ_DR0 + n (DR7: 0x27) or SVM_EXIT_WRITE_DR0 + n (DR7: 0x37), RIP at the
   * instruction (APM Vol. 2 §15.35.5). The CPU's own checks come first (src/cpu/mov-dr.ts). The
   * guest answers a read from its own copy and forwards a write (Linux vc_handle_dr7_read/_write).
   */
  #movDr(exit: MovDrExit): HwStep {
    const fault = movDrFault(this.machine.vcpu, exit);
    if (fault === 'gp') return this.inject(GP_VECTOR, 0n, undefined, `mov ${exit.write ? 'to' : 'from'} dr${exit.dr} at CPL > 0`);
    if (fault === 'ud') return this.inject(UD_VECTOR, undefined, undefined, `mov ${exit.write ? 'to' : 'from'} dr${exit.dr} with CR4.DE set`);
    const code = (exit.write ? SVM_EXIT.WRITE_DR0 : SVM_EXIT.READ_DR0) + exit.dr;
    return this.injectVc(BigInt(code), undefined, `mov ${exit.write ? 'to' : 'from'} dr${exit.dr}`);
  }

  /** SYSCALL and SYSENTER are not intercepted: the CPU runs them (src/cpu/fast-system-call.ts). */
  #fastSystemCall(exit: SystemCallExit): HwStep {
    const done = executeFastSystemCall(this.machine.vcpu, exit, 'amd');
    switch (done.kind) {
      case 'done': return RESUME;
      case 'ud': return this.inject(UD_VECTOR, undefined, undefined, exit.instruction);
      case 'gp': return this.inject(GP_VECTOR, 0n, undefined, exit.instruction);
      case 'unmodelled': return { kind: 'outcome', outcome: { outcome: 'fault', reason: done.reason } };
    }
  }

  /** The guest's own VMRUN .. INVLPGA (svm-insn.ts): #UD, #GP(0) or the intercept's #VC, RIP at the instruction. */
  #svmInstruction(exit: Extract<VmExit, { kind: 'svm' }>): HwStep {
    const vcpu = this.machine.vcpu;
    const out = svmInstruction(exit.instruction, { protectedMode: vcpu.codeSegment().protectedMode, cpl: vcpu.cpl() });
    switch (out.kind) {
      case 'ud': return this.inject(UD_VECTOR, undefined, undefined, `${exit.instruction} outside protected mode`);
      case 'gp': return this.inject(GP_VECTOR, 0n, undefined, `${exit.instruction} at CPL > 0`);
      case 'vc': return this.injectVc(BigInt(out.exitCode), undefined, exit.instruction);
    }
  }

  /** Where PVALIDATE/RMPADJUST read RAX: translated like a data access, at the size's alignment. */
  #translateRmpInsnTarget(gva: bigint, size: RmpPageSize) {
    return this.machine.vcpu.translate(size === '2m' ? gva : gva & PAGE_4K_BASE, 'read');
  }

  #pvalidate(exit: Extract<VmExit, { kind: 'pvalidate' }>): HwStep {
    const vcpu = this.machine.vcpu;
    const { gva, size, validate } = decodePvalidateRegs(vcpu.regs.rax, vcpu.regs.rcx, vcpu.regs.rdx, exit.codeBits);
    const out = pvalidate(this.rmp, this.#ctx, {
      gva, size, validate, cpl: exit.cs & 3, translation: this.#translateRmpInsnTarget(gva, size), nptSizeAt: this.#nptSizeAt,
    });
    const rip = exit.rip;
    if (out.kind === 'npf') {
      // The refused PVALIDATE of a no-progress loop, on every exit: its event as one literal
      // (the keys in #rmpInsnNotDone's order; a spread of a shared prefix was most of this exit's own work).
      this.#record('pvalidate', { rip, gva, size, validate, gpa: out.gpa, npf: out.reason });
      return this.#rmpInsnNpf(rip, 'pvalidate', gva, out);
    }
    if (out.kind !== 'result') return this.#rmpInsnNotDone(exit, 'pvalidate', { rip, gva, size, validate }, out);
    vcpu.regs.rax = BigInt(out.rc);
    vcpu.regs.rflags = pvalidateFlags(vcpu.regs.rflags, out.rc, out.unchanged);
    // One literal with the keys in the trace's order (spreading a shared prefix changed shapes per exit).
    this.#record('pvalidate', { rip, gva, size, validate, gpa: out.gpa ?? null, rc: out.rc, cf: out.rc === 0 && out.unchanged });
    if (out.gpa !== undefined && !out.unchanged) this.#syncRmpInsnTarget(out.gpa, size);
    vcpu.complete(exit);
    return RESUME;
  }

  #rmpadjust(exit: Extract<VmExit, { kind: 'rmpadjust' }>): HwStep {
    const vcpu = this.machine.vcpu;
    // A 64-bit-mode-only instruction: LLVM X86InstrSNP.td gives RMPADJUST (unlike PVALIDATE) no
    // 32-bit form (Requires<[In64BitMode]>), and AMD's EDK2 MpLib says "RMPADJUST is not supported
    // in 32-bit mode". Elsewhere its opcode is invalid: #UD (U: the APM Vol. 3 page was not read).
    if (exit.codeBits !== 64) return this.inject(UD_VECTOR, undefined, undefined, `RMPADJUST in ${exit.codeBits}-bit code`);
    const regs = decodeRmpadjustRegs(vcpu.regs.rax, vcpu.regs.rcx, vcpu.regs.rdx);
    const out = rmpadjust(this.rmp, this.#ctx, {
      ...regs, cpl: exit.cs & 3, translation: this.#translateRmpInsnTarget(regs.gva, regs.size), nptSizeAt: this.#nptSizeAt,
    });
    const base = { rip: exit.rip, gva: regs.gva, size: regs.size, targetVmpl: regs.targetVmpl, perms: regs.perms, vmsa: regs.vmsa };
    if (out.kind !== 'result') return this.#rmpInsnNotDone(exit, 'rmpadjust', base, out);
    // EAX = rc; the status flags follow EAX as for PVALIDATE (U), CF = 0.
    vcpu.regs.rax = BigInt(out.rc);
    vcpu.regs.rflags = pvalidateFlags(vcpu.regs.rflags, out.rc, false);
    this.#record('rmpadjust', { ...base, gpa: out.gpa ?? null, rc: out.rc });
    if (out.gpa !== undefined) this.#syncRmpInsnTarget(out.gpa, regs.size);
    vcpu.complete(exit);
    return RESUME;
  }

  /**
   * After PVALIDATE or RMPADJUST changed the entry at `gpa`. They change Validated, VMPL
   * permissions and the VMSA bit, none of which a shared access checks (access-check.ts: shared
   * writes look at ownership and the nested page size only), so where the entry covers exactly
   * the instruction's page only the private gate is set: one host call per exit fewer (issue 11).
   */
  #syncRmpInsnTarget(gpa: bigint, size: RmpPageSize): void {
    const page = gpa & (size === '2m' ? PAGE_2M_BASE : PAGE_4K_BASE);
    if (page >= this.memoryBytes) return;
    const large = this.rmp.isLarge(page);
    const nptSize = this.nptPageSize(page);
    if (size === '2m' ? large : !large && nptSize === '4k') {
      const length = size === '2m' && page + PAGE_2M > this.memoryBytes ? this.memoryBytes - page : size === '2m' ? PAGE_2M : PAGE_4K;
      const g = this.#privateGateOfEntry(page, nptSize);
      this.machine.gate.set('private', page, length, g.access, g.fetch);
    } else if (size === '2m') {
      this.#syncRegion(regionOf(gpa));
    } else {
      this.#syncPage(gpa);
    }
  }

  /**
   * #privateGate of `page`, where its RMP entry starts (a 4 KiB entry, or a 2 MiB one at its base,
   * so the reverse map holds iff the entry's GPA is `page`): the answer for the page asked last
   * again when this entry gives the access checks the same inputs (sameAccessInputs, the same
   * nested page size; the ASID, VMPL and RMP-covered size do not change). An eager acceptance
   * validates page after page alike: #privateGate's three or four checkAccess calls after each
   * PVALIDATE, and compiling them, were ~4% of the instructions of an eager 4G boot (issue 11).
   */
  #privateGateOfEntry(page: bigint, nptSize: RmpPageSize): PrivateGate {
    const entry = this.rmp.lookup(page);
    const last = this.#lastEntryGate;
    // Pages below RAM's end (at most 64 TiB): exact as numbers. The last page is kept as one
    // (Number(bigint) is a runtime call).
    const pageNumber = u64ToNumber(page);
    if (last !== undefined && last.nptSize === nptSize
      && sameAccessInputs(last.entry, entry, (pageNumber - last.pageNumber) / 0x1000)) return last.gate;
    const gate = this.#privateGate(page, nptSize);
    this.#lastEntryGate = { pageNumber, entry, nptSize, gate };
    return gate;
  }

  /** An RMP instruction that did not complete: NPF to the VMM, a guest exception, or a retry. */
  #rmpInsnNotDone(exit: { rip: bigint }, insn: 'pvalidate' | 'rmpadjust', base: Record<string, unknown> & { gva: bigint },
    out: Exclude<RmpInsnEarlyOutcome, { kind: 'result' }>): HwStep {
    switch (out.kind) {
      case 'npf':
        this.#record(insn, { ...base, gpa: out.gpa, npf: out.reason });
        return this.#rmpInsnNpf(exit.rip, insn, base.gva, out);
      case 'fault':
        this.#record(insn, { ...base, fault: out.vector, reason: out.reason });
        return this.inject(out.vector, out.errorCode, out.cr2, out.reason);
      case 'retry':
        // The instruction's walk read a page-table page the gate refused and the checks allow.
        this.#resyncFor({ rip: exit.rip, gpa: out.gpa, access: 'read', space: 'private' });
        return RESUME;
    }
  }

  /** #VMEXIT(NPF) of an RMP instruction (after its own event). */
  #rmpInsnNpf(rip: bigint, insn: 'pvalidate' | 'rmpadjust', gva: bigint, out: Extract<RmpInsnEarlyOutcome, { kind: 'npf' }>): HwStep {
    this.#record('npf', { rip, gpa: out.gpa, errorCode: out.errorCode, reason: out.reason, cause: insn });
    return { kind: 'vmexit', exit: { kind: 'npf', rip, gpa: out.gpa, gva, access: 'write', errorCode: out.errorCode, reason: out.reason } };
  }

  /** Refused accesses resynchronised for: a gate fault the checks allow, or an RMP instruction's walk. */
  readonly #resyncGuard = new GateResyncGuard('the RMP checks');

  /**
   * Resynchronises the gate of the region of `refused`, which the checks allow; the same refusal
   * straight after its own resync is a hardware-model error (gate-resync.ts). Inside
   * batchGateSync the resync waits for the batch's end: no verdict then.
   */
  #resyncFor(refused: RefusedAccess): void {
    this.#resyncGuard.resyncing(this.machine.vcpuIndex, refused, this.#deferredRegions !== undefined);
    this.#syncRegion(regionOf(refused.gpa));
  }

  #gateFault(exit: GateFaultExit): HwStep {
    if (exit.outsideRam) {
      return { kind: 'outcome', outcome: { outcome: 'fault', reason: `access to 0x${exit.gpa.toString(16)} outside guest RAM at rip 0x${exit.rip.toString(16)}` } };
    }
    if (exit.ciphertext) {
      // A shared read of an assigned page: it reads what DRAM holds, the page's ciphertext.
      const page = exit.gpa & ~(PAGE_4K - 1n);
      this.machine.gate.writeShadow(page, this.#ciphertextOf(page));
      this.#record('shared-read-ciphertext', { rip: exit.rip, gpa: page });
      return RESUME;
    }
    const req: AccessRequest = { gpa: exit.gpa, space: exit.space, access: exit.access, pageWalk: exit.pageWalk, nptSize: this.nptPageSize(exit.gpa) };
    if (exit.access === 'fetch') req.cpl = this.machine.vcpu.cpl();
    const r = checkAccess(this.rmp, req, this.ctx);
    switch (r.kind) {
      case 'ok':
        // A region the gate has not opened yet (see the constructor): open it and retry.
        this.#resyncFor(exit);
        return RESUME;
      case 'vc':
        // CR2 = faulting GVA: exact when the native side decoded the instruction (exit.exactAddress).
        return this.#injectVcRepeating(r.errorCode, exit.gva, this.#vcReason(r.check, exit.access, exit.gpa));
      case 'npf':
        this.#record('npf', { rip: exit.rip, gpa: exit.gpa, gva: exit.gva, access: exit.access, space: exit.space, errorCode: r.errorCode, reason: r.check, cause: 'access' });
        return { kind: 'vmexit', exit: { kind: 'npf', rip: exit.rip, gpa: exit.gpa, gva: exit.gva, access: exit.access, errorCode: r.errorCode, reason: r.check } };
    }
  }

  /**
   * The trace's reason for a #VC of a refused access: the text of the last one again when it is
   * the same. A #VC whose handler is on a page the guest may not fetch from refaults on every
   * delivery, ~1,400 times until its stack runs out, at the same address each time (issue 10).
   */
  #vcReason(check: string, access: Access, gpa: bigint): string {
    const last = this.#lastVcReason;
    if (last !== undefined && last.check === check && last.access === access && last.gpa === gpa) return last.text;
    const text = `${check} ${access} gpa 0x${gpa.toString(16)}`;
    this.#lastVcReason = { check, access, gpa, text };
    return text;
  }

  #lastVcReason: { check: string; access: Access; gpa: bigint; text: string } | undefined;

  /** Injects #VC with `errorCode` (the SW_EXITCODE the guest would see). */
  injectVc(errorCode: bigint, cr2: bigint | undefined, reason: string): HwStep {
    return this.inject(VC_VECTOR, errorCode, cr2, reason);
  }

  /**
   * injectVc for a refused access (#gateFault), with fault storms made natively: when the #VC
   * handler's first fetch (or access) is refused the same way, the guest's next run ends in the
   * same gate fault with nothing started, and the answer above is the same #VC again. That answer
   * depends only on the exit's fields (outsideRam, ciphertext, GPA, space, access, page walk: the
   * native side compares every word of it, and the RIP and instruction count) and on the RMP, the
   * nested page sizes, and the guest context, which only this model changes, and it does not run
   * between the repeated deliveries (one vCPU: no scheduler switch between runs). So
   * Vcpu.tryInjectRepeating makes them without a round trip each, and each gets its event here, as
   * it would have: the same fields (RIP is the fault's: the native side checks it), in order
   * (nothing else is recorded between them: a run with a foreign-content read ends the storm).
   */
  #injectVcRepeating(errorCode: bigint, cr2: bigint, reason: string): HwStep {
    const vcpu = this.machine.vcpu;
    if (this.machine.vcpuCount !== 1) return this.injectVc(errorCode, cr2, reason);
    const rip = vcpu.regs.rip;
    this.#record('inject-vc', { vector: VC_VECTOR, errorCode, cr2, rip, reason });
    const failure = vcpu.tryInjectRepeating(VC_VECTOR, errorCode, cr2, true);
    for (let i = vcpu.repeatedDeliveries; i > 0; i--) this.#record('inject-vc', { vector: VC_VECTOR, errorCode, cr2, rip, reason });
    return failure === undefined ? RESUME : this.#deliveryFailed(VC_VECTOR, reason, failure);
  }

  /**
   * Delivers `vector` through the guest IDT. `resume`: the pushed RFLAGS image has RF = 1
   * (pushesResumeFlag); true for the faults the CPU raises on a guest instruction (#VC, #GP, #UD,
   * #PF), the default here.
   */
  inject(vector: number, errorCode: bigint | undefined, cr2: bigint | undefined, reason: string, resume = true): HwStep {
    const fields = { vector, errorCode: errorCode ?? null, cr2: cr2 ?? null, rip: this.machine.vcpu.regs.rip, reason };
    this.#record(vector === VC_VECTOR ? 'inject-vc' : 'inject', fields);
    // CR2 with the delivery, in one native call (Vcpu.inject): loaded as the fault is raised.
    const failure = this.machine.vcpu.tryInject(vector, errorCode, cr2, resume);
    return failure === undefined ? RESUME : this.#deliveryFailed(vector, reason, failure);
  }

  #deliveryFailed(vector: number, reason: string, failure: string): HwStep {
    this.#record('shutdown', { vector, reason: failure });
    return { kind: 'outcome', outcome: { outcome: 'terminated', reason: `cannot deliver vector ${vector} (${reason}): ${failure}` } };
  }
}
