// The honest SNP VMM: answers Page State Change with RMPUPDATE, PSMASHes on a size-mismatch
// NPF, prints console output from GHCB IOIO, records termination requests as the outcome.
// Its behaviour follows KVM (arch/x86/kvm/svm/sev.c: sev_handle_vmgexit_msr_protocol,
// snp_begin_psc_msr / snp_begin_psc, sev_handle_rmp_fault) and QEMU's implicit
// conversion on a private/shared mismatch.
import { flatGuestRam, inGuestRam, userspaceConversionOutsideRam, type GuestRamRange } from '../guest-ram.js';
import { Console } from '../console.js';
import { SNP_GUEST_SEV_FEATURES, type SnpVmExit } from '../../platform/snp/snp-cpu.js';
import type { SnpVmmHandle } from '../../platform/snp/vmm-handle.js';
import { NPF_BITS } from '../../platform/snp/access-check.js';
import {
  decodeGhcbMsr, ghcbMsr, GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN, HV_FEATURE, PREFERRED_GHCB_NONE_GFN, PSC_MSR_ERROR_GENERIC, PSC_OP,
} from '../../platform/snp/ghcb-msr.js';
import {
  AP_REQUEST, decodeIoioExitInfo, decodePscEntryWords, GHCB_ERR, GHCB_OFFSET, GHCB_RESULT, GHCB_SAVE_AREA_AND_BITMAP_BYTES, GHCB_SHARED_BUFFER_SIZE, GHCB_SIZE, PSC_ERROR,
  PSC_MAX_ENTRIES, pscEntryAddress, SVM_EXIT, withPscCurPage,
} from '../../platform/snp/ghcb-page.js';
import { PAGE_2M, PAGE_4K, type RmpEntry } from '../../platform/snp/rmp.js';
import { snpCpuid } from '../../platform/snp/sev-status.js';
import { encodeCpuidPage } from '../../platform/snp/cpuid-page.js';
import type { SnpVmmPolicy, VmmAnswer } from './policy.js';
import { HostAccessRefused } from '../../platform/host-memory.js';
import { MASK64 } from '../../shared/u64.js';
import { GP_VECTOR } from '../../shared/x86-vectors.js';
import { GMSG, MSG_TYPE } from '../../platform/snp/guest-request.js';

/** KVM's bound on a scratch area outside the GHCB page, which it copies in (sev.c GHCB_SCRATCH_AREA_LIMIT). */
const GHCB_SCRATCH_AREA_LIMIT = 16n * PAGE_4K;
/** sev_es_string_io refuses a count, or count × size, above INT_MAX (its exit handler fails: KVM_RUN returns -EINVAL). */
const INT_MAX = 0x7fffffffn;

/**
 * KVM's page_address_valid(vcpu, gpa) for an SNP guest (arch/x86/kvm/cpuid.h): page aligned and
 * kvm_vcpu_is_legal_gpa, no bit of vcpu->arch.reserved_gpa_bits set: bits MAXPHYADDR and up,
 * less the C-bit (sev.c sev_vcpu_after_set_cpuid: "For sev guests, the memory encryption bit is
 * not reserved in CR3"). (U) The guest's MAXPHYADDR is CPUID Fn8000_0008 EAX[7:0] as the VMM set
 * it, which this model's CPUID does not have; it is taken as the C-bit position, the width left to
 * a host with memory encryption on (APM Vol. 2 §7.10, Secure Memory Encryption: CPUID Fn8000_001F
 * EBX[11:6] physical-address bits fewer; 52 - 1 = 51 on a part whose C-bit is 51, as this guest's
 * is), so the bits above the C-bit are the reserved ones.
 */
export function legalVmsaGpa(gpa: bigint, cBit: number): boolean {
  return gpa % PAGE_4K === 0n && (gpa & ~(1n << BigInt(cBit))) >> BigInt(cBit) === 0n;
}

/**
 * The exits KVM serves as a NOP (INVD, WBINVD, MONITOR, MWAIT), with the GHCB registers
 * sev_es_validate_vmgexit needs marked valid for each (MONITOR: RAX, RCX, RDX; MWAIT: RAX, RCX).
 */
const NOP_EXIT_INPUTS: ReadonlyMap<number, readonly (keyof typeof GHCB_OFFSET)[]> = new Map([
  [SVM_EXIT.INVD, []], [SVM_EXIT.WBINVD, []], [SVM_EXIT.MONITOR, ['rax', 'rcx', 'rdx']], [SVM_EXIT.MWAIT, ['rax', 'rcx']],
  [SVM_EXIT.READ_DR7, []], [SVM_EXIT.WRITE_DR7, ['rax']],
]);

/** The leaves an honest VMM lists in the SNP CPUID page (QEMU: from KVM_GET_CPUID2). */
const CPUID_PAGE_LEAVES = [0x0, 0x1, 0x80000000, 0x8000001f];

/** The CPUID page an honest VMM proposes at launch: the CPU's own answers (cpuid-page.ts). */
export function honestCpuidPage(cBit: number): Uint8Array {
  return encodeCpuidPage(CPUID_PAGE_LEAVES.map((leaf) => ({ eaxIn: leaf, ecxIn: 0, xcr0In: 0n, xssIn: 0n, ...snpCpuid(leaf, 0, cBit) })));
}

export interface HonestSnpVmmOptions {
  /** Process at most this many PSC entries per VMGEXIT (partial progress). Default: all. */
  pscEntriesPerExit?: number;
  echo?: (text: string) => void;
  /** Where the guest has RAM (the VMM's memslots). Default: all the machine backs. */
  ram?: readonly GuestRamRange[];
}

/** The certificate table KVM gives an Extended Guest Request when the host supplies no certificates: its 24-byte terminator. */
const EMPTY_CERTIFICATE_TABLE = new Uint8Array(24);

type Npf = Extract<SnpVmExit, { kind: 'npf' }>;
type Vmgexit = Extract<SnpVmExit, { kind: 'vmgexit' }>;

export class HonestSnpVmm implements SnpVmmPolicy {
  readonly console: Console;
  /** GHCB GPA each vCPU registered (MSR protocol 0x012): KVM keeps it per vCPU (ghcb_registered_gpa). */
  readonly #registeredGhcbs = new Map<number, bigint>();
  /** VMSA GPAs an AP creation request CREATE_ON_INIT recorded per target vCPU, for its next INIT (KVM snp_vmsa_gpa). */
  readonly #vmsaAtInit = new Map<number, bigint>();
  /**
   * KVM's response buffer for guest requests (kvm_sev_info guest_resp_buf, a firmware page
   * allocated zeroed): the firmware writes each response into it and KVM copies all 4 KiB to the
   * guest, so what a failed request gets back is what is left there. Allocated at the first request.
   */
  #guestResponse: Uint8Array | undefined;
  readonly pscEntriesPerExit: number;
  readonly #ram: readonly GuestRamRange[] | undefined;

  constructor(options: HonestSnpVmmOptions = {}) {
    this.console = new Console(options.echo);
    this.pscEntriesPerExit = options.pscEntriesPerExit ?? Number.POSITIVE_INFINITY;
    this.#ram = options.ram;
  }

