// INVD, WBINVD, WBNOINVD, MONITOR and MWAIT. Both platforms intercept them: a TD's raise #VE
// (tdx_td_dispatcher.c: td_generic_ve_exit for VMEXIT_REASON_INVD/WBINVD/MONITOR/MWAIT; Linux
// Documentation/arch/x86/tdx.rst lists them among the #VE-inducing instructions) and an SNP guest's
// #VC (KVM's init_vmcb sets the INVD, WBINVD, MONITOR and MWAIT intercepts). The emulator's CPU runs
// them as NOPs (QEMU: nothing to do for a cache it does not model), so the native side traps them
// before they run. What the CPU checks before any intercept is here, for both platforms (LOCK, a
// fault of the decode that comes first, is the native side's #UD: Machine::OnCode).
import type { CacheOrWaitExit } from './exits.js';
import type { Vcpu } from './vcpu.js';

/**
 * The exception the CPU raises before the instruction can be intercepted, if any. Faults based on
 * privilege level and #UD take priority over VM exits (Intel SDM Vol. 3C §26.1.1; AMD APM Vol. 2
 * §15.7 checks exceptions before instruction intercepts likewise):
 * - INVD, WBINVD, WBNOINVD at CPL > 0: #GP(0) (SDM Vol. 2A "INVD", Vol. 2B "WBINVD", "WBNOINVD");
 * - MONITOR, MWAIT at CPL > 0: #UD (SDM Vol. 2B "MONITOR", "MWAIT": "If current privilege level
 *   is not 0"; the per-vendor CPL 3 enables, MSR_MISC_FEATURE_ENABLES ring3mwait and AMD's
 *   MonMwaitUserEn, are off).
 */
export function cacheOrWaitFault(vcpu: Vcpu, exit: CacheOrWaitExit): 'ud' | 'gp' | undefined {
  if (vcpu.cpl() === 0) return undefined;
  return exit.instruction === 'monitor' || exit.instruction === 'mwait' ? 'ud' : 'gp';
}
