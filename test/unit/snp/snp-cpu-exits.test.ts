// SnpPlatform's answers to single vCPU exits and host operations, without running guest code:
// what the hardware does for an instruction at CPL3, a TDX instruction, and what RMPUPDATE resets.
import { describe, expect, it } from 'vitest';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';

const T = 0x400000n;

function platform(): SnpPlatform {
  return SnpPlatform.create({ memoryBytes: 16n << 20n, countInstructions: false });
}

describe('SNP CPU exits', () => {
  it('PVALIDATE and RMPADJUST from CPL3 (CS.RPL = 3): #GP(0), the RMP unchanged (B2: CPL must be 0)', () => {
    const p = platform();
    p.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: p.asid });
    const regs = p.machine.vcpu.regs;
    regs.rax = T; regs.rcx = 0n; regs.rdx = 1n;  // PVALIDATE: validate 4K; RMPADJUST: VMPL1, no permissions
    p.handleExit({ kind: 'pvalidate', rip: 0x1000n, length: 4, codeBits: 64, cs: 0x33 });
    expect(p.trace.ofType('pvalidate').at(-1)).toMatchObject({ fault: 13 });
    p.handleExit({ kind: 'rmpadjust', rip: 0x1000n, length: 4, codeBits: 64, cs: 0x33 });
    expect(p.trace.ofType('rmpadjust').at(-1)).toMatchObject({ fault: 13 });
    expect(p.trace.ofType('inject').map((e) => e.vector)).toEqual([13, 13]);
    expect(p.rmp.lookup(T)).toMatchObject({ validated: false, vmplPerms: [0xf, 0, 0, 0] });
    p.machine.close();
  });

  it('TDCALL and an undecodable instruction on an SNP CPU: #UD (there is no TDX module)', () => {
    const p = platform();
    p.handleExit({ kind: 'tdcall', rip: 0x1000n, length: 4, leaf: 0n, codeBits: 64, cs: 0x8 });
    p.handleExit({ kind: 'invalid-opcode', rip: 0x1000n, bytes: new Uint8Array([0x0f, 0xff]) });
    expect(p.trace.ofType('inject').map((e) => e.vector)).toEqual([6, 6]);
    p.machine.close();
  });
});

describe('RMPUPDATE', () => {
  it('resets what the guest set on the page: Validated, the VMSA bit, the lower VMPLs\' permissions (verismo RmpEntry::rmpupdate; B2)', () => {
    const p = platform();
    p.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: p.asid });
    p.rmp.setValidated(T, true);
    p.rmp.adjustPermissions(T, 1, 0x3, true);
    expect(p.rmp.lookup(T)).toMatchObject({ validated: true, vmsa: true, vmplPerms: [0xf, 0x3, 0, 0] });
    expect(p.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: p.asid }).rc).toBe(0);
    expect(p.rmp.lookup(T)).toMatchObject({ validated: false, vmsa: false, vmplPerms: [0xf, 0, 0, 0] });
    p.machine.close();
  });
});
