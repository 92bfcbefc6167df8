// Everything the untrusted VMM of a TD can do, and nothing more (TDX Module Base Architecture
// Spec ch. "TD Private Memory Management"; Linux arch/x86/kvm/vmx/tdx.c):
// - SEAMCALLs (the inherited SeamcallHost methods): the only way private memory changes from
//   outside the TD. PAGE.ADD copies a source page in before MR.FINALIZE; after that the host can
//   only add zeroed PENDING pages (AUG) that the guest must accept.
// - its own shared EPT (MapGPA bookkeeping) and shared memory, through `hostMemory`, which
//   refuses any page the SEPT holds for the TD (private memory is the TD's, encrypted and
//   integrity-protected with its key);
// - its answer to a TDG.VP.VMCALL, and interrupts: a TDX VMM can only post interrupts (vectors
//   32..255, posted-interrupt descriptor); exceptions cannot be injected into a TD.
// There is deliberately no method that writes private memory or touches the vCPU directly.
import { HostMemory } from '../host-memory.js';
import type { Trace } from '../../shared/trace.js';
import { SeamcallHost } from './seamcall.js';
import { septLockKey, type SeptLevel } from './sept-states.js';
import type { TdModule, VmcallRegs } from './td-module.js';
import { TD_RESET_RIP, initTdVcpu } from './vp-init.js';
import { MsrIndex } from './td-msr.js';

const FIRST_INTERRUPT_VECTOR = 32;

export class TdxVmmHandle extends SeamcallHost {
  readonly #td: TdModule;
  /** Guest memory as the host sees it: shared pages only. */
  readonly hostMemory: HostMemory;

  constructor(td: TdModule) {
    super(td);
    this.#td = td;
    const refuse = (page: bigint): string | undefined => (td.isPrivatePage(page) ? 'the page is TD-private memory' : undefined);
    this.hostMemory = new HostMemory(td.machine.memory, {
      refuseWrite: refuse,
      read: (page) => refuse(page) ?? 'plain',
    });
  }

