// Every trace event type with one line on what it records: what `--trace-filter help` lists (like
// QEMU's `-trace help`) and what `--trace-filter` accepts. test/unit/trace-event-types.test.ts boots
// both platforms and checks that every type they record is here and that docs/trace-schema.md
// names each one.
import type { TraceEvent } from './trace.js';

export interface TraceEventType {
  source: TraceEvent['source'];
  type: string;
  what: string;
}

const hw = (type: string, what: string): TraceEventType => ({ source: 'hw', type, what });
const vmm = (type: string, what: string): TraceEventType => ({ source: 'vmm', type, what });

export const TRACE_EVENT_TYPES: readonly TraceEventType[] = [
  // The trusted TDX module model (src/platform/tdx/).
  hw('tdcall', 'TDX: a TDCALL by the guest (leaf, registers, status), e.g. TDG.MEM.PAGE.ACCEPT'),
  hw('seamcall', 'TDX: a SEAMCALL by the VMM (TDH.MEM.PAGE.AUG, BLOCK, REMOVE, ...) and its status'),
  hw('accept-interrupted', 'TDX: a 2M PAGE.ACCEPT stopped by a pending interrupt, to be resumed'),
  hw('report-interrupted', 'TDX: a TDG.MR.REPORT stopped at its interruption point by a pending host interrupt, to be re-executed'),
  hw('accept-resumed-complete', 'TDX: a resumed 2M PAGE.ACCEPT completed'),
  hw('td-exit', 'TDX: an exit from the TD to the VMM (reason, GPA)'),
  hw('ve-injected', 'TDX: a #VE delivered to the guest (exit reason, GPA, RIP)'),
  hw('df-injected', 'TDX: a #DF because a #VE arrived while the VE info was still valid'),
  hw('exception-injected', 'an exception delivered to the guest (vector, error code, RIP)'),
  hw('injection-failed', 'an exception that could not be delivered (the cause of a triple fault)'),
  hw('gate-resync', 'TDX: the page gate re-read a SEPT mapping after a fault'),
  hw('vmcall-complete', 'TDX: a TDG.VP.VMCALL returned to the guest'),
  hw('cpuid', 'TDX: a CPUID the module answered or turned into a #VE'),
  hw('rdmsr', 'an RDMSR the TDX module or the SNP CPU handled'),
  hw('wrmsr', 'a WRMSR the TDX module or the SNP CPU handled'),
  hw('mrtd', 'TDX: the build-time measurement (MRTD) when the TD is finalized'),
  hw('td-report', 'TDX: a TDG.MR.REPORT wrote a TDREPORT (its GPA, the REPORTDATA GPA, TEE_INFO_HASH)'),
  hw('rtmr-extended', 'TDX: a TDG.MR.RTMR.EXTEND by the guest (RTMR index, GPA of the data, the new RTMR value)'),
  hw('shutdown', 'the vCPU shut down (triple fault)'),
  hw('rdrand', 'an RDRAND the CPU model answered (the value follows the run\'s seed)'),
  hw('rdseed', 'an RDSEED the CPU model answered (the value follows the run\'s seed)'),
  hw('foreign-read', 'the guest read private content it did not put there itself in the page\'s lifetime (gpa, rip, instruction: the content watch, src/platform/foreign-content.ts)'),
  // The trusted AMD CPU and firmware model (src/platform/snp/).
  hw('pvalidate', 'SNP: a PVALIDATE by the guest (gpa, size, validate, rc, cf)'),
  hw('rmpadjust', 'SNP: an RMPADJUST by the guest (VMPL permissions)'),
  hw('rmpupdate', 'SNP: an RMPUPDATE by the host (assigned, private/shared; with pages, of a launch range)'),
  hw('psmash', 'SNP: a PSMASH splitting a 2M RMP entry into 4K ones'),
  hw('npf', 'SNP: a nested page fault exit (GPA, error code)'),
  hw('vmgexit', 'SNP: a VMGEXIT by the guest'),
  hw('inject-vc', 'SNP: a #VC delivered to the guest'),
  hw('inject', 'SNP: another exception delivered to the guest'),
  hw('launch-update', 'SNP: SNP_LAUNCH_UPDATE measured a page (with pages, a launch range)'),
  hw('launch-vmsa', 'SNP: the VMSA was measured'),
  hw('ap-vmrun', 'SNP: VMRUN of an AP from the VMSA page the guest created (vCPU, VMSA GPA, or why refused)'),
  hw('launch-finish', 'SNP: SNP_LAUNCH_FINISH (the launch digest)'),
  hw('guest-message', 'SNP: SNP_GUEST_REQUEST, a guest message the firmware answered or refused (status, VMPCK, its message count)'),
  hw('launch-cpuid-rejected', 'SNP: the firmware rejected a CPUID page entry at launch'),
  hw('shared-read-ciphertext', 'SNP: a read of a private page through a shared mapping (ciphertext)'),
  // The untrusted VMM (src/vmm/) and the fuzzer's adversary (src/fuzz/adversary.ts).
  vmm('map-gpa', 'TDX: the guest\'s MapGPA (private<->shared conversion) as the VMM carried it out'),
  vmm('psc', 'SNP: a page-state change (private<->shared) as the VMM carried it out'),
  vmm('shared-ept', 'TDX: the VMM mapped or unmapped a shared page'),
  vmm('npt-page-size', 'SNP: the page size the VMM backs a range with'),
  vmm('npf-handled', 'SNP: the VMM handled a nested page fault'),
  vmm('io', 'port I/O the VMM emulated (the console)'),
  vmm('cpuid', 'a CPUID the VMM answered'),
  vmm('ghcb-msr', 'SNP: a GHCB MSR-protocol request'),
  vmm('ghcb-exit', 'SNP: a full GHCB exit'),
  vmm('ghcb-unmapped', 'SNP: a VMGEXIT whose GHCB GPA is 0 or not guest RAM, resumed unanswered as KVM does'),
  vmm('ghcb-answer-lost', 'SNP: the VMM\'s answer in a GHCB that is not in shared memory did not reach the guest (gpa, the answer, why); the guest resumes, as under KVM'),
  vmm('ap-creation', 'SNP: an AP Creation request (request, APIC ID, VMSA GPA)'),
  vmm('ap-vmsa-no-memslot', 'SNP: an AP Creation whose VMSA GPA is not guest RAM: acknowledged, the target left stopped, as KVM does (vCPU, VMSA GPA)'),
  vmm('snp-guest-request', 'SNP: a guest request the VMM passed to the firmware (request and response GPAs, firmware status)'),
  vmm('guest-response-lost', 'SNP: a guest request\'s response or certificate table the VMM wrote into a private page (lost)'),
  vmm('guest-request', 'a guest request the VMM saw (the fuzzer keys on it)'),
  vmm('guest-release', 'the guest asked to make memory shared'),
  vmm('guest-reclaim', 'the guest asked to make memory private again'),
  vmm('vmm-accept-assist', 'TDX: the VMM added (AUG) a page the guest is about to accept'),
  vmm('inject-interrupt', 'the VMM posted an interrupt'),
  vmm('vp-init', 'the VMM set up the vCPU'),
  vmm('terminate', 'the guest asked to terminate'),
  vmm('vmm-decision', 'a decision of a VMM policy'),
  vmm('adversary', 'the hostile VMM deviated from the honest one (fuzzing)'),
  vmm('state-change-refused', 'the VMM answered a page-state request with a failure; whether the hardware made the change anyway (fuzzing harness)'),
  vmm('exit-after-refusal', "the guest's first exit after a refused, unmade page-state change (fuzzing harness)"),
  vmm('outcome', 'how the run ended'),
  // What the guest announced on its console.
  { source: 'guest', type: 'stage', what: 'the guest printed "@mv stage X"' },
];

export const TRACE_SOURCES: readonly TraceEvent['source'][] = ['hw', 'vmm', 'guest'];
