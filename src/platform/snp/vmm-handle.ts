// Everything the untrusted hypervisor of an SEV-SNP guest can do, and nothing more (AMD APM
// Vol. 2 §15.36; SEV-SNP Firmware ABI §8):
// - RMPUPDATE, PSMASH (and RMP reads), its own nested page tables (page sizes), the
//   SNP_LAUNCH_* firmware commands before the guest runs;
// - the GHCB MSR value it returns on VMGEXIT;
// - guest memory as the host sees it (`hostMemory`): pages the RMP assigns to a guest or to the
//   firmware refuse host writes (an RMP-protected write faults, APM §15.36.10) and read back as
//   ciphertext; hypervisor-owned (shared) pages read and write normally;
// - event injection of any vector, exceptions included: without Restricted/Alternate Injection
//   (SEV_FEATURES bits 3/4, APM §15.36.16) an SNP hypervisor can inject #VC (the WeSee attack)
//   and arbitrary interrupts (Heckler).
// There is deliberately no method that writes guest-private memory or touches the vCPU directly.
import { HostMemory } from '../host-memory.js';
import type { Vmsa } from './vmsa.js';
import type { Trace } from '../../shared/trace.js';
import type { LaunchPageType, LaunchVmplPerms } from './launch.js';
import type { RmpEntry, RmpPageSize } from './rmp.js';
import type { ApStartResult, HostOpResult, RmpUpdateRequest, SnpPlatform } from './snp-cpu.js';
import type { SparsePages } from '../../shared/sparse-pages.js';

export class SnpVmmHandle {
  readonly #platform: SnpPlatform;
  /** Guest memory as the host sees it (RMP-checked writes, ciphertext reads of guest pages). */
  readonly hostMemory: HostMemory;

  constructor(platform: SnpPlatform) {
    this.#platform = platform;
    const protectedPage = (page: bigint): string | undefined => {
      const e = platform.rmp.lookup(page);
      if (!e.assigned) return undefined;
      return e.asid === 0 ? 'RMP-protected (firmware page)' : `RMP-protected (assigned to ASID ${e.asid})`;
    };
    this.hostMemory = new HostMemory(platform.machine.memory, {
      refuseWrite: protectedPage,
      // Assigned pages read back as their ciphertext (memory-encryption.ts), as the guest's own C=0 reads do.
      read: (page) => (protectedPage(page) === undefined ? 'plain' : platform.hostRead(page, 4096)),
      // What the host writes is what DRAM holds there: the guest's key decrypts it if the page is assigned to it again.
      wrote: (page) => platform.noteHostWrite(page),
    });
  }

  get memoryBytes(): bigint { return this.#platform.memoryBytes; }
  get cBit(): number { return this.#platform.cBit; }
  get asid(): number { return this.#platform.asid; }
  get trace(): Trace { return this.#platform.trace; }

  rmpUpdate(spa: bigint, req: RmpUpdateRequest): HostOpResult { return this.#platform.rmpUpdate(spa, req); }
  psmash(spa: bigint): HostOpResult { return this.#platform.psmash(spa); }
  /** RMPREAD: a read-only copy of an RMP entry. */
  rmpEntry(spa: bigint): Readonly<RmpEntry> { return this.#platform.rmp.lookup(spa); }
  setNptPageSize(gpa: bigint, size: RmpPageSize): void { this.#platform.setNptPageSize(gpa, size); }
  /**
   * Runs `fn`, host operations on many pages (a PSC), letting the platform derive its page gate
   * once at the end instead of after each one: the same result, fewer updates. The VMM driver
   * runs every exit's answer in one (SnpVmm.handleExit); nested calls join the outer batch.
   */
  batch<T>(fn: () => T): T { return this.#platform.batchGateSync(fn); }
  nptPageSize(gpa: bigint): RmpPageSize { return this.#platform.nptPageSize(gpa); }

  /** vCPUs of the guest, and the one whose exit the VMM is handling now (its VMCB). */
  get vcpuCount(): number { return this.#platform.machine.vcpuCount; }
  get vcpuIndex(): number { return this.#platform.machine.vcpuIndex; }

  /**
   * Points vCPU `index`'s VMCB at the guest VMSA page `vmsaGpa` and runs it (VMRUN): what a
   * hypervisor does for an AP creation request. The hardware refuses a page the RMP does not
   * make this guest's VMSA (SnpPlatform.runApFromVmsa).
   */
  runApFromVmsa(index: number, vmsaGpa: bigint): ApStartResult { return this.#platform.runApFromVmsa(index, vmsaGpa); }

  /**
   * Stops running vCPU `index` (its VMCB's VMSA pointer cleared), as a hypervisor does for an AP
   * destroy request (SnpPlatform.stopVcpu); runApFromVmsa runs it again. Refusing to run a vCPU is
   * within any hypervisor's power (SNP does not protect availability).
   */
  stopVcpu(index: number): void { this.#platform.stopVcpu(index); }

  /** The GHCB MSR as the VMM sees it on VMGEXIT (VMCB GHCB GPA field), and its answer. */
  get ghcbMsr(): bigint { return this.#platform.ghcbMsr; }
  set ghcbMsr(value: bigint) { this.#platform.ghcbMsr = value; }

  /** SNP_LAUNCH_UPDATE of one pre-guest page: the firmware copies `source` (4 KiB) in and measures it. */
  launchUpdatePage(gpa: bigint, type: LaunchPageType, source?: Uint8Array, vmplPerms?: LaunchVmplPerms): HostOpResult {
    return this.#platform.launchUpdatePage(gpa, type, source, vmplPerms);
  }

  /**
   * KVM_SEV_SNP_LAUNCH_UPDATE over [gpa, gpa+bytes): RMPUPDATE of each page to pre-guest, then
   * SNP_LAUNCH_UPDATE of it as `type` from `source` (the pages back to back), in address order,
   * stopping at the first page that fails (SnpPlatform.launchRange).
   */
  launchRange(gpa: bigint, bytes: bigint, type: LaunchPageType, source?: Uint8Array | SparsePages, vmplPerms?: LaunchVmplPerms): HostOpResult & { at: bigint; op: 'rmpupdate' | 'launch-update' } {
    return this.#platform.launchRange(gpa, bytes, type, source, vmplPerms);
  }

  /**
   * SNP_GUEST_REQUEST: passes the guest's message (`request`, a page the host copied it into) to
   * the firmware, which writes its answer into `response`, a page of the host's. Returns the
   * firmware status. The host sees the messages only encrypted (guest-request.ts).
   */
  guestRequest(request: Uint8Array, response: Uint8Array): number { return this.#platform.guestRequest(request, response); }

  /** SNP_LAUNCH_FINISH: fixes the launch digest (hex). */
  launchFinish(): string { return this.#platform.launchFinish(); }

  /**
   * SNP_LAUNCH_UPDATE of the BSP's VMSA (page type VMSA): measured into the launch digest, then
   * the BSP starts from it. Refused once the launch finished (the VMSA is then encrypted).
   */
  launchUpdateVmsa(vmsa: Vmsa): void {
    this.#platform.launchUpdateVmsa(vmsa);
  }

  /**
   * Injects `vector` (with an error code for exceptions that have one, e.g. #VC's SW_EXITCODE)
   * before the vCPU runs again. An undeliverable event shuts the guest down at the next step.
   */
  inject(vector: number, errorCode?: bigint): void {
    if (!Number.isInteger(vector) || vector < 0 || vector > 255) throw new RangeError(`vector must be 0..255, not ${vector}`);
    this.#platform.injectFromHost(vector, errorCode);
  }
}