  /** Without a memory map, all the machine backs is RAM: inGuestRam over flatGuestRam(memoryBytes), without the array. */
  #inRam(host: SnpVmmHandle, gpa: bigint, size: bigint): boolean {
    return this.#ram ? inGuestRam(this.#ram, gpa, size) : gpa >= 0n && gpa + size <= host.memoryBytes;
  }

  /** The GHCB GPA the BSP (vCPU 0) registered, if any. */
  get registeredGhcb(): bigint | undefined {
    return this.#registeredGhcbs.get(0);
  }

  /** The VMSA GPA a CREATE_ON_INIT request recorded for vCPU `vcpu`, which its next INIT would start it from. */
  vmsaAtInit(vcpu: number): bigint | undefined {
    return this.#vmsaAtInit.get(vcpu);
  }

  /** The VMM's own bookkeeping (its console is a part of the VM snapshot by itself). */
  saveState(): { registeredGhcbs: [number, bigint][]; vmsaAtInit: [number, bigint][]; guestResponse?: Uint8Array } {
    return {
      registeredGhcbs: [...this.#registeredGhcbs], vmsaAtInit: [...this.#vmsaAtInit],
      ...(this.#guestResponse ? { guestResponse: Uint8Array.from(this.#guestResponse) } : {}),
    };
  }

  loadState(state: { registeredGhcbs: [number, bigint][]; vmsaAtInit?: [number, bigint][]; guestResponse?: Uint8Array }): void {
    this.#guestResponse = state.guestResponse ? Uint8Array.from(state.guestResponse) : undefined;
    this.#registeredGhcbs.clear();
    for (const [vcpu, gpa] of state.registeredGhcbs) this.#registeredGhcbs.set(vcpu, gpa);
    this.#vmsaAtInit.clear();
    for (const [vcpu, gpa] of state.vmsaAtInit ?? []) this.#vmsaAtInit.set(vcpu, gpa);
  }

  onHlt(): VmmAnswer {
    this.console.flush();
    return { outcome: 'done', reason: 'guest halted' };
  }

  /**
   * #VMEXIT(NPF). Decided from the RMP entry and the VMM's own NPT, never from the SIZEM bit
   * (set only for PVALIDATE/RMPADJUST), like KVM: sev_handle_rmp_fault PSMASHes a 2 MiB RMP
   * entry on any RMP fault and zaps the 2 MiB NPT range, which is then remapped at 4 KiB.
   */
  onNpf(host: SnpVmmHandle, exit: Npf): VmmAnswer {
    const page = exit.gpa & ~(PAGE_4K - 1n);
    const region = exit.gpa & ~(PAGE_2M - 1n);
    const entry = host.rmpEntry(page);
    const privateAccess = (exit.errorCode & NPF_BITS.enc) !== 0n;
    if (!this.#inRam(host, page, PAGE_4K)) return { outcome: 'fault', reason: `guest access to GPA 0x${exit.gpa.toString(16)} outside its RAM` };
    const ours = entry.assigned && entry.asid === host.asid;
    if (privateAccess && ours && entry.pageSize === '2m') {
      const r = host.psmash(region);
      if (r.rc === 0) {
        host.setNptPageSize(region, '4k');
        host.trace.record('vmm', 'npf-handled', { gpa: exit.gpa, action: 'psmash' });
        return 'resume';
      }
      // A PSMASH that fails does not stop the VM: KVM sev_handle_rmp_fault looks the entry up
      // again (a 4K entry now means another CPU split it: done), otherwise only warns ("SEV:
      // Unable to split RMP entry for GPA ..."), zaps the NPT range (kvm_zap_gfn_range) and
      // resumes the guest (npf_interception returns kvm_mmu_page_fault's result). The mapping
      // comes back at the RMP entry's level (sev_private_max_mapping_level: still 2M), so the
      // NPT is left as it is; the guest faults again, and KVM loops with it (here the run loop's
      // no-progress guard ends the run). Source: torvalds/linux arch/x86/kvm/svm/sev.c (0097f9df).
      host.trace.record('vmm', 'npf-handled', { gpa: exit.gpa, action: 'psmash', failed: r.result });
      return 'resume';
    }
    // Implicit conversion (QEMU kvm_convert_memory on KVM_EXIT_MEMORY_FAULT): a private access
    // to a shared page makes it private (the guest sees #VC 0x404 until it validates); a shared
    // write to a private page makes it shared.
    if (privateAccess && !entry.assigned) {
      const r = host.rmpUpdate(page, { assigned: true, pageSize: '4k', gpa: page, asid: host.asid });
      host.trace.record('vmm', 'npf-handled', { gpa: exit.gpa, action: 'make-private', result: r.result });
      return r.rc === 0 ? 'resume' : { outcome: 'vmm-error', reason: `implicit conversion failed: ${r.result}` };
    }
    if (!privateAccess && ours) {
      const r = this.#makeShared(host, page);
      host.trace.record('vmm', 'npf-handled', { gpa: exit.gpa, action: 'make-shared', ok: r });
      return r ? 'resume' : { outcome: 'vmm-error', reason: 'implicit conversion to shared failed' };
    }
    // The remaining size fault: a 2 MiB NPT mapping over 4 KiB RMP entries (private access), or
    // over a region not wholly hypervisor-owned (shared write). KVM never maps 2 MiB over a
    // mixed range (KVM_LPAGE_MIXED_FLAG); we split our NPT.
    if (host.nptPageSize(exit.gpa) === '2m') {
      host.setNptPageSize(region, '4k');
      host.trace.record('vmm', 'npf-handled', { gpa: exit.gpa, action: 'split-npt' });
      return 'resume';
    }
    return { outcome: 'vmm-error', reason: `unresolvable NPF at gpa 0x${exit.gpa.toString(16)} (${exit.reason})` };
  }

  #makeShared(host: SnpVmmHandle, gpa: bigint): boolean {
    if (host.rmpEntry(gpa).pageSize === '2m' && host.psmash(gpa & ~(PAGE_2M - 1n)).rc !== 0) return false;
    const ok = host.rmpUpdate(gpa, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 }).rc === 0;
    if (ok) this.#remapNpt(host, gpa);
    return ok;
  }

  /**
   * After a conversion KVM zaps the range and faults it back in at the largest size that the
   * range allows: 2 MiB only over a 2 MiB private RMP entry (sev_gmem_max_mapping_level); shared
   * memory at the host's page size, 4 KiB in this model (no huge pages behind shared memory).
   */
  #remapNpt(host: SnpVmmHandle, gpa: bigint): void {
    const e = host.rmpEntry(gpa);
    const want = e.assigned && e.asid === host.asid && e.pageSize === '2m' ? '2m' : '4k';
    if (host.nptPageSize(gpa) !== want) host.setNptPageSize(gpa, want);
  }

  /**
   * One 4 KiB page state change; returns an RMPUPDATE-style code (0 = done). A change to the
   * state the page already has is a no-op, as in KVM kvm_vm_set_mem_attributes ("Nothing to do
   * if the entire range has the desired attributes") and QEMU kvm_convert_memory: no
   * RMPUPDATE, so Validated and the contents survive and a second PVALIDATE sees CF=1.
   */
  #pscPage(host: SnpVmmHandle, gpa: bigint, op: number): number {
    if (op === PSC_OP.PRIVATE) {
      if (isPrivateTo(host.rmpEntry(gpa), gpa, host.asid)) return 0;
      if (host.rmpEntry(gpa).pageSize === '2m') {
        const r = host.psmash(gpa & ~(PAGE_2M - 1n));
        if (r.rc !== 0) return r.rc;
      }
      const rc = host.rmpUpdate(gpa, { assigned: true, pageSize: '4k', gpa, asid: host.asid }).rc;
      if (rc === 0) this.#remapNpt(host, gpa);
      return rc;
    }
    if (!host.rmpEntry(gpa).assigned) return 0;
    return this.#makeShared(host, gpa) ? 0 : 1;
  }

  /**
   * A conversion of [gpa, gpa+size), not wholly in the VMM's RAM, as QEMU takes it
   * (userspaceConversionOutsideRam). Returns the outcome when the VM stops, or undefined when
   * the guest goes on (the conversion counts as done).
   */
  #outsideRam(host: SnpVmmHandle, gpa: bigint, size: bigint, op: number, via: 'msr' | 'ghcb'): Exclude<VmmAnswer, 'resume'> | undefined {
    const ram = this.#ram ?? flatGuestRam(host.memoryBytes);
    const ignored = userspaceConversionOutsideRam(ram, gpa, size, op === PSC_OP.PRIVATE) === 'ignored';
    host.trace.record('vmm', 'psc', { via, gpa, op, size: size === PAGE_2M ? '2m' : '4k', outsideRam: true, error: ignored ? 0n : 'vm-stopped' });
    if (ignored) return undefined;
    return { outcome: 'vmm-error', reason: `page state change to ${op === PSC_OP.PRIVATE ? 'private' : 'shared'} of 0x${gpa.toString(16)} (+0x${size.toString(16)}), not all guest RAM: the VMM stops the VM (QEMU kvm_convert_memory fails)` };
  }

  onVmgexit(host: SnpVmmHandle, exit: Vmgexit): VmmAnswer {
    const req = decodeGhcbMsr(exit.ghcbMsr);
    host.trace.record('vmm', 'ghcb-msr', { request: req.kind, value: exit.ghcbMsr });
    switch (req.kind) {
      case 'sev-info':
        host.ghcbMsr = ghcbMsr.sevInfoResp(GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN, host.cBit);
        return 'resume';
      case 'cpuid': {
        const r = snpCpuid(req.fn, 0, host.cBit);
        host.ghcbMsr = ghcbMsr.cpuidResp([r.eax, r.ebx, r.ecx, r.edx][req.reg]!, req.reg);
        return 'resume';
      }
      case 'register-ghcb':
        this.#registeredGhcbs.set(host.vcpuIndex, req.gfn << 12n);
        host.ghcbMsr = ghcbMsr.registerResp(req.gfn);
        return 'resume';
      case 'psc': {
        // KVM snp_begin_psc_msr: an operation other than private/shared is refused at once;
        // otherwise the page goes to userspace (KVM_HC_MAP_GPA_RANGE, one 4K page) and any
        // failure there is the same GHCB_MSR_PSC_RESP_ERROR (snp_complete_psc_msr).
        const gpa = req.gfn << 12n;
        let error = 0;
        if (req.op !== PSC_OP.PRIVATE && req.op !== PSC_OP.SHARED) error = PSC_MSR_ERROR_GENERIC;
        else if (!this.#inRam(host, gpa, PAGE_4K)) {
          const stop = this.#outsideRam(host, gpa, PAGE_4K, req.op, 'msr');
          if (stop) return stop;
          host.ghcbMsr = ghcbMsr.pscResp(0);
          return 'resume';
        } else if (this.#pscPage(host, gpa, req.op) !== 0) error = PSC_MSR_ERROR_GENERIC;
        host.trace.record('vmm', 'psc', { via: 'msr', gpa, op: req.op, error });
        host.ghcbMsr = ghcbMsr.pscResp(error);
        return 'resume';
      }
      // KVM offers GHCB_HV_FT_SUPPORTED = SNP | SNP_AP_CREATION to every SNP guest.
      case 'hv-features':
        host.ghcbMsr = ghcbMsr.hvFeaturesResp(HV_FEATURE.SNP | HV_FEATURE.AP_CREATION);
        return 'resume';
      case 'terminate':
        this.console.flush();
        host.trace.record('vmm', 'terminate', { reasonSet: req.reasonSet, reasonCode: req.reasonCode });
        return { outcome: 'guest-fatal', reason: `GHCB termination request: reason set ${req.reasonSet}, code ${req.reasonCode}` };
      case 'ghcb-gpa':
        return this.#ghcbPage(host, req.gpa);
      // KVM sev_handle_vmgexit_msr_protocol, GHCB_MSR_PREF_GPA_REQ: it prefers no GPA, and says so
      // with GHCB_MSR_PREF_GPA_NONE in GHCBData[63:12] of a 0x011 response, whatever the request held there.
      case 'preferred-ghcb':
        host.ghcbMsr = ghcbMsr.preferredGhcbResp(PREFERRED_GHCB_NONE_GFN);
        return 'resume';
      // KVM answers this too (AP reset hold parks the vCPU until a SIPI); this VMM does not model it, so it says so.
      case 'ap-reset-hold':
        return { outcome: 'vmm-error', reason: `GHCB MSR request ${req.kind} (0x${exit.ghcbMsr.toString(16)}) is not modelled by this VMM` };
      case 'unknown':
        // KVM sev_handle_vmgexit_msr_protocol, default case: "Error, keep GHCB MSR value as-is"
        // and resume the guest (ret = 1): the guest reads back its own request, no VM exit to
        // userspace, no termination.
        return 'resume';
    }
  }

  #ghcbPage(host: SnpVmmHandle, gpa: bigint): VmmAnswer {
    // KVM sev_handle_vmgexit: a GHCB GPA of 0 ("GHCB gpa is not set") or one kvm_vcpu_map cannot
    // map (no memslot: not guest RAM) resumes the guest with nothing read or written ("Without a
    // GHCB, just return right back to the guest"): the guest finds its GHCB and the MSR as it left
    // them, and its own checks decide. A guest that retries for ever ends on the budget (each
    // exit is charged, native/src/budget.h kExitCharge).
    if (gpa === 0n || !this.#inRam(host, gpa, BigInt(GHCB_SIZE))) {
      host.trace.record('vmm', 'ghcb-unmapped', { gpa });
      return 'resume';
    }
    // KVM sev_handle_vmgexit: "SEV-SNP guest requires that the GHCB GPA must be registered": a GHCB
    // GPA other than the vCPU's ghcb_registered_gpa (0 until a GHCB MSR registration request sets
    // it: the vCPU is allocated zeroed and nothing else writes it) fails the exit with -EINVAL, so
    // KVM_RUN fails and QEMU stops the VM (kvm_cpu_exec: RUN_STATE_INTERNAL_ERROR). The guest gets
    // no SW_EXITINFO answer: the VM is over.
    const registered = this.#registeredGhcbs.get(host.vcpuIndex);
    if (registered !== gpa) {
      const why = registered === undefined ? 'this vCPU registered no GHCB' : `this vCPU registered 0x${registered.toString(16)}`;
      return { outcome: 'vmm-error', reason: `GHCB GPA 0x${gpa.toString(16)} is not registered (${why}): KVM fails the exit (-EINVAL) and the VM stops` };
    }
    // Whether the guest made its GHCB shared is not checked: KVM maps the GHCB GPA through the
    // memslot's host mapping (sev_handle_vmgexit: kvm_vcpu_map; virt/kvm/kvm_main.c __kvm_vcpu_map:
    // kvm_follow_pfn on the userspace address, no look at the page's private attribute) and serves
    // what it finds there. With guest_memfd a private page is not behind that mapping, so KVM reads
    // and answers into the shared backing, which the guest does not see (QEMU kvm_convert_memory
    // discards it on a conversion to private: KVM reads zeros there, and answers
    // GHCB_ERR_MISSING_INPUT from sev_es_validate_vmgexit). In this model the host's view of a page
    // the RMP assigns reads back as ciphertext and refuses writes (vmm-handle.ts): the VMM serves
    // whatever that ciphertext says (almost always GHCB_ERR_INVALID_USAGE, the usage field checked
    // first) and its answer is lost. The guest resumes with its GHCB as it left it.
    const g = new Ghcb(host, gpa);
    let answer: VmmAnswer;
    try {
      answer = this.#ghcbRequest(host, gpa, g);
      if (answer === 'resume') g.returnRegisters();
      g.flush();
    } catch (err) {
      if (!(err instanceof HostAccessRefused) || err.gpa < gpa || err.gpa >= gpa + BigInt(GHCB_SIZE)) throw err;
      // A write into the GHCB page other than the save area's (the PSC buffer, INS data): lost as well.
      g.lose(err.message);
      answer = 'resume';
    }
    if (g.lostWrite !== undefined) {
      host.trace.record('vmm', 'ghcb-answer-lost', { gpa, exitInfo1: g.get('swExitInfo1'), exitInfo2: g.get('swExitInfo2'), why: g.lostWrite });
    }
    return answer;
  }

  /** The GHCB request at `gpa` (checked by #ghcbPage), answered through `g`. */
  #ghcbRequest(host: SnpVmmHandle, gpa: bigint, g: Ghcb): VmmAnswer {
    const fail = (code: bigint): VmmAnswer => {
      g.set('swExitInfo1', GHCB_RESULT.ERROR);
      g.set('swExitInfo2', code);
      return 'resume';
    };
    // KVM sev_handle_vmgexit: sev_es_sync_from_ghcb takes the fields marked valid and clears the
    // valid bitmap, whatever comes next; then sev_es_validate_vmgexit serves only GHCB usage 0 (the
    // standard format), checked first, and needs the exit code and both exit infos marked valid.
    g.clearValid();
    if (host.hostMemory.readU32(gpa + BigInt(GHCB_OFFSET.usage)) !== 0) return fail(GHCB_ERR.INVALID_USAGE);
    if (!g.validAfterClear('swExitCode') || !g.validAfterClear('swExitInfo1') || !g.validAfterClear('swExitInfo2')) return fail(GHCB_ERR.MISSING_INPUT);
    const code = g.get('swExitCode');
    const info1 = g.get('swExitInfo1');
    host.trace.record('vmm', 'ghcb-exit', { exitCode: code, exitInfo1: info1, exitInfo2: g.get('swExitInfo2') });
    switch (code) {
      case BigInt(SVM_EXIT.IOIO): {
        const io = decodeIoioExitInfo(info1);
        // sev_es_validate_vmgexit first: string I/O needs SW_SCRATCH marked valid, an OUT needs RAX.
        if (io.string && !g.validAfterClear('swScratch')) return fail(GHCB_ERR.MISSING_INPUT);
        if (!io.string && io.direction === 'out' && !g.validAfterClear('rax')) return fail(GHCB_ERR.MISSING_INPUT);
        // The operand size is the SZ8/SZ16/SZ32 field as a number, unchecked: KVM io_interception
        // (svm.c) takes size = (exit_info_1 & SVM_IOIO_SIZE_MASK) >> SVM_IOIO_SIZE_SHIFT, so no bit
        // set is size 0 and SZ8|SZ16 is size 3 (0..7). String I/O goes to sev_es_string_io
        // (#stringIo). IN/OUT goes to kvm_fast_pio (x86.c): an OUT sends the low `size` bytes of
        // RAX (kvm_fast_pio_out), an IN below 4 bytes merges what it reads into RAX and from 4 bytes
        // on zero-extends it ("For size less than 4 we merge, else we zero extend",
        // kvm_fast_pio_in / complete_fast_pio_in); RAX is the guest's if it marked it valid, else 0
        // (sev_es_sync_from_ghcb). The access exits to userspace (KVM_EXIT_IO with that size) for a
        // port without an in-kernel device, and QEMU's kvm_handle_io accesses `size` bytes from the
        // port on, byte by byte at the UART (Console.uartWrite); 0 bytes are no access at all
        // (address_space_write and address_space_read_full act only "if (len > 0)"). The guest is
        // answered SW_EXITINFO1 = SW_EXITINFO2 = 0. Sources: torvalds/linux arch/x86/kvm/svm/svm.c
        // io_interception, arch/x86/kvm/x86.c kvm_fast_pio; QEMU system/physmem.c.
        const size = Number((info1 & IOIO_SIZE_MASK) >> IOIO_SIZE_SHIFT);
        if (io.string) return this.#stringIo(host, gpa, g, io.direction, io.port, size, fail);
        const sizeMask = (1n << BigInt(8 * size)) - 1n;
        if (io.direction === 'out') {
          const v = g.get('rax');
          this.console.uartWrite(io.port, v, size);
          host.trace.record('vmm', 'io', { direction: 'out', port: io.port, value: v & sizeMask });
        } else {
          const value = this.console.uartRead(io.port, size);
          const rax = g.validAfterClear('rax') ? g.get('rax') : 0n;
          g.set('rax', size < 4 ? (rax & ~sizeMask) | value : value);
          host.trace.record('vmm', 'io', { direction: 'in', port: io.port, value });
        }
        g.set('swExitInfo1', GHCB_RESULT.OK);
        g.set('swExitInfo2', 0n);
        return 'resume';
      }
      case BigInt(SVM_EXIT.PSC): {
        if (!g.validAfterClear('swScratch')) return fail(GHCB_ERR.MISSING_INPUT);
        const scratch = g.get('swScratch');
        // The PSC buffer must lie in the GHCB's shared buffer (the only place an honest VMM reads).
        const bufStart = gpa + BigInt(GHCB_OFFSET.sharedBuffer);
        // KVM sev_handle_vmgexit: setup_vmgexit_scratch(svm, true, sizeof(struct psc_hdr)): the 8-byte
        // header must end by the shared buffer's end (reserved_0xff0), or INVALID_SCRATCH_AREA.
        if (scratch < bufStart || scratch + 8n > gpa + GHCB_SHARED_BUFFER_END) return fail(GHCB_ERR.INVALID_SCRATCH_AREA);
        g.flush();  // a PSC may take the GHCB page itself from the host
        const info2 = this.#psc(host, scratch, gpa + GHCB_SHARED_BUFFER_END);
        if (typeof info2 !== 'bigint') return info2;
        g.set('swExitInfo1', GHCB_RESULT.OK);
        g.set('swExitInfo2', info2);
        return 'resume';
      }
      case BigInt(SVM_EXIT.CPUID): {
        // CPUID NAE (GHCB spec §4.1.1; KVM sev_es_validate_vmgexit needs RAX and RCX valid, and
        // XCR0 too when RAX, all 64 bits of it, is 0xD): the answer in RAX, RBX, RCX, RDX, marked valid.
        if (!g.validAfterClear('rax') || !g.validAfterClear('rcx')) return fail(GHCB_ERR.MISSING_INPUT);
        if (g.get('rax') === 0xdn && !g.validAfterClear('xcr0')) return fail(GHCB_ERR.MISSING_INPUT);
        const leaf = Number(g.get('rax') & 0xffffffffn), subleaf = Number(g.get('rcx') & 0xffffffffn);
        const r = snpCpuid(leaf, subleaf, host.cBit);
        for (const [reg, value] of [['rax', r.eax], ['rbx', r.ebx], ['rcx', r.ecx], ['rdx', r.edx]] as const) g.set(reg, BigInt(value >>> 0));
        host.trace.record('vmm', 'cpuid', { via: 'ghcb', leaf, subleaf });
        g.set('swExitInfo1', GHCB_RESULT.OK);
        g.set('swExitInfo2', 0n);
        return 'resume';
      }
      // KVM sev_es_validate_vmgexit accepts these (with NOP_EXIT_INPUTS marked valid) and runs its
      // usual exit handlers: kvm_emulate_invd and kvm_emulate_wbinvd skip
      // the instruction (the host flushes caches itself when it must), kvm_emulate_monitor/mwait
      // treat it as a NOP (KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS, on by default). The guest steps
      // over it itself (Linux vc_handle_wbinvd, vc_handle_monitor, vc_handle_mwait).
      // DR7: sev_es_validate_vmgexit takes SVM_EXIT_READ_DR7 with no input and SVM_EXIT_WRITE_DR7
      // with RAX marked valid; svm.c dr_interception then returns at once for an SEV-ES guest
      // ("KVM cannot change DR7 (always swapped as type 'A') so return early"): nothing changes but
      // SW_EXITINFO1/2 = 0. Linux sends only the write (vc_handle_dr7_write: RAX = the value,
      // SW_EXITINFO1/2 = 0) and answers a read from its own copy (vc_handle_dr7_read).
      case BigInt(SVM_EXIT.READ_DR7):
      case BigInt(SVM_EXIT.WRITE_DR7):
      case BigInt(SVM_EXIT.INVD):
      case BigInt(SVM_EXIT.WBINVD):
      case BigInt(SVM_EXIT.MONITOR):
      case BigInt(SVM_EXIT.MWAIT): {
        for (const reg of NOP_EXIT_INPUTS.get(Number(code))!) if (!g.validAfterClear(reg)) return fail(GHCB_ERR.MISSING_INPUT);
        g.set('swExitInfo1', GHCB_RESULT.OK);
        g.set('swExitInfo2', 0n);
        return 'resume';
      }
      // RDPMC (Linux vc_handle_rdpmc sends RCX, reads RAX and RDX back). KVM sev_es_validate_vmgexit
      // needs RCX marked valid (else MISSING_INPUT); sev_handle_vmgexit then zeroes SW_EXITINFO1/2
      // and runs kvm_emulate_rdpmc (x86.c), whose kvm_pmu_rdpmc (pmu.c) fails for any ECX in a VM
      // without a vPMU ("if (!pmu->version) return 1": kvm_pmu_refresh returns before the vendor
      // refresh when !kvm->arch.enable_pmu, which QEMU's kvm_arch_pre_create_vcpu clears with
      // KVM_PMU_CAP_DISABLE for its default "pmu" off). KVM then injects #GP(0) (kvm_inject_gp), by
      // event injection (svm.c svm_inject_exception, EVENTINJ), not as a GHCB exception answer
      // (svm_complete_emulated_msr gives that for MSRs only): the guest takes #GP(0) in its #VC
      // handler, after the VMGEXIT.
      case BigInt(SVM_EXIT.RDPMC): {
        if (!g.validAfterClear('rcx')) return fail(GHCB_ERR.MISSING_INPUT);
        g.set('swExitInfo1', GHCB_RESULT.OK);
        g.set('swExitInfo2', 0n);
        host.inject(GP_VECTOR, 0n);
        return 'resume';
      }
      case BigInt(SVM_EXIT.HV_FEATURES):
        g.set('swExitInfo1', GHCB_RESULT.OK);
        g.set('swExitInfo2', HV_FEATURE.SNP | HV_FEATURE.AP_CREATION);
        return 'resume';
      case BigInt(SVM_EXIT.AP_CREATION): {
        // KVM sev_es_validate_vmgexit first: any request but DESTROY needs RAX marked valid, or
        // GHCB_ERR_MISSING_INPUT. Then KVM sev_snp_ap_creation: the APIC ID (= vCPU index here)
        // names an existing vCPU (kvm_get_vcpu_by_id); a CREATE or CREATE_ON_INIT needs RAX equal
        // to the VM's SEV_FEATURES, a VMSA GPA page_address_valid takes (page aligned, no bit the
        // guest's MAXPHYADDR reserves: legalVmsaGpa) and not 2 MiB aligned (the SNP erratum Linux's
        // snp_alloc_vmsa_page avoids); DESTROY needs nothing more; any other request is refused.
        // Whether the GPA is guest RAM is not asked here. Any failure is SW_EXITINFO1 = 2,
        // SW_EXITINFO2 = GHCB_ERR_INVALID_INPUT (sev_handle_vmgexit: svm_vmgexit_bad_input);
        // success leaves both 0 (svm_vmgexit_success(svm, 0) before the switch). Source:
        // torvalds/linux arch/x86/kvm/svm/sev.c (0097f9df).
        const request = Number(info1 & 0xffffffffn), apicId = Number(info1 >> 32n);
        const vmsaGpa = g.get('swExitInfo2');
        host.trace.record('vmm', 'ap-creation', { request, apicId, vmsaGpa });
        if (request !== AP_REQUEST.DESTROY && !g.validAfterClear('rax')) return fail(GHCB_ERR.MISSING_INPUT);
        if (apicId >= host.vcpuCount) return fail(GHCB_ERR.INVALID_INPUT);
        const creates = request === AP_REQUEST.CREATE || request === AP_REQUEST.CREATE_ON_INIT;
        if (!creates && request !== AP_REQUEST.DESTROY) return fail(GHCB_ERR.INVALID_INPUT);
        if (creates && (g.get('rax') !== SNP_GUEST_SEV_FEATURES || !legalVmsaGpa(vmsaGpa, host.cBit) || vmsaGpa % PAGE_2M === 0n)) return fail(GHCB_ERR.INVALID_INPUT);
        g.set('swExitInfo1', GHCB_RESULT.OK);
        g.set('swExitInfo2', 0n);
        // CREATE_ON_INIT: KVM records the VMSA GPA (target snp_vmsa_gpa, snp_ap_waiting_for_reset)
        // and does not kick the target ("Unless Creation is deferred until INIT, signal the vCPU"):
        // the target goes on as it is, and sev_snp_init_protected_guest_state uses the VMSA at the
        // target's next INIT (svm_vcpu_reset with init_event). This model delivers no INIT (no
        // local APIC, no INIT IPI), so the recorded VMSA is never used; a later CREATE or DESTROY
        // of the target replaces it, as it replaces snp_vmsa_gpa in KVM.
        if (request === AP_REQUEST.CREATE_ON_INIT) {
          this.#vmsaAtInit.set(apicId, vmsaGpa);
          return 'resume';
        }
        this.#vmsaAtInit.delete(apicId);
        g.flush();
        if (request === AP_REQUEST.DESTROY) {
          // KVM: snp_vmsa_gpa = INVALID_PAGE, then the kick: at its next entry the target is reset
          // to HALTED with no VMSA (sev_snp_init_protected_guest_state) and does not run again until
          // re-created. It may be the vCPU asking, which then stops after this exit.
          host.stopVcpu(apicId);
          return 'resume';
        }
        // CREATE of a VMSA GPA in no memslot (outside guest RAM): the request succeeded above, and
        // the kick makes the target reset (sev_snp_init_protected_guest_state, KVM_REQ_UPDATE_
        // PROTECTED_GUEST_STATE): it is set KVM_MP_STATE_HALTED with vmsa_pa = INVALID_PAGE first,
        // then "slot = gfn_to_memslot(vcpu->kvm, gfn); if (!slot) return;" leaves it so. The target
        // (a running AP, or the vCPU asking) stops as after AP_DESTROY and never runs until a
        // later CREATE gives it a page (pre_sev_run refuses a VMRUN without a VMSA). The first
        // version (e366f92ea99e, Linux 6.11) returned -EINVAL from __sev_snp_update_protected_
        // guest_state there, which its caller only logged ("snp: AP state update on init
        // failed"), the vCPU left halted all the same; this follows the newest (0097f9df). The
        // guest sees the success answer and an AP that never comes up (Linux: do_boot_cpu times out).
        if (!this.#inRam(host, vmsaGpa, PAGE_4K)) {
          host.trace.record('vmm', 'ap-vmsa-no-memslot', { vcpu: apicId, vmsaGpa });
          host.stopVcpu(apicId);
          return 'resume';
        }
        // CREATE: KVM points the target's VMCB at the page and makes it runnable (the target may be
        // the vCPU asking: it goes on from the new VMSA); a VMRUN the hardware refuses ends the VM
        // (KVM_EXIT_FAIL_ENTRY, which QEMU treats as fatal).
        const started = host.runApFromVmsa(apicId, vmsaGpa);
        if (!started.ok) return { outcome: 'fault', reason: `VMRUN of vCPU ${apicId} from the VMSA at 0x${vmsaGpa.toString(16)} failed: ${started.reason}` };
        return 'resume';
      }
      // SNP Guest Request NAE (Linux sev-guest's way to the firmware: attestation reports). KVM's
      // sev_es_validate_vmgexit needs both GPAs page aligned and not the same page (else
      // GHCB_ERR_MISSING_INPUT); snp_handle_guest_req then copies the request page into a buffer of
      // its own, issues SNP_GUEST_REQUEST with it and its response buffer, and copies the whole
      // response buffer to the guest's page whatever the firmware said: SW_EXITINFO1 = 0 and
      // SW_EXITINFO2 = SNP_GUEST_ERR(0, firmware status). A page with no memslot fails the exit
      // (kvm_read_guest/kvm_write_guest: -EIO) and the VM stops. KVM writes through the host's
      // mapping without asking whether the guest made the page shared; a private response page
      // refuses the host's write here, and the guest finds its page as it left it. Source:
      // torvalds/linux arch/x86/kvm/svm/sev.c (0097f9df).
      //
      // The Extended Guest Request (0x8000_0012) is the same request with room for certificates:
      // KVM without userspace certificate support (snp_handle_ext_guest_req) reads MSG_TYPE from
      // the request page and, for MSG_REPORT_REQ, needs RAX (the data pages' GPA, page aligned) and
      // RBX (their count) marked valid, else SW_EXITINFO1 = 2, SW_EXITINFO2 = GHCB_ERR_INVALID_INPUT;
      // with RBX non-zero it writes the empty certificate table (24 zero bytes) at RAX. Then it is
      // a guest request like the one above.
      case BigInt(SVM_EXIT.GUEST_REQUEST):
      case BigInt(SVM_EXIT.EXT_GUEST_REQUEST): {
        const requestGpa = info1, responseGpa = g.get('swExitInfo2');
        if (requestGpa % PAGE_4K !== 0n || responseGpa % PAGE_4K !== 0n || requestGpa === responseGpa) return fail(GHCB_ERR.MISSING_INPUT);
        const noMemslot = (gpa: bigint): VmmAnswer => ({ outcome: 'vmm-error', reason: `guest request page 0x${gpa.toString(16)} is not guest RAM: KVM fails the exit (-EIO) and the VM stops` });
        if (!this.#inRam(host, requestGpa, PAGE_4K)) return noMemslot(requestGpa);
        if (code === BigInt(SVM_EXIT.EXT_GUEST_REQUEST) && host.hostMemory.read(requestGpa + BigInt(GMSG.MSG_TYPE), 1)[0] === MSG_TYPE.REPORT_REQ) {
          if (!g.validAfterClear('rax') || !g.validAfterClear('rbx')) return fail(GHCB_ERR.INVALID_INPUT);
          const dataGpa = g.get('rax');
          if (dataGpa % PAGE_4K !== 0n) return fail(GHCB_ERR.INVALID_INPUT);
          if (g.get('rbx') !== 0n) {
            if (!this.#inRam(host, dataGpa, BigInt(EMPTY_CERTIFICATE_TABLE.length))) return noMemslot(dataGpa);
            this.#hostWrite(host, dataGpa, EMPTY_CERTIFICATE_TABLE);
          }
        }
        this.#guestResponse ??= new Uint8Array(Number(PAGE_4K));
        const status = host.guestRequest(host.hostMemory.read(requestGpa, Number(PAGE_4K)), this.#guestResponse);
        host.trace.record('vmm', 'snp-guest-request', { requestGpa, responseGpa, status });
        if (!this.#inRam(host, responseGpa, PAGE_4K)) return noMemslot(responseGpa);
        this.#hostWrite(host, responseGpa, this.#guestResponse);
        g.set('swExitInfo1', GHCB_RESULT.OK);
        g.set('swExitInfo2', BigInt(status));
        return 'resume';
      }
      case BigInt(SVM_EXIT.TERM_REQUEST): {
        const set = Number(info1 & 0xfn), reason = Number((info1 >> 4n) & 0xffn);
        this.console.flush();
        host.trace.record('vmm', 'terminate', { reasonSet: set, reasonCode: reason });
        return { outcome: 'guest-fatal', reason: `GHCB termination request: reason set ${set}, code ${reason}` };
      }
      default:
        return fail(GHCB_ERR.INVALID_EVENT);
    }
  }

  /**
   * A guest-request write KVM makes through the host's mapping (kvm_write_guest, kvm_clear_guest),
   * which does not ask whether the guest made the page shared: a private page refuses it here, and
   * the guest finds its page as it left it.
   */
  #hostWrite(host: SnpVmmHandle, gpa: bigint, bytes: Uint8Array): void {
    try {
      host.hostMemory.write(gpa, bytes);
    } catch (err) {
      if (!(err instanceof HostAccessRefused)) throw err;
      host.trace.record('vmm', 'guest-response-lost', { gpa, why: err.message });
    }
  }

  /**
   * INS/OUTS through the GHCB (KVM sev_es_string_io, setup_vmgexit_scratch): SW_EXITINFO2
   * elements of `size` bytes at SW_SCRATCH. A scratch area that starts in the GHCB page must lie
   * in its shared buffer [0x800, 0xff0); one elsewhere may be up to 16 pages, which KVM copies
   * from guest memory (and back, for INS, when the exit ends). A zero, wrapping, misplaced or
   * too large area is SW_EXITINFO1 = 2, SW_EXITINFO2 = GHCB_ERR_INVALID_SCRATCH_AREA. The stubs'
   * batched console (boot_abi.h) is an OUTS in the shared buffer.
   */
  #stringIo(host: SnpVmmHandle, gpa: bigint, g: Ghcb, direction: 'in' | 'out', port: number, size: number, fail: (code: bigint) => VmmAnswer): VmmAnswer {
    const count = g.get('swExitInfo2');
    if (count > INT_MAX) return { outcome: 'vmm-error', reason: `string I/O count 0x${count.toString(16)} above INT_MAX: KVM's exit handler fails (-EINVAL)` };
    const bytes = count * BigInt(size);
    // sev_es_string_io multiplies in an int too: check_mul_overflow(count, size, &bytes) fails the same way.
    if (bytes > INT_MAX) return { outcome: 'vmm-error', reason: `string I/O of 0x${count.toString(16)} ${size}-byte elements: 0x${bytes.toString(16)} bytes overflow an int, KVM's exit handler fails (-EINVAL)` };
    const scratch = g.get('swScratch');
    const end = scratch + bytes;
    const inGhcb = (scratch & ~(PAGE_4K - 1n)) === gpa;
    if (scratch === 0n || end > MASK64
      || (inGhcb ? scratch < gpa + BigInt(GHCB_OFFSET.sharedBuffer) || end > gpa + GHCB_SHARED_BUFFER_END : bytes > GHCB_SCRATCH_AREA_LIMIT)) {
      return fail(GHCB_ERR.INVALID_SCRATCH_AREA);
    }
    // Size 0 (no size bit in SW_EXITINFO1): sev_es_string_io has checked the count (INT_MAX) and the
    // scratch area (0 bytes) and calls kvm_sev_es_string_io, whose kvm_sev_es_outs / kvm_sev_es_ins
    // begin with min_t(unsigned int, PAGE_SIZE / size, ...): a division by zero in the host kernel
    // (#DE, an oops in KVM_RUN). The VM does not go on. Source: torvalds/linux arch/x86/kvm/x86.c.
    if (size === 0) {
      return { outcome: 'vmm-error', reason: `string I/O of size 0 (no size bit in SW_EXITINFO1) to port 0x${port.toString(16)}: KVM divides PAGE_SIZE by the size (kvm_sev_es_${direction === 'in' ? 'ins' : 'outs'}), a divide error in the host kernel` };
    }
    // KVM's copy of an area outside the GHCB is kvm_read_guest, which fails outside the VM's memory;
    // a copy of 0 bytes looks at no memslot and cannot fail (its segment loop never runs), so an
    // empty area is served wherever it points, with nothing read or written.
    if (!inGhcb && bytes > 0n && !this.#inRam(host, scratch, bytes)) {
      return { outcome: 'vmm-error', reason: `string I/O scratch area 0x${scratch.toString(16)} (+${bytes}) outside guest RAM: KVM cannot copy it (-EFAULT)` };
    }
    if (direction === 'out') {
      const data = bytes > 0n ? host.hostMemory.read(scratch, Number(bytes)) : new Uint8Array(0);
      this.console.uartWriteString(port, data, size);
      host.trace.record('vmm', 'io', { direction: 'out', port, string: true, bytes });
    } else {
      const data = Buffer.alloc(Number(bytes));
      // Each element as an IN of `size` bytes reads them: byte by byte from `port` on (Console.uartRead).
      for (let i = 0; i < data.length; i += size) for (let k = 0; k < size; k++) data[i + k] = Number(this.console.uartRead(port + k, 1));
      g.flush();  // the area may share the GHCB page with the save area the VMM is answering in
      // KVM writes the data back when the exit ends (sev_es_unmap_ghcb: kvm_write_guest to SW_SCRATCH,
      // its result not looked at) through the memslot's host mapping, the shared backing: into a page
      // the guest made private it goes where the guest does not see it, and the guest is answered as
      // usual. Here the hardware refuses the host's write to a guest page: the data is lost the same way.
      const lost = bytes > 0n ? host.hostMemory.tryWrite(scratch, data) : undefined;
      if (lost !== undefined && inGhcb) g.lose(lost);
      host.trace.record('vmm', 'io', lost === undefined ? { direction: 'in', port, string: true, bytes } : { direction: 'in', port, string: true, bytes, lost });
    }
    g.set('swExitInfo1', GHCB_RESULT.OK);
    g.set('swExitInfo2', 0n);
    return 'resume';
  }

  /**
   * Processes the PSC buffer at `buf` from cur_entry; returns SW_EXITINFO2 (0 or a PSC error),
   * or the run's end when the VMM stops the VM (#outsideRam). The entries this exit may process
   * are read in one host read, and cur_entry and the entries' cur_page are written back once when
   * the exit ends, as KVM does (it copies the scratch area in at VMGEXIT, setup_vmgexit_scratch,
   * updates cur_page in that copy, and syncs it back when the exit completes); one host access
   * per entry step was most of an eager SNP boot's acceptance time (issue 11).
   *
   * Entry by entry as KVM's snp_begin_psc / snp_complete_psc (arch/x86/kvm/svm/sev.c) treat them:
   * - the header's reserved word and each entry's reserved bits [63:57] are never read (struct
   *   psc_hdr / psc_entry in asm/sev-common.h; snp_begin_psc checks only end_entry, cur_page and
   *   the gfn's alignment), so setting them changes nothing;
   * - KVM converts a run of entries at a time: from the first one not done, every following one
   *   with the same operation and page size, cur_page 0 and gfn = first gfn + pages so far. Such a
   *   run that fails (snp_complete_one_psc: userspace returned an error) is
   *   VMGEXIT_PSC_ERROR_GENERIC with none of its entries marked done and cur_entry at its first
   *   entry; the runs before it stay done (__snp_complete_one_psc already wrote their cur_page
   *   and cur_entry). An invalid entry is found only where a run starts, so the runs before it
   *   are done too and cur_entry names it.
   */
  #psc(host: SnpVmmHandle, buf: bigint, limit: bigint): bigint | Exclude<VmmAnswer, 'resume'> {
    const start = host.hostMemory.readU16(buf);
    const end = host.hostMemory.readU16(buf + 2n);
    // KVM snp_begin_psc: end_entry beyond the maximum is a bad header; the entries must also fit
    // in the shared buffer. cur_entry past end_entry is not an error there: the entry loop does not
    // run and snp_complete_psc(svm, 0) reports success ("Nothing more to process").
    if (end >= PSC_MAX_ENTRIES || pscEntryAddress(buf, end) + 8n > limit) return PSC_ERROR.INVALID_HEADER;
    if (start > end) return 0n;
    const count = Math.max(0, Math.ceil(Math.min(end - start + 1, this.pscEntriesPerExit)));
    const entries = count > 0 ? host.hostMemory.read(pscEntryAddress(buf, start), count * 8) : new Uint8Array(0);
    const view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
    /** The entries as the guest wrote them, for a run that fails (its entries keep the cur_page the guest gave them). */
    const asWritten = new Uint8Array(entries);  // a copy (a Buffer's slice() would share the bytes)
    let cur = start;
    /** Entries [start, start + updated) whose cur_page changed in the copy. */
    let updated = 0;
    /** The low half of the entry at `cur` (cur_page is in it). */
    let low = 0;
    const setCurPage = (curPage: number) => {
      view.setUint32((cur - start) * 8, withPscCurPage(low, curPage), true);
      updated = Math.max(updated, cur - start + 1);
    };
    const finish = (result: bigint): bigint => {
      if (updated > 0) host.hostMemory.write(pscEntryAddress(buf, start), entries.subarray(0, updated * 8));
      if (cur !== start) host.hostMemory.writeU16(buf, cur);
      return result;
    };
    /** The run KVM would convert in one exit to userspace (snp_begin_psc): where it began, and what joins it. */
    let run: { first: number; op: number; huge: boolean; nextGfn: number } | undefined;
    while (cur < start + count) {
      // Each entry as its two 32-bit halves, on numbers (decodePscEntryWords): gfn < 2^40.
      low = view.getUint32((cur - start) * 8, true);
      const e = decodePscEntryWords(low, view.getUint32((cur - start) * 8 + 4, true));
      const gpa = BigInt(e.gfn * 0x1000);
      const size = e.size2m ? PAGE_2M : PAGE_4K;
      const pages = e.size2m ? 512 : 1;
      if (run && e.op === run.op && e.gfn === run.nextGfn && e.curPage === 0 && e.size2m === run.huge) {
        run.nextGfn += pages;
      } else {
        run = undefined;
        // KVM snp_begin_psc: cur_page beyond the entry's page count, or a gfn not aligned to its
        // size, is an invalid entry; cur_page equal to the page count (512 for 2M, 1 for 4K) means the
        // entry is done already and is skipped (npages - cur_page == 0, cur_entry++).
        if (e.gfn % pages !== 0 || e.curPage > pages) {
          host.trace.record('vmm', 'psc', { via: 'ghcb', entry: cur, gpa, op: e.op, error: 'invalid-entry' });
          return finish(PSC_ERROR.INVALID_ENTRY);
        }
        if (e.curPage === pages) { cur++; continue; }
        // A partly done 2M entry goes on at 4K (huge = false), and KVM's next-gfn test adds the
        // pages left to the entry's own gfn, not to where they start.
        run = { first: cur, op: e.op, huge: e.size2m && e.curPage === 0, nextGfn: e.gfn + pages - e.curPage };
      }
      const carriedOut = e.op === PSC_OP.PRIVATE || e.op === PSC_OP.SHARED;
      if (!carriedOut) {
        // KVM snp_begin_psc, default case: only private/shared are carried out; any other
        // operation (PSMASH, UNSMASH, an undefined one) is completed as it stands by
        // __snp_complete_one_psc (cur_page = 512 or 1, cur_entry past it), with no error.
        setCurPage(pages);
        host.trace.record('vmm', 'psc', { via: 'ghcb', entry: cur, gpa, op: e.op, size: e.size2m ? '2m' : '4k', error: 0n, ignored: true });
        cur++;
        continue;
      }
      if (!this.#inRam(host, gpa, size)) {
        const stop = this.#outsideRam(host, gpa, size, e.op, 'ghcb');
        if (stop) return stop;
        setCurPage(pages);
        cur++;
        continue;
      }
      let error: bigint | undefined;
      if (e.size2m) {
        // Already in the requested state: a no-op (see #pscPage). Otherwise prefer one 2 MiB
        // RMPUPDATE; fall back to 4 KiB pages from cur_page on.
        const before = host.rmpEntry(gpa);
        const already = e.op === PSC_OP.PRIVATE
          ? before.pageSize === '2m' && isPrivateTo(before, gpa, host.asid)
          : regionHypervisorOwned(host, gpa);
        const whole = already || (e.curPage === 0 && (e.op === PSC_OP.PRIVATE
          ? host.rmpUpdate(gpa, { assigned: true, pageSize: '2m', gpa, asid: host.asid }).rc === 0
          : host.rmpUpdate(gpa, { assigned: false, pageSize: '2m', gpa: 0n, asid: 0 }).rc === 0));
        if (whole) {
          this.#remapNpt(host, gpa);
        } else {
          for (let p = e.curPage; p < 512; p++) {
            if (this.#pscPage(host, gpa + BigInt(p) * PAGE_4K, e.op) !== 0) { error = PSC_ERROR.GENERIC; break; }
          }
        }
      } else if (this.#pscPage(host, gpa, e.op) !== 0) {
        error = PSC_ERROR.GENERIC;
      }
      host.trace.record('vmm', 'psc', { via: 'ghcb', entry: cur, gpa, op: e.op, size: e.size2m ? '2m' : '4k', error: error ?? 0n });
      if (error !== undefined) {
        // The whole run failed: its entries keep the cur_page the guest gave them, cur_entry names its first.
        entries.set(asWritten.subarray((run.first - start) * 8, (cur - start + 1) * 8), (run.first - start) * 8);
        cur = run.first;
        return finish(error);
      }
      setCurPage(pages);  // KVM __snp_complete_one_psc: cur_page = 512 or 1
      cur++;
    }
    return finish(0n);
  }
}

