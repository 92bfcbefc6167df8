// SnpPlatform's answers to single vCPU exits and host operations, without running guest code:
// what the hardware does for an instruction at CPL3, a TDX instruction, and what RMPUPDATE resets.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../../src/cpu/machine.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { applyVmsa, bspResetVmsa } from '../../../src/platform/snp/vmsa.js';
import { VMPL_PERM } from '../../../src/platform/snp/rmp.js';
import { NPF_BITS } from '../../../src/platform/snp/access-check.js';

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
    expect(p.rmp.lookup(T)).toMatchObject({ validated: false, vmplPerms: [0x1f, 0, 0, 0] });
    p.machine.close();
  });

  it('after each PVALIDATE the private gate is what that page\'s own entry allows, whatever the page validated before it allowed (B2, B3)', () => {
    const p = platform();
    const pages = [T, T + 0x1000n, T + 0x2000n];
    for (const gpa of pages) p.rmpUpdate(gpa, { assigned: true, pageSize: '4k', gpa, asid: p.asid });
    const regs = p.machine.vcpu.regs;
    const pvalidate = (gpa: bigint, validate: boolean) => {
      regs.rax = gpa; regs.rcx = 0n; regs.rdx = validate ? 1n : 0n;
      p.handleExit({ kind: 'pvalidate', rip: 0x1000n, length: 4, codeBits: 64, cs: 0x8 });
      expect(p.trace.ofType('pvalidate').at(-1)).toMatchObject({ gpa, rc: 0, cf: false });
    };
    pvalidate(pages[1]!, true);
    pvalidate(pages[0]!, true);
    pvalidate(pages[1]!, false);  // rescinded right after its neighbour was validated
    pvalidate(pages[2]!, true);
    expect(pages.map((gpa) => p.machine.gate.get('private', gpa))).toEqual(['readwrite', 'none', 'readwrite']);
    p.machine.close();
  });

  // An SEV-ES/SNP guest's RFLAGS is in its encrypted VMSA; the hypervisor learns IF from the VMCB
  // (KVM svm.c svm_interrupt_blocked: "SEV-ES guests to not expose RFLAGS. Use the VMCB interrupt
  // mask bit to determine the state of the IF flag": blocked when int_state lacks
  // SVM_GUEST_INTERRUPT_MASK). RFLAGS.IF is bit 9 (APM Vol. 2 §3.1.6).
  it('HLT: the exit tells the VMM whether RFLAGS.IF (bit 9) was clear, whatever the other flags', () => {
    const p = platform();
    const regs = p.machine.vcpu.regs;
    const blocked = (rflags: bigint) => {
      regs.rflags = rflags;
      const step = p.handleExit({ kind: 'hlt', rip: 0x1000n });
      return step.kind === 'vmexit' && step.exit.kind === 'hlt' ? step.exit.interruptsBlocked : step;
    };
    expect([0x2n, 0x202n, 0x3f_fdd7n, 0x3f_ffd7n].map(blocked)).toEqual([true, false, true, false]);
    p.machine.close();
  });

  // The #VMEXIT(NPF) of an RMP instruction: EXITINFO1 is a #PF-style error code (APM Vol. 2
  // §15.25.6), whose bit 1 says write; the RMP instructions update the entry, so their RMP-check
  // NPFs are writes (W set), and the exit the VMM sees names the same access as its error code.
  it('the NPF exit of a PVALIDATE or RMPADJUST size mismatch (4K inside a 2M entry) is a write, as its error code\'s W bit says', () => {
    const p = platform();
    p.rmpUpdate(0x600000n, { assigned: true, pageSize: '2m', gpa: 0x600000n, asid: p.asid });
    p.rmp.setValidated(0x600000n, true);
    const regs = p.machine.vcpu.regs;
    for (const kind of ['pvalidate', 'rmpadjust'] as const) {
      regs.rax = 0x601000n; regs.rcx = 0n; regs.rdx = kind === 'pvalidate' ? 1n : 0x1n;
      const step = p.handleExit({ kind, rip: 0x1000n, length: 4, codeBits: 64, cs: 0x8 });
      if (step.kind !== 'vmexit' || step.exit.kind !== 'npf') throw new Error(`${kind}: expected an NPF, got ${JSON.stringify(step, (_, v) => typeof v === 'bigint' ? v.toString(16) : v)}`);
      expect(step.exit.errorCode & (NPF_BITS.write | NPF_BITS.sizeMismatch)).toBe(NPF_BITS.write | NPF_BITS.sizeMismatch);
      expect(step.exit.access).toBe('write');
    }
    p.machine.close();
  });

  // APM Vol. 3 VMRUN (and VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA): "#UD: the instruction is
  // only recognized in protected mode"; an invalid opcode has no error code.
  it('an SVM instruction in real mode (the reset state): #UD without an error code, RIP at the instruction', () => {
    const p = platform();
    applyVmsa(p.machine, bspResetVmsa());
    p.machine.vcpu.regs.rip = 0xfff0n;
    p.handleExit({ kind: 'svm', rip: 0xfff0n, length: 3, instruction: 'vmrun' });
    expect(p.trace.ofType('inject')).toMatchObject([{ vector: 6, errorCode: null, rip: 0xfff0n }]);
    expect(p.trace.ofType('inject-vc')).toEqual([]);
    p.machine.close();
  });

  // Real mode has no privilege levels: its code runs at CPL 0, whatever the low bits of CS (a
  // real-mode segment value, not a selector with an RPL). So a VMPL whose page allows
  // Execute-Supervisor only (APM Vol. 2 §15.36.7: CPL 0-2) may fetch it there.
  it('a real-mode fetch is a CPL 0 fetch, whatever the low bits of CS: a VMPL1 page with Execute-Supervisor only runs', () => {
    const p = SnpPlatform.create({ memoryBytes: 16n << 20n, countInstructions: false, vmpl: 1 });
    const page = 0xf0000n;
    p.launchUpdateRange(page, 0x1000n, 'NORMAL', [VMPL_PERM.read | VMPL_PERM.execSupervisor, 0, 0]);
    applyVmsa(p.machine, bspResetVmsa());
    p.machine.vcpu.writeSpecial('cs', 0xf003n);  // as a real-mode far jump to F003:xxxx loads it
    expect(p.machine.vcpu.codeSegment()).toMatchObject({ protectedMode: false, selector: 0xf003 });
    const step = p.handleExit({ kind: 'gate-fault', rip: 0x10n, gpa: page + 0x40n, gva: page + 0x40n, access: 'fetch', space: 'private',
      pageWalk: false, outsideRam: false, exactAddress: true, ciphertext: false });
    expect(step).toEqual({ kind: 'resume' });
    expect(p.trace.ofType('npf')).toEqual([]);
    p.machine.close();
  });

  // APM Vol. 2 §15.36.7: Execute-User allows execution at CPL 3, Execute-Supervisor at CPL 0-2;
  // a fetch the VMPL may not make is #VMEXIT(NPF) with the VMPL bit (§15.36.10).
  it('a CPL 3 fetch (CS.RPL = 3) of a VMPL1 page with Execute-Supervisor only: NPF with the VMPL and fetch bits', () => {
    const p = SnpPlatform.create({ memoryBytes: 16n << 20n, countInstructions: false, vmpl: 1 });
    const page = 0x400000n;
    p.launchUpdateRange(page, 0x1000n, 'NORMAL', [VMPL_PERM.read | VMPL_PERM.execSupervisor, 0, 0]);
    const gdt = Buffer.alloc(32);
    gdt.writeBigUInt64LE(0x00af9b000000ffffn, 8);   // 0x08: 64-bit code, DPL 0
    gdt.writeBigUInt64LE(0x00cf93000000ffffn, 16);  // 0x10: data
    gdt.writeBigUInt64LE(0x00affb000000ffffn, 24);  // 0x18: 64-bit code, DPL 3
    p.machine.memory.write(0x10000n, gdt);
    const vcpu = p.machine.vcpu;
    vcpu.writeSpecial('gdtrBase', 0x10000n);
    vcpu.writeSpecial('gdtrLimit', 31n);
    vcpu.writeSpecial('cs', 0x1bn);
    expect(vcpu.codeSegment()).toMatchObject({ protectedMode: true, selector: 0x1b });
    const step = p.handleExit({ kind: 'gate-fault', rip: page, gpa: page, gva: page, access: 'fetch', space: 'private',
      pageWalk: false, outsideRam: false, exactAddress: true, ciphertext: false });
    if (step.kind !== 'vmexit' || step.exit.kind !== 'npf') throw new Error(`expected an NPF, got ${step.kind}`);
    expect(step.exit.errorCode & (NPF_BITS.vmpl | NPF_BITS.fetch)).toBe(NPF_BITS.vmpl | NPF_BITS.fetch);
    p.machine.close();
  });

  // NPF EXITINFO1 (APM Vol. 2 §15.25.6; tdx-snp-architecture.md B3): bit 32 is set for a fault on
  // the final guest-physical address, bit 33 for one during the guest page-table walk. A load whose
  // walk reads a hypervisor-owned page-table page faults in the walk.
  it('a refused private read of a page-table page during a walk: NPF with the page-table bit, not the final-GPA bit', () => {
    const p = platform();
    const table = 0x500000n;
    const step = p.handleExit({ kind: 'gate-fault', rip: 0x1000n, gpa: table, gva: 0x7000n, access: 'read', space: 'private',
      pageWalk: true, outsideRam: false, exactAddress: false, ciphertext: false });
    if (step.kind !== 'vmexit' || step.exit.kind !== 'npf') throw new Error(`expected an NPF, got ${step.kind}`);
    expect(step.exit.errorCode & (NPF_BITS.pageTable | NPF_BITS.finalGpa)).toBe(NPF_BITS.pageTable);
    expect(step.exit.gpa).toBe(table);
    p.machine.close();
  });

  // The page gate caches what the RMP checks allow: a refused access they allow opens its region
  // and is retried. A resync that does not open it would have the vCPU retry until its budget
  // ends: the same fault straight after its resync is a hardware-model error instead.
  it('the same gate fault straight after the resync it caused is a hardware-model error; another exit between starts afresh', () => {
    const p = platform();
    const page = 0x300000n;  // hypervisor-owned: the checks allow a shared write
    const write = { kind: 'gate-fault', rip: 0x1000n, gpa: page, gva: page, access: 'write', space: 'shared', pageWalk: false, outsideRam: false, exactAddress: true, ciphertext: false } as const;
    p.machine.gate.set = () => {};  // a resync that does not take
    expect(p.handleExit(write)).toEqual({ kind: 'resume' });
    expect(p.handleExit({ ...write, rip: 0x1004n })).toEqual({ kind: 'resume' });
    expect(p.handleExit(write)).toEqual({ kind: 'resume' });
    expect(() => p.handleExit(write)).toThrow(/^hardware model: the page gate still refuses the shared write of 0x300000 at RIP 0x1000 after its resynchronisation with the RMP checks/);
    // Inside batchGateSync a resync waits for the batch's end: the same fault again is no verdict.
    p.batchGateSync(() => {
      expect(p.handleExit(write)).toEqual({ kind: 'resume' });
      expect(p.handleExit(write)).toEqual({ kind: 'resume' });
    });
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
    expect(p.rmp.lookup(T)).toMatchObject({ validated: true, vmsa: true, vmplPerms: [0x1f, 0x3, 0, 0] });
    expect(p.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: p.asid }).rc).toBe(0);
    expect(p.rmp.lookup(T)).toMatchObject({ validated: false, vmsa: false, vmplPerms: [0x1f, 0, 0, 0] });
    p.machine.close();
  });
});

