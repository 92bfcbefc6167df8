// What an SEV-SNP guest sees when it executes one of the SVM instructions itself (0F 01 D8-DF:
// VMRUN, VMMCALL, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA).
//
// - The instruction's own exceptions come first: #UD outside protected mode, #GP(0) at CPL > 0.
//   Intercepts are checked after such simple exceptions and before those of memory accesses and
//   operand values (APM Vol. 2 "Instruction Intercepts", §15.7; its text was not retrievable
//   here), so RAX is never looked at. What was read agrees: KVM's svm_recalc_instruction_intercepts
//   says it of the hardware ("a #GP on these instructions (e.g. due to CPL > 0) could be injected
//   by hardware before the instruction is intercepted"), KVM's emulator marks all seven Prot | Priv
//   (arch/x86/kvm/emulate.c group7_rm3), and QEMU's translator checks protected mode and CPL 0
//   before its intercept check. VMMCALL has neither check (QEMU commit 5d2238896af6: "The spec is
//   intentionally loose for VMMCALL"): it is intercepted at any CPL.
//   Their #UD for EFER.SVME = 0 never applies: an SNP guest runs with EFER.SVME = 1, which VMRUN
//   checks in its VMSA (vmsa.ts), and a guest that cleared it would not survive its next VMRUN.
//   (The emulator's CPU has no SVM, so its EFER cannot hold the bit: the platform does not ask it.)
// - Then the intercept. KVM sets all eight (arch/x86/kvm/svm/svm.c init_vmcb; VMRUN's is
//   mandatory, APM Vol. 2 §15.5.1), and sev_es_init_vmcb clears none of them. In an SEV-ES/SNP
//   guest an intercepted instruction that is not an automatic exit raises #VC with the exit code
//   as its error code, RIP at the instruction (APM Vol. 2 §15.35.5 "#VC Exception"); the guest
//   forwards VMMCALL through the GHCB (GHCB spec NAE event 0x81; Linux vc_handle_vmmcall,
//   vc_check_opcode_bytes: 0F 01 D9) and has no handler for the others.
//   Not every KVM keeps VMLOAD/VMSAVE/STGI/CLGI intercepted: with vls/vgif, KVMs before the 2026
//   "Intercept instructions that #UD if EFER.SVME=0" change clear them (newer ones keep them while
//   KVM's EFER lacks SVME, which for an SEV-ES guest is always: efer_trap clears it), and what the
//   CPU does with them un-intercepted inside an SEV-ES guest is not confirmed here.
import type { SvmInstruction } from '../../cpu/exits.js';

/** SVM exit codes (Linux arch/x86/include/uapi/asm/svm.h SVM_EXIT_VMRUN .. SVM_EXIT_SKINIT, SVM_EXIT_INVLPGA). */
export const SVM_INSTRUCTION_EXIT: Readonly<Record<SvmInstruction, number>> = {
  vmrun: 0x80, vmmcall: 0x81, vmload: 0x82, vmsave: 0x83, stgi: 0x84, clgi: 0x85, skinit: 0x86, invlpga: 0x7a,
};

export type SvmInstructionOutcome = { kind: 'ud' } | { kind: 'gp' } | { kind: 'vc'; exitCode: number };

export interface SvmInstructionContext {
  /** CR0.PE. */
  protectedMode: boolean;
  cpl: number;
}

export function svmInstruction(insn: SvmInstruction, ctx: SvmInstructionContext): SvmInstructionOutcome {
  if (insn !== 'vmmcall') {
    if (!ctx.protectedMode) return { kind: 'ud' };
    if (ctx.cpl !== 0) return { kind: 'gp' };
  }
  return { kind: 'vc', exitCode: SVM_INSTRUCTION_EXIT[insn] };
}