/** SW_EXITINFO1 of IOIO: the operand size field, SZ8 | SZ16 | SZ32 (bits 6:4; Linux asm/svm.h SVM_IOIO_SIZE_MASK, SVM_IOIO_SIZE_SHIFT). */
const IOIO_SIZE_SHIFT = 4n;
const IOIO_SIZE_MASK = 7n << IOIO_SIZE_SHIFT;

/** The end of the GHCB's shared buffer (struct ghcb reserved_0xff0): a scratch area in the GHCB page ends by it. */
const GHCB_SHARED_BUFFER_END = BigInt(GHCB_OFFSET.sharedBuffer + GHCB_SHARED_BUFFER_SIZE);

/** Whether every 4 KiB RMP entry of the 2 MiB region at `gpa` is hypervisor-owned (RMPREAD each). */
function regionHypervisorOwned(host: SnpVmmHandle, gpa: bigint): boolean {
  for (let p = gpa; p < gpa + PAGE_2M; p += PAGE_4K) if (host.rmpEntry(p).assigned) return false;
  return true;
}

/** Whether `e` already makes `gpa` private to the guest `asid` (assigned, reverse map matches). */
function isPrivateTo(e: Readonly<RmpEntry>, gpa: bigint, asid: number): boolean {
  const offset = e.pageSize === '2m' ? gpa & (PAGE_2M - PAGE_4K) : 0n;
  return e.assigned && e.asid === asid && !e.immutable && e.gpa + offset === (gpa & ~(PAGE_4K - 1n));
}