describe('what the host sees and sets', () => {
  it('the GHCB MSR the VMM writes is a 64-bit register: wider or negative values wrap', () => {
    const p = platform();
    p.handle.ghcbMsr = -1n;
    expect(p.ghcbMsr).toBe((1n << 64n) - 1n);
    p.handle.ghcbMsr = (1n << 64n) | 0x13n;
    expect(p.ghcbMsr).toBe(0x13n);
    p.machine.close();
  });

  it('the VMM injects vectors 0..255 only (an IDT has 256 entries)', () => {
    const p = platform();
    for (const vector of [256, -1, 1.5]) expect(() => p.handle.inject(vector)).toThrow(RangeError);
    expect(p.trace.ofType('inject')).toHaveLength(0);
    p.machine.close();
  });

  it("pageState: a validated page of another ASID is not this guest's accepted page", () => {
    const p = platform();
    p.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: p.asid + 1 });
    p.rmp.setValidated(T, true);
    expect(p.pageState(T)).toMatchObject({ visibility: 'private', accepted: false, pending: false, raw: `asid-${p.asid + 1}-validated` });
    p.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: p.asid });
    expect(p.pageState(T + 0x10n)).toMatchObject({ gpa: T, accepted: false, pending: true, raw: 'guest' });
    p.rmp.setValidated(T, true);
    expect(p.pageState(T)).toMatchObject({ accepted: true, pending: false, raw: 'guest-validated' });
    p.machine.close();
  });
});

