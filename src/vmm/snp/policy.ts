// The one narrow interface through which an SNP VMM decides anything. The honest VMM
// implements it; an adversarial VMM can implement it (or wrap the honest one) to lie.
import type { RunOutcome } from '../../shared/outcome.js';
import type { SnpVmExit } from '../../platform/snp/snp-cpu.js';
import type { SnpVmmHandle } from '../../platform/snp/vmm-handle.js';
import type { PolicyStateHook } from '../run-vm.js';

export type VmmAnswer = 'resume' | RunOutcome;

export interface SnpVmmPolicy extends PolicyStateHook {
  /** #VMEXIT(NPF): fix the RMP/NPT (e.g. PSMASH) and resume, or give up. */
  onNpf(host: SnpVmmHandle, exit: Extract<SnpVmExit, { kind: 'npf' }>): VmmAnswer;
  /** VMGEXIT: read host.ghcbMsr (and the GHCB page it names), answer, resume. */
  onVmgexit(host: SnpVmmHandle, exit: Extract<SnpVmExit, { kind: 'vmgexit' }>): VmmAnswer;
  /** HLT with nothing to wake the vCPU. */
  onHlt(host: SnpVmmHandle, exit: Extract<SnpVmExit, { kind: 'hlt' }>): VmmAnswer;
}
