// Issue 9 row 14: RMPADJUST (F3 0F 01 FE) is modelled, not #UD; Linux's enforce_vmpl0() and
// svsm_setup_ca() use it to learn whether they run at VMPL0 (adjusting VMPL1 succeeds only there).
import { describe, expect, it } from 'vitest';
import { RFLAGS } from '../../../src/cpu/registers.js';
import { NPF_BITS } from '../../../src/platform/snp/access-check.js';
import { RMP_INSN_RC } from '../../../src/platform/snp/rmp-instruction.js';
import { snpCpuid } from '../../../src/platform/snp/sev-status.js';
import { snpGuest } from '../../helpers/snp-guest.js';

const RMPADJUST = '.byte 0xf3,0x0f,0x01,0xfe';
const T = 0x400000n;

function rmpadjustGuest(va: bigint, size2m: boolean, targetVmpl: number, perms: number, vmsa = false) {
  const rdx = BigInt(targetVmpl) | (BigInt(perms) << 8n) | (vmsa ? 1n << 16n : 0n);
  return `
  mov rax, 0x${va.toString(16)}
  mov ecx, ${size2m ? 1 : 0}
  mov rdx, 0x${rdx.toString(16)}
  ${RMPADJUST}
  pushfq
  pop rbx
  mov r8, rax
  hlt`;
}

function ownValidated(g: ReturnType<typeof snpGuest>, size: '4k' | '2m' = '4k') {
  g.platform.rmpUpdate(T, { assigned: true, pageSize: size, gpa: T, asid: g.platform.asid });
  g.platform.rmp.setValidated(T, true);
  if (size === '2m') g.platform.setNptPageSize(T, '2m');
}

