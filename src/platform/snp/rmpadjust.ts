// RMPADJUST (F3 0F 01 FE): a guest sets the RMP permissions of a less privileged VMPL on one of
// its pages (APM Vol. 2 §15.36.7 VMPL permissions; tdx-snp-architecture.md B2). Linux's
// enforce_vmpl0()/svsm_setup_ca() use it to learn whether they run at VMPL0: adjusting VMPL1
// succeeds only there. Inputs: RAX = guest-virtual address, RCX[0] = page size, RDX[7:0] =
// target VMPL, RDX[15:8] = permission mask (b0 read, b1 write, b2 execute-user, b3
// execute-supervisor, b4 supervisor shadow stack), RDX[16] = VMSA. EAX: SUCCESS 0, FAIL_INPUT 1,
// FAIL_PERMISSION 2, FAIL_SIZEMISMATCH 6 (MS __rmpadjust documentation, Linux sev.h).
import type { GuestContext } from './access-check.js';
import { VMPL_PERM_ALL, type Rmp, type RmpPageSize } from './rmp.js';
import { resolveRmpInsnTarget, RMP_INSN_RC, type RmpInsnEarlyOutcome, type RmpInsnRc, type RmpInsnRequest } from './rmp-instruction.js';

export interface RmpadjustRegs { gva: bigint; size: RmpPageSize; targetVmpl: number; perms: number; vmsa: boolean }

export function decodeRmpadjustRegs(rax: bigint, rcx: bigint, rdx: bigint): RmpadjustRegs {
  return {
    gva: rax, size: (rcx & 1n) === 1n ? '2m' : '4k', targetVmpl: Number(rdx & 0xffn),
    perms: Number((rdx >> 8n) & 0xffn), vmsa: ((rdx >> 16n) & 1n) === 1n,
  };
}

/** Permission-mask bits that exist (b0..b4); the rest must be zero (U: FAIL_INPUT). */
const PERM_BITS = VMPL_PERM_ALL;

export type RmpadjustOutcome = { kind: 'result'; rc: RmpInsnRc; gpa?: bigint } | Exclude<RmpInsnEarlyOutcome, { kind: 'result' }>;

export function rmpadjust(rmp: Rmp, ctx: GuestContext, req: RmpInsnRequest & RmpadjustRegs): RmpadjustOutcome {
  const r = resolveRmpInsnTarget(rmp, ctx, req, 'RMPADJUST', () => {
    // A VMPL that does not exist, or perm bits that do not: bad input (U).
    if (req.targetVmpl > 3 || (req.perms & ~PERM_BITS) !== 0) return RMP_INSN_RC.FAIL_INPUT;
    // Only a less privileged (numerically higher) VMPL can be adjusted (§15.36.7). Decided from
    // the registers alone, before RAX is translated or the RMP looked at: a VMPL1 guest probing
    // for VMPL0 (Linux enforce_vmpl0/svsm_setup_ca) gets FAIL_PERMISSION, never a fault, whatever
    // the page (microsoft/verismo mem op_rmpadjust: 2M alignment -> Input, then
    // current VMPL >= target VMPL -> Perm, then the page walk and RmpEntry::rmpadjust).
    if (req.targetVmpl <= ctx.vmpl) return RMP_INSN_RC.FAIL_PERMISSION;
    return undefined;
  });
  if (r.kind !== 'target') return r;
  // Never beyond the permissions the current VMPL itself holds on the page (§15.36.7).
  if ((req.perms & ~r.entry.vmplPerms[ctx.vmpl]!) !== 0) return { kind: 'result', rc: RMP_INSN_RC.FAIL_PERMISSION };
  // The VMSA bit is honoured only at VMPL0 ("Ignored when the current VMPL != 0", MS docs).
  rmp.adjustPermissions(r.gpa, req.targetVmpl, req.perms, ctx.vmpl === 0 ? req.vmsa : r.entry.vmsa);
  return { kind: 'result', rc: RMP_INSN_RC.SUCCESS, gpa: r.gpa };
}
