// RDPMC (0F 33). Both platforms intercept it: a TD without ATTRIBUTES.PERFMON has RDPMC exiting
// set (td_vmcs_init.c: rdpmc_exiting = ~attributes.perfmon) and the module answers #GP(0)
// (td_other_exits.c td_rdpmc_exit); an SNP guest takes #VC SVM_EXIT_RDPMC (KVM svm.c init_vmcb sets
// INTERCEPT_RDPMC). The emulator's CPU has no counters and raises #UD at any CPL (Unicorn
// misc_helper.c helper_rdpmc, whose CR4.PCE test is inverted besides), so the native side traps it
// before it runs. What the CPU checks before any intercept is here, for both platforms (LOCK, a
// fault of the decode that comes first, is the native side's #UD: Machine::OnCode).
import { CR4_PCE } from './registers.js';
import type { Vcpu } from './vcpu.js';

/**
 * The exception the CPU raises before RDPMC can be intercepted, if any. Invalid-opcode and
 * privilege-level faults come before VM exits (Intel SDM Vol. 3C §26.1.1) and before instruction
 * intercepts (AMD APM Vol. 2 §15.9: "after simple exceptions (such as #GP—when CPL is incorrect,
 * or #UD) have been checked"):
 * - CPL > 0 with CR4.PCE clear: #GP(0) (SDM Vol. 2B RDPMC; APM Vol. 3 RDPMC).
 * The other #GP(0), an ECX that names no counter, depends on the operand's value, so it comes
 * after the intercept (same SDM section; APM §15.9: "before exceptions ... based on specific
 * operand values"): the TDX module or the VMM decide it, and the CPU models no counter range.
 */
export function rdpmcFault(vcpu: Vcpu): 'gp' | undefined {
  if (vcpu.cpl() !== 0 && (vcpu.readSpecial('cr4') & CR4_PCE) === 0n) return 'gp';
  return undefined;
}