describe('RMPADJUST', () => {
  it("at VMPL0 on the guest's own page (Linux enforce_vmpl0: target VMPL1): SUCCESS, no #UD", () => {
    const g = snpGuest(rmpadjustGuest(T, false, 1, 0x3));
    ownValidated(g);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r13).toBe(0n); // no exception handler ran
    expect(g.vm.vcpu.regs.r8).toBe(BigInt(RMP_INSN_RC.SUCCESS));
    expect((g.vm.vcpu.regs.rbx & RFLAGS.ZF) !== 0n).toBe(true);
    expect(g.platform.rmp.lookup(T).vmplPerms).toEqual([0x1f, 0x3, 0, 0]);
    expect(g.trace.ofType('rmpadjust').at(-1)).toMatchObject({ gpa: T, rc: 0, targetVmpl: 1, perms: 3 });
  });

  it('at VMPL0, grants VMPL1 every permission, supervisor shadow stack (b4) included: VMPL0 holds all five on its pages', () => {
    // verismo (Microsoft's SNP model after APM Vol. 2 §15.36.7): rmp_perm_init gives VMPL0 the
    // full set {Read, Write, ExeU, ExeS, Shadow} on assignment, and RmpEntry::rmpadjust grants a
    // subset of the caller's own. With VMPL0 at 0xF this was FAIL_PERMISSION.
    const g = snpGuest(rmpadjustGuest(T, false, 1, 0x1f));
    ownValidated(g);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r8).toBe(BigInt(RMP_INSN_RC.SUCCESS));
    expect(g.platform.rmp.lookup(T).vmplPerms).toEqual([0x1f, 0x1f, 0, 0]);
  });

  it('the VMSA bit is set at VMPL0', () => {
    const g = snpGuest(rmpadjustGuest(T, false, 1, 0, true));
    ownValidated(g);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.platform.rmp.lookup(T)).toMatchObject({ vmsa: true, vmplPerms: [0x1f, 0, 0, 0] });
  });

  it('a page the guest owns but has not validated: #VC 0x404 with CR2 = RAX, nothing changes (APM Vol. 3 RMPADJUST)', () => {
    const g = snpGuest(rmpadjustGuest(T, false, 1, 0x3), { vcHandler: 'pop r15\nmov r14, cr2\nmov r13, 29\nhlt' });
    g.platform.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: g.platform.asid });
    expect(g.platform.rmp.lookup(T).validated).toBe(false);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const r = g.vm.vcpu.regs;
    expect([r.r13, r.r15, r.r14]).toEqual([29n, 0x404n, T]);
    expect(g.platform.rmp.lookup(T).vmplPerms).toEqual([0x1f, 0, 0, 0]);
    // Validated, the same instruction succeeds.
    const ok = snpGuest(rmpadjustGuest(T, false, 1, 0x3));
    ownValidated(ok);
    expect(ok.run()).toMatchObject({ outcome: 'done' });
    expect(ok.vm.vcpu.regs.r8).toBe(0n);
  });

  // What a hypervisor's RMPUPDATE or PSMASH can do to the page a guest makes its VMSA (the stub
  // kernel's snp_set_vmsa_failed, guest/DEFENCES.md): each change is an NPF to the hypervisor or
  // a #VC in the guest, never a return code; the codes depend only on RAX/RCX/RDX and the VMPL.
  it('a page the hypervisor took back (RMPUPDATE to hypervisor-owned): NPF, then #VC 0x404 once it is assigned again, no return code', () => {
    const g = snpGuest(rmpadjustGuest(T, false, 1, 0, true), { vcHandler: 'pop r15\nmov r14, cr2\nmov r13, 29\nhlt' });
    ownValidated(g);
    g.platform.rmpUpdate(T, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.trace.ofType('npf')).toMatchObject([{ cause: 'rmpadjust', gpa: T, reason: 'guest-owned' }]);
    // The honest VMM answers the NPF by assigning the page again, which leaves it not validated.
    expect(g.trace.ofType('rmpadjust')).toMatchObject([{ npf: 'guest-owned' }, { fault: 29 }]);
    expect(g.trace.ofType('rmpadjust').some((e) => e.rc !== undefined)).toBe(false);
    const r = g.vm.vcpu.regs;
    expect([r.r13, r.r15, r.r14]).toEqual([29n, 0x404n, T]);
    expect(g.platform.rmp.lookup(T).vmsa).toBe(false);
  });

  it('target VMPL0 from VMPL0 (not less privileged): FAIL_PERMISSION, nothing changes', () => {
    const g = snpGuest(rmpadjustGuest(T, false, 0, 0x1));
    ownValidated(g);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r8).toBe(BigInt(RMP_INSN_RC.FAIL_PERMISSION));
    expect(g.platform.rmp.lookup(T).vmplPerms).toEqual([0x1f, 0, 0, 0]);
  });

  it('a VMPL that does not exist: FAIL_INPUT', () => {
    const g = snpGuest(rmpadjustGuest(T, false, 4, 0x1));
    ownValidated(g);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r8).toBe(BigInt(RMP_INSN_RC.FAIL_INPUT));
  });

  it('2M request on 4K RMP entries: FAIL_SIZEMISMATCH', () => {
    const g = snpGuest(rmpadjustGuest(T, true, 1, 0x1));
    ownValidated(g);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r8).toBe(BigInt(RMP_INSN_RC.FAIL_SIZEMISMATCH));
  });

  it('4K request inside a 2M RMP entry: NPF with SIZEM, the VMM PSMASHes, RMPADJUST re-executes', () => {
    const g = snpGuest(rmpadjustGuest(T + 0x1000n, false, 1, 0x1));
    ownValidated(g, '2m');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const npf = g.trace.ofType('npf')[0]!;
    expect(npf).toMatchObject({ cause: 'rmpadjust', reason: 'size-mismatch' });
    expect((npf.errorCode as bigint) & NPF_BITS.sizeMismatch).toBe(NPF_BITS.sizeMismatch);
    expect(g.vm.vcpu.regs.r8).toBe(0n);
    expect(g.platform.rmp.lookup(T + 0x1000n)).toMatchObject({ pageSize: '4k', vmplPerms: [0x1f, 0x1, 0, 0] });
  });

  describe('at VMPL1 (under an SVSM)', () => {
    /** The VMPL0 software would have granted VMPL1 these pages; the test grants them directly. */
    function atVmpl1(source: string) {
      const g = snpGuest(source, { vmpl: 1 });
      for (const key of g.platform.rmp.regionKeys()) {
        const assigned: bigint[] = [];
        (g.platform.rmp.smallEntries(Number(key)) ?? []).forEach((e, index) => { if (e?.assigned) assigned.push((key << 21n) + BigInt(index) * 0x1000n); });
        for (const gpa of assigned) g.platform.rmp.adjustPermissions(gpa, 1, 0xf, false);
        g.platform.setNptPageSize(key << 21n, '4k'); // resyncs the gate
      }
      return g;
    }

    it('adjusting VMPL1 fails with FAIL_PERMISSION (what enforce_vmpl0 turns into GHCB_TERM_NOT_VMPL0)', () => {
      const g = atVmpl1(rmpadjustGuest(T, false, 1, 0x1));
      ownValidated(g);
      g.platform.rmp.adjustPermissions(T, 1, 0xf, false);
      expect(g.run()).toMatchObject({ outcome: 'done' });
      expect(g.vm.vcpu.regs.r8).toBe(BigInt(RMP_INSN_RC.FAIL_PERMISSION));
    });

    it('VMPL2 gets at most what VMPL1 holds', () => {
      const more = atVmpl1(rmpadjustGuest(T, false, 2, 0x3));
      ownValidated(more);
      more.platform.rmp.adjustPermissions(T, 1, 0x1, false);
      expect(more.run()).toMatchObject({ outcome: 'done' });
      expect(more.vm.vcpu.regs.r8).toBe(BigInt(RMP_INSN_RC.FAIL_PERMISSION));
      const same = atVmpl1(rmpadjustGuest(T, false, 2, 0x1, true));
      ownValidated(same);
      same.platform.rmp.adjustPermissions(T, 1, 0x1, false);
      expect(same.run()).toMatchObject({ outcome: 'done' });
      expect(same.vm.vcpu.regs.r8).toBe(0n);
      expect(same.platform.rmp.lookup(T)).toMatchObject({ vmplPerms: [0x1f, 0x1, 0x1, 0], vmsa: false }); // VMSA ignored below VMPL0
    });
  });
});