  get memoryBytes(): bigint { return this.#td.machine.memoryBytes; }
  get gpaWidth(): 48 | 52 { return this.#td.config.gpaWidth; }
  get sharedBit(): bigint { return this.#td.sharedBit; }
  get trace(): Trace { return this.#td.trace; }

  /**
   * The shared EPT is the VMM's own (no SEAMCALL): map/unmap shared GPAs (shared bit stripped).
   * It only drives the page gate's shared space.
   */
  setShared(gpa: bigint, size: bigint, mapped: boolean): void {
    const td = this.#td;
    const base = gpa & ~td.sharedBit;
    if (base >= td.machine.memoryBytes) return;
    const length = base + size > td.machine.memoryBytes ? td.machine.memoryBytes - base : size;
    td.machine.gate.set('shared', base, length, mapped ? 'readwrite' : 'none');
    td.trace.record('vmm', 'shared-ept', { gpa: base, size: length, mapped });
  }

  /** Whether the shared EPT maps the page of `gpa` (shared bit ignored). */
  isSharedMapped(gpa: bigint): boolean {
    const base = gpa & ~this.#td.sharedBit;
    return base < this.#td.machine.memoryBytes && this.#td.machine.gate.get('shared', base) !== 'none';
  }

  /**
   * Runs `fn`, host operations on many pages (a MapGPA's BLOCK, TRACK and REMOVE of each page),
   * letting the module update its page gate once at the end instead of after each one: the same
   * result, fewer updates. The VMM driver runs every exit's answer in one (TdxVmm.handleExit).
   */
  batch<T>(fn: () => T): T {
    return this.#td.sept.batchGate(fn);
  }

  /** The VMM's answer to the TDG.VP.VMCALL in flight (only exposed registers reach the guest). */
  completeVmcall(out: Partial<VmcallRegs>): void {
    this.#td.completeVmcall(out);
  }

  /**
   * Posts an interrupt (vector 32..255) into the posted-interrupt descriptor's PIR. It is
   * delivered through the guest IDT when the guest has RFLAGS.IF set, before the vCPU runs again,
   * the highest pending vector first; until then it stays pending, and posting it again adds
   * nothing (Intel SDM Vol. 3C §29.6; TdModule.deliverPostedInterrupt).
   */
  injectInterrupt(vector: number): void {
    checkInterruptVector(vector);
    this.#td.postInterrupt(vector);
    this.#td.trace.record('vmm', 'inject-interrupt', { vector });
  }

  /** Whether an interrupt this VMM posted is still waiting for the guest (its own descriptor: KVM kvm_vcpu_has_events). */
  get interruptPending(): boolean {
    return this.#td.interruptPosted;
  }

  /**
   * An interrupt pending on the host CPU while the guest runs an interruptible TDCALL, whatever
   * the guest's RFLAGS.IF (IA32_INTR_PENDING, helpers.h is_interrupt_pending_guest_side): a 2 MiB
   * TDG.MEM.PAGE.ACCEPT stops after `afterChunks` 4 KiB chunks, a TDG.MR.REPORT at its one
   * interruption point, and the guest re-executes it.
   * The VMM posts `vector` to the guest, which takes it when its RFLAGS.IF allows.
   */
  postInterrupt(vector: number, afterChunks: number): void {
    checkInterruptVector(vector);
    this.#td.pendingInterrupt = { vector, afterChunks };
  }

  /** Models a concurrent SEAMCALL on another host CPU holding a SEPT entry lock (the guest sees OPERAND_BUSY). */
  lockEntry(gpa: bigint, level: SeptLevel, locked = true): void {
    const key = septLockKey(level, gpa);
    if (locked) this.#td.hostLocks.add(key);
    else this.#td.hostLocks.delete(key);
  }

  /**
   * TDH.VP.INIT: the module puts the vCPU in its architectural initial state at the reset vector
   * 0xFFFFFFF0 (vp-init.ts); the VMM chooses only RCX (KVM passes the TD HOB's GPA). Once per
   * vCPU, before MR.FINALIZE; every vCPU starts at the same reset vector, told apart by RSI.
   */
  vpInit(initRcx: bigint, vcpuIndex = 0): void {
    const td = this.#td;
    const machine = td.machine;
    if (td.finalized) throw new Error('TDH.VP.INIT after MR.FINALIZE is not modelled');
    if (!Number.isInteger(vcpuIndex) || vcpuIndex < 0 || vcpuIndex >= machine.vcpuCount) throw new RangeError(`TDH.VP.INIT: no vCPU ${vcpuIndex}`);
    if (td.vcpusInitialized.has(vcpuIndex)) throw new Error('TDH.VP.INIT: the vCPU is already initialized (TDX_VCPU_STATE_INCORRECT)');
    const running = machine.vcpuIndex;
    machine.switchVcpu(vcpuIndex);
    initTdVcpu(machine, { gpaWidth: td.config.gpaWidth, initRcx, vcpuIndex });
    machine.switchVcpu(running);
    // td_vmcs_init.c: the guest IA32_PERF_GLOBAL_CTRL a TD vCPU starts with (a VMCS guest field,
    // loaded at TD entry), 0xFF; the TD reads it natively only with ATTRIBUTES.PERFMON (td-msr.ts).
    td.msrValuesOf(vcpuIndex).set(MsrIndex.IA32_PERF_GLOBAL_CTRL, PERF_GLOBAL_CTRL_INIT);
    td.vcpusInitialized.add(vcpuIndex);
    td.trace.record('vmm', 'vp-init', machine.vcpuCount > 1 ? { vcpu: vcpuIndex, rcx: initRcx, rip: TD_RESET_RIP } : { rcx: initRcx, rip: TD_RESET_RIP });
  }
}

/** td_vmcs_init.c: VMX_GUEST_IA32_PERF_GLOBAL_CONTROL_FULL_ENCODE = 0xFF. */
const PERF_GLOBAL_CTRL_INIT = 0xffn;

function checkInterruptVector(vector: number): void {
  if (!Number.isInteger(vector) || vector < FIRST_INTERRUPT_VECTOR || vector > 255) {
    throw new RangeError(`a TDX VMM can only post interrupts 32..255, not ${vector}`);
  }
}
