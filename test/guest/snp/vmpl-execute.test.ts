// A VMPL's execute permissions on its own pages (AMD APM Vol. 2 §15.36.7: Execute-User allows
// execution at CPL 3, Execute-Supervisor at CPL 0-2; virtee/sev VmplPerms says the same of the
// SNP_LAUNCH_UPDATE masks): a fetch the running VMPL may not make is a #VMEXIT(NPF) with the VMPL
// bit (the last private check of §15.36.10), even where it may read the page.
import { describe, expect, it } from 'vitest';
import { NPF_BITS } from '../../../src/platform/snp/access-check.js';
import type { LaunchVmplPerms } from '../../../src/platform/snp/launch.js';
import { VMPL_PERM, VMPL_PERM_RWX } from '../../../src/platform/snp/rmp.js';
import { snpGuest } from '../../helpers/snp-guest.js';

const T = 0x400000n;
const READ_WRITE = VMPL_PERM.read | VMPL_PERM.write;
/** The guest reads T, then jumps to it; T sets r9 and halts. */
const JUMPS_TO_T = `
  mov rax, 0x${T.toString(16)}
  mov rbx, [rax]
  jmp rax`;
const T_CODE = 'mov r9, 0x55\nhlt';

/** A guest at VMPL1 with RWX on its own image (SNP_LAUNCH_UPDATE VMPL1_PERMS) and `perms` for VMPL1 on T. */
function vmpl1Guest(perms: number) {
  const tPerms: LaunchVmplPerms = [perms, 0, 0];
  return snpGuest(JUMPS_TO_T, { vmpl: 1, imageVmplPerms: [VMPL_PERM_RWX, 0, 0], extraCode: [[T, T_CODE]], launch: [[T, 0x1000n, tPerms]] });
}

const FETCH_NPF = NPF_BITS.present | NPF_BITS.fetch | NPF_BITS.finalGpa | NPF_BITS.enc | NPF_BITS.rmp | NPF_BITS.vmpl;

describe('VMPL execute permissions', () => {
  it('VMPL1 with Read and Write but no execute on a page: the read passes, the jump is #VMEXIT(NPF) with the VMPL and fetch bits', () => {
    const g = vmpl1Guest(READ_WRITE);
    expect(g.platform.rmp.lookup(T).vmplPerms[1]).toBe(READ_WRITE);
    expect([g.vm.gate.get('private', T), g.vm.gate.fetch('private', T)]).toEqual(['readwrite', 'none']);
    const out = g.run();
    // The honest VMM has no answer to a VMPL fault: the guest's own VMPL0 software would own it.
    expect(out).toMatchObject({ outcome: 'vmm-error' });
    expect(g.trace.ofType('npf')).toEqual([expect.objectContaining({ rip: T, gpa: T, access: 'fetch', reason: 'vmpl-permission', cause: 'access', errorCode: FETCH_NPF })]);
    expect(g.vm.vcpu.regs.rbx & 0xffffffffn).toBe(0x55c1c749n);  // mov r9, 0x55 read as data
    expect(g.vm.vcpu.regs.r9).toBe(0n);                           // never ran
  });

  it('VMPL1 with Execute-Supervisor runs the page at CPL 0', () => {
    const g = vmpl1Guest(READ_WRITE | VMPL_PERM.execSupervisor);
    expect(g.vm.gate.fetch('private', T)).toBe('supervisor');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r9).toBe(0x55n);
    expect(g.trace.ofType('npf')).toEqual([]);
  });

  it('VMPL1 with Execute-User only: a CPL 0 fetch is refused as well', () => {
    const g = vmpl1Guest(READ_WRITE | VMPL_PERM.execUser);
    expect(g.vm.gate.fetch('private', T)).toBe('user');
    expect(g.run()).toMatchObject({ outcome: 'vmm-error' });
    expect(g.trace.ofType('npf')).toEqual([expect.objectContaining({ rip: T, gpa: T, reason: 'vmpl-permission', errorCode: FETCH_NPF })]);
    expect(g.vm.vcpu.regs.r9).toBe(0n);
  });

  it('VMPL1 with Execute-Supervisor and no Read: the page runs, its read of itself is #VMEXIT(NPF)', () => {
    const g = snpGuest(`mov rax, 0x${T.toString(16)}\njmp rax`, {
      vmpl: 1, imageVmplPerms: [VMPL_PERM_RWX, 0, 0], extraCode: [[T, 'mov r9, 0x55\nmov rbx, [rip]\nhlt']],
      launch: [[T, 0x1000n, [VMPL_PERM.execSupervisor, 0, 0]]],
    });
    expect([g.vm.gate.get('private', T), g.vm.gate.fetch('private', T)]).toEqual(['none', 'supervisor']);
    expect(g.run()).toMatchObject({ outcome: 'vmm-error' });
    expect(g.vm.vcpu.regs.r9).toBe(0x55n);
    expect(g.trace.ofType('npf')).toEqual([expect.objectContaining({
      rip: T + 7n, access: 'read', reason: 'vmpl-permission', errorCode: NPF_BITS.present | NPF_BITS.finalGpa | NPF_BITS.enc | NPF_BITS.rmp | NPF_BITS.vmpl,
    })]);
  });

  it('VMPL0 holds every permission on its pages (SNP_LAUNCH_UPDATE), whatever VMPL1 got', () => {
    const g = snpGuest(JUMPS_TO_T, { extraCode: [[T, T_CODE]], launch: [[T, 0x1000n, [READ_WRITE, 0, 0]]] });
    expect(g.vm.gate.fetch('private', T)).toBe('any');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r9).toBe(0x55n);
  });
});