// RMPQUERY (F3 0F 01 FD; APM Vol. 3) exists only where CPUID Fn8000_001F_EAX bit 6 (RMPQUERY) is
// set (the bit as AMD's SEV firmware for Genoa names it: AMD-ASPFW cpuid_lookup.h
// FN8000001F_EAX_RMPQUERY (1 << 6); EDK2 and NetBSD define the same). The CPU this model claims
// answers EAX 0x3b there (sev-status.ts: SME, SEV, SEV-ES, SNP, VMPL), bit 6 clear, so on it the
// opcode is undefined: #UD at the instruction, nothing written (rFLAGS, RCX, RDX are its outputs).
describe('RMPQUERY on a CPU without it', () => {
  it('CPUID Fn8000_001F EAX[6] is clear, and RMPQUERY raises #UD with RIP at it; RAX, RCX, RDX, RFLAGS as they were', () => {
    expect(snpCpuid(0x8000001f, 0, 51).eax & (1 << 6)).toBe(0);
    const g = snpGuest(`
      mov rax, 0x${T.toString(16)}
      mov ecx, 0x1234
      mov edx, 1
      xor r8d, r8d          # ZF=1, CF=0
      lea r11, [rip + 1f]
    1:
      .byte 0xf3,0x0f,0x01,0xfd   # rmpquery
      mov r9, 0x77
      hlt`, { udHandler: 'mov r13, 6\nmov r15, [rsp]\nmov r12, [rsp+16]\nhlt' });
    ownValidated(g);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const r = g.vm.vcpu.regs;
    expect([r.r13, r.r15]).toEqual([6n, r.r11]);  // #UD, the frame's RIP at RMPQUERY
    expect(r.r9).toBe(0n);                         // the instruction after it never ran
    expect([r.rax, r.rcx, r.rdx]).toEqual([T, 0x1234n, 1n]);
    expect(r.r12 & (RFLAGS.ZF | RFLAGS.CF)).toBe(RFLAGS.ZF);  // the frame's RFLAGS: the XOR's, untouched
    expect(g.trace.ofType('inject')).toEqual([expect.objectContaining({ vector: 6, rip: r.r11 })]);
  });
});