/**
 * The VMM's view of a GHCB's save area (remembers the valid bitmap before clearing it). The save
 * area is read from host memory once, at the first field the VMM looks at, and its fields come
 * from that copy; the VMM's writes go to the copy and reach memory in one host write (flush()),
 * before anything else can look at the page: when the answer is done, and before work that
 * reads memory or changes the RMP (a PSC, an AP creation). Nothing else writes the save area
 * while the VMM answers (the guest is stopped). A host read of the whole page, and a host write
 * per field set (each with its RMP checks and a buffer), were most of an IOIO exit (issue 10).
 */
/** The registers the GHCB protocol returns to the guest after every exit (KVM sev_es_sync_to_ghcb). */
const RETURNED_REGISTERS = ['rax', 'rbx', 'rcx', 'rdx'] as const;

class Ghcb {
  readonly #host: SnpVmmHandle;
  readonly #gpa: bigint;
  #area: Buffer | undefined;
  /** The part of the copy the VMM changed and memory does not have yet: [#dirtyStart, #dirtyEnd). */
  #dirtyStart = GHCB_SAVE_AREA_AND_BITMAP_BYTES;
  #dirtyEnd = 0;
  #savedBitmap: [bigint, bigint] = [0n, 0n];
  /** The fields the VMM wrote an answer to. */
  readonly #answered = new Set<keyof typeof GHCB_OFFSET>();
  /** Why a write of the VMM's answer did not reach the GHCB page (the first one), if one did not. */
  lostWrite: string | undefined;
  constructor(host: SnpVmmHandle, gpa: bigint) {
    this.#host = host;
    this.#gpa = gpa;
  }
  #bytes(): Buffer {
    if (this.#area === undefined) {
      const area = this.#host.hostMemory.read(this.#gpa, GHCB_SAVE_AREA_AND_BITMAP_BYTES);
      this.#area = Buffer.from(area.buffer, area.byteOffset, area.byteLength);
    }
    return this.#area;
  }
  #changed(offset: number, length: number): void {
    if (offset < this.#dirtyStart) this.#dirtyStart = offset;
    if (offset + length > this.#dirtyEnd) this.#dirtyEnd = offset + length;
  }
  /**
   * Writes what the VMM changed to memory. A write the hardware refuses (the page is not the
   * host's: a GHCB in private memory) is lost, as KVM's goes to a shared backing the guest does not
   * see (HonestSnpVmm.#ghcbPage); `lostWrite` says why.
   */
  flush(): void {
    if (this.#dirtyEnd <= this.#dirtyStart) return;
    const start = this.#dirtyStart, end = this.#dirtyEnd;
    this.#dirtyStart = GHCB_SAVE_AREA_AND_BITMAP_BYTES;
    this.#dirtyEnd = 0;
    const refused = this.#host.hostMemory.tryWrite(this.#gpa + BigInt(start), this.#bytes().subarray(start, end));
    if (refused !== undefined) this.lose(refused);
  }
  /** Records that a write of the answer did not reach the GHCB page (the first reason is kept). */
  lose(why: string): void {
    this.lostWrite ??= why;
  }
  get(f: keyof typeof GHCB_OFFSET): bigint { return this.#bytes().readBigUInt64LE(GHCB_OFFSET[f]); }
  /** Writes a field of the answer and marks it valid, as KVM's ghcb_set_<field> accessors do (asm/svm.h DEFINE_GHCB_ACCESSORS). */
  set(f: keyof typeof GHCB_OFFSET, v: bigint): void {
    this.#bytes().writeBigUInt64LE(BigInt.asUintN(64, v), GHCB_OFFSET[f]);
    this.#changed(GHCB_OFFSET[f], 8);
    this.#setValid(f);
    this.#answered.add(f);
  }
  /**
   * KVM sev_es_sync_to_ghcb, when it unmaps the GHCB before the guest runs again: RAX, RBX, RCX and
   * RDX, marked valid, from its register cache, which sev_es_sync_from_ghcb filled with the values
   * the guest marked valid and 0 for the rest, and the exit handler may have changed (the answer).
   */
  returnRegisters(): void {
    for (const f of RETURNED_REGISTERS) if (!this.#answered.has(f)) this.set(f, this.validAfterClear(f) ? this.get(f) : 0n);
  }
  #bit(f: keyof typeof GHCB_OFFSET): number { return GHCB_OFFSET[f] / 8; }
  /** Like KVM, the VMM snapshots the valid bitmap and clears it so stale fields are not reused. */
  clearValid(): void {
    const area = this.#bytes();
    this.#savedBitmap = [area.readBigUInt64LE(GHCB_OFFSET.validBitmap), area.readBigUInt64LE(GHCB_OFFSET.validBitmap + 8)];
    area.fill(0, GHCB_OFFSET.validBitmap, GHCB_OFFSET.validBitmap + 16);
    this.#changed(GHCB_OFFSET.validBitmap, 16);
  }
  validAfterClear(f: keyof typeof GHCB_OFFSET): boolean {
    const bit = this.#bit(f);
    return ((this.#savedBitmap[bit >> 6]! >> BigInt(bit & 63)) & 1n) === 1n;
  }
  #setValid(f: keyof typeof GHCB_OFFSET): void {
    const bit = this.#bit(f);
    const offset = GHCB_OFFSET.validBitmap + (bit >> 3);
    const area = this.#bytes();
    area[offset] = area[offset]! | (1 << (bit & 7));
    this.#changed(offset, 1);
  }
}