describe('guest identity and launch', () => {
  it('a guest cannot have ASID 0, the owner ASID of firmware and hypervisor pages (B3)', () => {
    const vm = new Machine({ memoryBytes: 16n << 20n, countInstructions: false });
    expect(() => new SnpPlatform(vm, { asid: 0 })).toThrow(RangeError);
    vm.close();
  });

  it('once SNP_LAUNCH_FINISH fixed the digest, no VMSA can be measured or loaded (Firmware ABI §8.17, LAUNCH_UPDATE before LAUNCH_FINISH)', () => {
    const p = platform();
    p.launchUpdateVmsa(bspResetVmsa());
    const digest = p.launchFinish();
    expect(() => p.launchUpdateVmsa(bspResetVmsa())).toThrow();
    expect(p.launch.hex).toBe(digest);
    p.machine.close();
  });
});

describe('VMPL0 permissions', () => {
  // Read, write, execute-user, execute-supervisor and supervisor shadow stack (APM Vol. 2
  // §15.36.7 "VMPL Permission Mask Definition", b0..b4): VMPL0's full set on a page newly
  // assigned to the guest (verismo rmp_perm_init; B3 "VMPL0 full perms, others none").
  // PVALIDATE changes only Validated.
  const FULL = 0x1f;

  it('are all five bits after RMPUPDATE, after SNP_LAUNCH_UPDATE and after PVALIDATE', () => {
    const p = platform();
    p.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: p.asid });
    expect(p.rmp.lookup(T).vmplPerms).toEqual([FULL, 0, 0, 0]);
    const L = T + 0x1000n;
    p.rmpUpdate(L, { assigned: true, pageSize: '4k', immutable: true, gpa: L, asid: p.asid });
    expect(p.launchUpdatePage(L, 'ZERO').rc).toBe(0);
    expect(p.rmp.lookup(L).vmplPerms).toEqual([FULL, 0, 0, 0]);
    const regs = p.machine.vcpu.regs;
    regs.rax = T; regs.rcx = 0n; regs.rdx = 1n;  // PVALIDATE 4K, validate
    p.handleExit({ kind: 'pvalidate', rip: 0x1000n, length: 4, codeBits: 64, cs: 0x8 });
    expect(p.rmp.lookup(T)).toMatchObject({ validated: true, vmplPerms: [FULL, 0, 0, 0] });
    p.machine.close();
  });
});
