// MOV to or from a debug register (MOV r, DRn 0F 21 /r; MOV DRn, r 0F 23 /r). An SEV-ES/SNP guest
// without DebugSwap in SEV_FEATURES has DR7 reads and writes intercepted (KVM sev.c
// sev_es_init_vmcb: set_dr_intercepts INTERCEPT_DR7_READ/WRITE, the others cleared), which ours
// lacks; a TD's MOV DR runs natively (the TDX module's PROCBASED_CTLS_INIT, vmcs_defs.h, leaves
// MOV-DR exiting, bit 23, clear, and tdh_sys_init.c fixes it there). The native side ends the run
// before an intercepted one (Machine.debugRegisterIntercepts); what the CPU checks before the
// intercept is here (LOCK, a fault of the decode that comes first, is the native side's #UD).
import { CR4_DE } from './registers.js';
import type { MovDrExit } from './exits.js';
import type { Vcpu } from './vcpu.js';

/**
 * The exception the CPU raises before a MOV DR can be intercepted, if any. Privilege-level and
 * invalid-opcode faults come before instruction intercepts (AMD APM Vol. 2 §15.9: "after simple
 * exceptions (such as #GP—when CPL is incorrect, or #UD) have been checked") and VM exits (Intel
 * SDM Vol. 3C §26.1.1), in the order the SDM lists them (Vol. 2B "MOV—Move to/from Debug
 * Registers", Protected Mode Exceptions; QEMU's translate.c checks CPL before helper_get_dr/set_dr):
 * - CPL > 0: #GP(0);
 * - DR4 or DR5 with CR4.DE set: #UD (without it they alias DR6 and DR7).
 * Not modelled: the #DB of DR7.GD (general detect), which the emulator does not raise either, and
 * the #GP(0) for a write of bits 63:32 of DR6/DR7, which depends on the operand's value and so
 * comes after the intercept (the guest's #VC handler raises it: Linux vc_handle_dr7_write).
 */
export function movDrFault(vcpu: Vcpu, exit: MovDrExit): 'gp' | 'ud' | undefined {
  if (vcpu.cpl() !== 0) return 'gp';
  if ((exit.dr === 4 || exit.dr === 5) && (vcpu.readSpecial('cr4') & CR4_DE) !== 0n) return 'ud';
  return undefined;
}
