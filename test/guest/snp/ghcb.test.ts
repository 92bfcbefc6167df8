// GHCB MSR protocol and GHCB page (PSC NAE, IOIO, termination) rows of B4, driven by real
// WRMSR/VMGEXIT/RDMSR sequences in small guests.
import { describe, expect, it } from 'vitest';
import { ghcbMsr, PSC_OP } from '../../../src/platform/snp/ghcb-msr.js';
import { encodePscEntry, IOIO, PSC_ERROR, SVM_EXIT } from '../../../src/platform/snp/ghcb-page.js';
import { GHCB_GPA, PVALIDATE, REGISTER_GHCB, VMGEXIT, ghcbCall, msrProtocol, privateIdentityWithGhcb, snpGuest } from '../../helpers/snp-guest.js';

const T = 0x400000n;

describe('GHCB MSR protocol', () => {
  it('SEV information request 0x002 -> response 0x001 with versions and C-bit', () => {
    const g = snpGuest(`${msrProtocol(ghcbMsr.sevInfoReq())}\nhlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const v = g.vm.vcpu.regs.rax;
    expect(v & 0xfffn).toBe(0x001n);
    expect((v >> 24n) & 0xffn).toBe(51n);
    expect((v >> 48n) & 0xffffn).toBe(2n);
    expect((v >> 32n) & 0xffffn).toBe(1n);
    expect(g.trace.ofType('vmgexit')).toHaveLength(1);
  });

  it('register GHCB GPA 0x012 is echoed in 0x013', () => {
    const g = snpGuest(`${msrProtocol(ghcbMsr.registerReq(0x30n))}\nhlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.rax).toBe(ghcbMsr.registerResp(0x30n));
    expect(g.vmm.registeredGhcb).toBe(0x30000n);
  });

  it('hypervisor features 0x080 -> 0x081 with the SNP bit', () => {
    const g = snpGuest(`${msrProtocol(0x080n)}\nhlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.rax).toBe(ghcbMsr.hvFeaturesResp(3n)); // SNP | AP creation, as KVM offers
  });

  it('CPUID request 0x004 -> 0x005', () => {
    const g = snpGuest(`${msrProtocol(ghcbMsr.cpuidReq(0x8000001f, 1))}\nhlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect((g.vm.vcpu.regs.rax >> 32n) & 0x3fn).toBe(51n);
  });

  it('PSC 0x014 (private) then PVALIDATE then use the page; the response 0x015 carries error 0', () => {
    const g = snpGuest(`${msrProtocol(ghcbMsr.pscReq(T >> 12n, PSC_OP.PRIVATE))}
      mov r12, rax
      mov rax, 0x${T.toString(16)}
      xor ecx, ecx
      mov edx, 1
      ${PVALIDATE}
      mov r8, rax
      mov qword ptr [0x${T.toString(16)}], 0x55
      mov r9, [0x${T.toString(16)}]
      hlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r12).toBe(ghcbMsr.pscResp(0));
    expect(g.vm.vcpu.regs.r8).toBe(0n);
    expect(g.vm.vcpu.regs.r9).toBe(0x55n);
    expect(g.platform.rmp.lookup(T)).toMatchObject({ assigned: true, validated: true, asid: 1, gpa: T });
  });

  // Issue 9 row 17: converting private memory to private again is a no-op (KVM
  // kvm_vm_set_mem_attributes, QEMU kvm_convert_memory), so validating it again shows CF=1.
  it('PSC to private on a page that is already private is a no-op: the second PVALIDATE sees CF=1 and the data survives', () => {
    const validate = `
      mov rax, 0x${T.toString(16)}
      xor ecx, ecx
      mov edx, 1
      ${PVALIDATE}`;
    const g = snpGuest(`${msrProtocol(ghcbMsr.pscReq(T >> 12n, PSC_OP.PRIVATE))}
      ${validate}
      setc r8b
      mov qword ptr [0x${T.toString(16)}], 0x55
      ${msrProtocol(ghcbMsr.pscReq(T >> 12n, PSC_OP.PRIVATE))}
      mov r12, rax
      ${validate}
      setc r9b
      mov r10, rax
      mov r11, [0x${T.toString(16)}]
      hlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const r = g.vm.vcpu.regs;
    expect(r.r12).toBe(ghcbMsr.pscResp(0));
    expect([r.r8 & 0xffn, r.r9 & 0xffn, r.r10]).toEqual([0n, 1n, 0n]); // CF=0, then CF=1 with EAX=0
    expect(r.r11).toBe(0x55n);
    expect(g.trace.ofType('rmpupdate').filter((e) => e.gpa === T)).toHaveLength(1);
  });

  it('PSC to shared returns the page to the hypervisor (Validated cleared)', () => {
    const g = snpGuest(`${msrProtocol(ghcbMsr.pscReq(T >> 12n, PSC_OP.SHARED))}\nmov r12, rax\nhlt`);
    g.platform.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: 1 });
    g.platform.rmp.setValidated(T, true);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r12).toBe(ghcbMsr.pscResp(0));
    expect(g.platform.rmp.lookup(T).assigned).toBe(false);
  });

  it('PSC with an invalid operation gets a non-zero error', () => {
    const g = snpGuest(`${msrProtocol(ghcbMsr.pscReq(T >> 12n, 7))}\nmov r12, rax\nhlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r12 >> 32n).not.toBe(0n);
  });

  // KVM arch/x86/kvm/svm/sev.c sev_handle_vmgexit_msr_protocol, default case: "Error, keep GHCB
  // MSR value as-is", ret = 1 (resume the guest). The guest reads back its own request and runs on.
  it('an unknown request (GHCBInfo 0xabc) leaves the GHCB MSR as the guest wrote it and the guest runs on', () => {
    const request = (0x12345n << 12n) | 0xabcn;
    const g = snpGuest(`${msrProtocol(request)}\nmov r12, rax\nmov r9, 0x77\nhlt`);
    expect(g.run()).toEqual({ outcome: 'done', reason: 'guest halted' });
    expect(g.vm.vcpu.regs.r12).toBe(request);
    expect(g.vm.vcpu.regs.r9).toBe(0x77n);
    expect(g.platform.ghcbMsr).toBe(request);
    expect(g.trace.ofType('vmgexit')).toHaveLength(1);
  });

  // KVM sev_handle_vmgexit resumes a VMGEXIT whose GHCB GPA is 0 without an answer ("Without a
  // GHCB, just return right back to the guest"), so a guest that retries it never gets one. KVM
  // would spin with it; here every return to the host is charged to the budget (native/src/budget.h
  // kExitCharge = 1024), so the retries end the run long before the instructions alone would.
  it('a guest that retries a VMGEXIT with GHCB GPA 0 for ever gets no answer and ends on the budget', () => {
    const g = snpGuest(`
      retry:
      mov ecx, 0xc0010130
      xor eax, eax
      xor edx, edx
      wrmsr
      ${VMGEXIT}
      jmp retry`, { instructionLimit: 200_000n });
    expect(g.run()).toMatchObject({ outcome: 'budget' });
    const exits = g.trace.ofType('vmgexit').length;
    // A round is 6 instructions and two returns to the host (the WRMSR the CPU model handles, the
    // VMGEXIT), so about 200000 / (6 + 2 * 1024) rounds; by instructions alone it would be 33333.
    expect(exits).toBeGreaterThan(90);
    expect(exits).toBeLessThan(100);
    expect(g.trace.ofType('ghcb-unmapped')).toHaveLength(exits);
  });

  it('termination request 0x100 ends the run with its reason set and code', () => {
    const g = snpGuest(`${msrProtocol(ghcbMsr.termReq(1, 2))}\nhlt`);
    expect(g.run()).toEqual({ outcome: 'guest-fatal', reason: 'GHCB termination request: reason set 1, code 2' });
    expect(g.trace.ofType('terminate')[0]).toMatchObject({ reasonSet: 1, reasonCode: 2 });
  });

  it('SEV_STATUS reads SNP (bit 2)', () => {
    const g = snpGuest(`
      mov ecx, 0xc0010131
      rdmsr
      mov r8, rax
      hlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r8 & 4n).toBe(4n);
  });

  // VMRUN refuses a VMSA whose EFER.SVME is clear (AMD APM Vol. 2 §15.5.1), so a running SNP guest
  // reads it set, although the emulated CPU has no SVM; EFER itself is not intercepted (KVM
  // sev_es_init_vmcb), so neither access raises #VC.
  it('EFER reads with SVME (bit 12) set, and a read-modify-write keeps it', () => {
    const g = snpGuest(`
      mov ecx, 0xc0000080
      rdmsr
      mov r8, rax
      or eax, 0x800
      wrmsr
      rdmsr
      mov r9, rax
      hlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r8 & 0x1000n).toBe(0x1000n);
    expect(g.vm.vcpu.regs.r9 & 0x1800n).toBe(0x1800n);
    expect(g.vm.vcpu.regs.r13).toBe(0n); // no exception was delivered
    expect(g.trace.ofType('rdmsr').map((e) => BigInt(e.value as bigint) & 0x1000n)).toEqual([0x1000n, 0x1000n]);
  });

  // FS.base, GS.base and KernelGSbase are VMSA state KVM never intercepts (arch/x86/kvm/svm/svm.c
  // direct_access_msrs lists MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE; sev_es_init_vmcb leaves
  // them so): RDMSR reads what WRMSR wrote, both halves, with no #VC (Linux's paranoid_entry reads
  // MSR_GS_BASE with RDMSR on a CPU without FSGSBASE, arch/x86/entry/entry_64.S).
  it('FS.base, GS.base and KernelGSbase (0xC0000100..102) read back what was written, without a #VC', () => {
    const g = snpGuest(`
      mov ecx, 0xc0000100
      mov eax, 0x11110000
      mov edx, 0x1111
      wrmsr
      mov ecx, 0xc0000101
      mov eax, 0x22220000
      mov edx, 0x2222
      wrmsr
      mov ecx, 0xc0000102
      mov eax, 0x33330000
      mov edx, 0x3333
      wrmsr
      xor eax, eax
      xor edx, edx
      mov ecx, 0xc0000100
      rdmsr
      shl rdx, 32
      or rax, rdx
      mov r8, rax
      mov ecx, 0xc0000101
      rdmsr
      shl rdx, 32
      or rax, rdx
      mov r9, rax
      mov ecx, 0xc0000102
      rdmsr
      shl rdx, 32
      or rax, rdx
      mov r10, rax
      hlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const r = g.vm.vcpu.regs;
    expect([r.r8, r.r9, r.r10]).toEqual([0x1111_1111_0000n, 0x2222_2222_0000n, 0x3333_3333_0000n]);
    expect(r.r13).toBe(0n);  // no exception was delivered
    expect(g.trace.ofType('inject-vc')).toEqual([]);
    expect(g.trace.ofType('rdmsr').map((e) => e.msr)).toEqual([0xc0000100, 0xc0000101, 0xc0000102]);
  });

  // The write lands in the VMSA and only traps to the host afterwards; the VMRUN that would resume
  // the guest then fails its consistency checks (VMEXIT_INVALID), so the guest never runs again.
  it('a guest that clears EFER.SVME is terminated before its next instruction', () => {
    const g = snpGuest(`
      mov ecx, 0xc0000080
      rdmsr
      and eax, 0xffffefff
      wrmsr
      mov r8, 1
      hlt`);
    expect(g.run()).toMatchObject({ outcome: 'terminated', reason: expect.stringMatching(/EFER\.SVME/) });
    expect(g.vm.vcpu.regs.r8).toBe(0n);
  });

  it('writing SEV_STATUS raises #GP; other MSRs raise #VC 0x7C; port I/O raises #VC 0x7B', () => {
    const gp = snpGuest('mov ecx, 0xc0010131\nxor eax, eax\nxor edx, edx\nwrmsr\nhlt');
    expect(gp.run()).toMatchObject({ outcome: 'done' });
    expect(gp.vm.vcpu.regs.r13).toBe(13n);
    const msr = snpGuest('mov ecx, 0x10\nrdmsr\nhlt');
    expect(msr.run()).toMatchObject({ outcome: 'done' });
    expect([msr.vm.vcpu.regs.r13, msr.vm.vcpu.regs.r15]).toEqual([29n, 0x7cn]);
    const io = snpGuest('mov dx, 0x3f8\nmov al, 0x41\nout dx, al\nhlt');
    expect(io.run()).toMatchObject({ outcome: 'done' });
    expect([io.vm.vcpu.regs.r13, io.vm.vcpu.regs.r15]).toEqual([29n, 0x7bn]);
  });

  it('the GHCB MSR value is kept per vCPU by the hardware model', () => {
    const g = snpGuest('mov ecx, 0xc0010130\nmov eax, 0x12345000\nmov edx, 1\nwrmsr\nxor eax, eax\nrdmsr\nhlt');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.rax).toBe(0x12345000n);
    expect(g.vm.vcpu.regs.rdx).toBe(1n);
    expect(g.platform.ghcbMsr).toBe(0x112345000n);
  });
});

describe('GHCB page protocol', () => {
  const mappings = privateIdentityWithGhcb();
  /** A guest that registers its GHCB first (KVM serves no other), then runs `main`. */
  const ghcbGuest: typeof snpGuest = (main, options) => snpGuest(`${REGISTER_GHCB}\n${main}`, options);

  it('IOIO (0x7B) prints to the console', () => {
    const g = ghcbGuest(`
      ${ghcbCall({ exitCode: 0x7bn, info1: (0x3f8n << 16n) | 0x10n, rax: 0x48n })}
      ${ghcbCall({ exitCode: 0x7bn, info1: (0x3f8n << 16n) | 0x10n, rax: 0x69n })}
      mov r8, [rdi+0x398]
      hlt`, { mappings });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vmm.console.text).toBe('Hi');
    expect(g.vm.vcpu.regs.r8).toBe(0n);
  });

  // The stubs' batched console (boot_abi.h): OUTS of up to BATCH_MAX bytes from the shared buffer.
  const outs = (count: bigint, scratch = GHCB_GPA + 0x800n) => `
      mov rdi, 0x${(GHCB_GPA + 0x800n).toString(16)}
      mov al, 0x41
      mov rcx, 0x7f0
      rep stosb
      mov byte ptr [rdi-1], 0x0a
      ${ghcbCall({ exitCode: 0x7bn, info1: (0x3f8n << 16n) | IOIO.SZ8 | IOIO.STRING | IOIO.REP, info2: count, scratch })}
      mov r8, [rdi+0x398]
      mov r9, [rdi+0x3a0]
      hlt`;

  it('string IOIO (OUTS) prints a whole batch of BATCH_MAX (0x7f0) bytes with one exit', () => {
    const g = ghcbGuest(outs(0x7f0n), { mappings });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect([g.vm.vcpu.regs.r8, g.vm.vcpu.regs.r9]).toEqual([0n, 0n]);
    expect(g.vmm.console.text).toBe(`${'A'.repeat(0x7ef)}\n`);
    expect(g.trace.ofType('ghcb-exit')).toHaveLength(1);
  });

  it.each([
    ['a count over BATCH_MAX', 0x7f1n, GHCB_GPA + 0x800n],
    ['a buffer starting before the shared buffer', 0x10n, GHCB_GPA + 0x7f8n],
    ['a buffer running past the shared buffer', 0x10n, GHCB_GPA + 0xfe8n],
  ])('string IOIO with %s is a GHCB error (INVALID_SCRATCH_AREA) and prints nothing', (_what, count, scratch) => {
    const g = ghcbGuest(outs(count, scratch), { mappings });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect([g.vm.vcpu.regs.r8, g.vm.vcpu.regs.r9]).toEqual([2n, 3n]);
    expect(g.vmm.console.text).toBe('');
  });

  it('IOIO OUT without RAX marked valid is a GHCB error (MISSING_INPUT)', () => {
    const g = ghcbGuest(`
      ${ghcbCall({ exitCode: 0x7bn, info1: (0x3f8n << 16n) | 0x10n })}
      mov r8, [rdi+0x398]
      mov r9, [rdi+0x3a0]
      hlt`, { mappings });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect([g.vm.vcpu.regs.r8, g.vm.vcpu.regs.r9]).toEqual([2n, 4n]);
  });

  it('unknown exit code: GHCB error INVALID_EVENT', () => {
    const g = ghcbGuest(`${ghcbCall({ exitCode: 0x1234n })}\nmov r8, [rdi+0x398]\nmov r9, [rdi+0x3a0]\nhlt`, { mappings });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect([g.vm.vcpu.regs.r8, g.vm.vcpu.regs.r9]).toEqual([2n, 6n]);
  });

  it('termination NAE 0x8000FFFE is the outcome', () => {
    const g = ghcbGuest(`${ghcbCall({ exitCode: 0x8000fffen, info1: (2n << 4n) | 1n })}\nhlt`, { mappings });
    expect(g.run()).toEqual({ outcome: 'guest-fatal', reason: 'GHCB termination request: reason set 1, code 2' });
  });

  function pscGuest(entries: bigint[], endEntry: number, perExit?: number) {
    const buf = GHCB_GPA + 0x800n;
    const g = ghcbGuest(`
      xor r12, r12
    1:
      inc r12
      ${ghcbCall({ exitCode: BigInt(SVM_EXIT.PSC), scratch: buf })}
      mov r8, [rdi+0x3a0]
      test r8, r8
      jnz 2f
      movzx eax, word ptr [rdi+0x800]
      movzx ebx, word ptr [rdi+0x802]
      cmp eax, ebx
      jbe 1b
    2:
      hlt`, { mappings, vmm: perExit ? { pscEntriesPerExit: perExit } : {} });
    g.vm.memory.writeU16(buf, 0);
    g.vm.memory.writeU16(buf + 2n, endEntry);
    entries.forEach((e, i) => g.vm.memory.writeU64(buf + 8n + BigInt(i) * 8n, e));
    return g;
  }

  const ENTRIES = [
    encodePscEntry({ curPage: 0, gfn: T >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    encodePscEntry({ curPage: 0, gfn: (T >> 12n) + 1n, op: PSC_OP.PRIVATE, size2m: false }),
    encodePscEntry({ curPage: 0, gfn: 0x600n, op: PSC_OP.PRIVATE, size2m: true }),
  ];

  it('Page State Change 0x80000010: all entries in one exit', () => {
    const g = pscGuest(ENTRIES, 2);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r12).toBe(1n);
    expect(g.vm.vcpu.regs.r8).toBe(0n);
    expect(g.platform.rmp.lookup(T)).toMatchObject({ assigned: true, pageSize: '4k' });
    expect(g.platform.rmp.lookup(T + 0x1000n)).toMatchObject({ assigned: true });
    expect(g.platform.rmp.lookup(0x600000n)).toMatchObject({ assigned: true, pageSize: '2m' });
  });

  it('partial progress: the hypervisor handles one entry per exit, the guest loops', () => {
    const g = pscGuest(ENTRIES, 2, 1);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r12).toBe(3n);
    expect(g.vm.memory.readU16(GHCB_GPA + 0x800n)).toBe(3);
    expect(g.platform.rmp.lookup(0x600000n)).toMatchObject({ assigned: true, pageSize: '2m' });
  });

  it('a 2M PSC to private of a region that is already private is a no-op: PVALIDATE 2M again sees CF=1', () => {
    const R = 0x600000n;
    const entry = encodePscEntry({ curPage: 0, gfn: R >> 12n, op: PSC_OP.PRIVATE, size2m: true });
    const psc = `
      mov word ptr [0x${(GHCB_GPA + 0x800n).toString(16)}], 0
      mov word ptr [0x${(GHCB_GPA + 0x802n).toString(16)}], 0
      mov rax, 0x${entry.toString(16)}
      mov [0x${(GHCB_GPA + 0x808n).toString(16)}], rax
      ${ghcbCall({ exitCode: BigInt(SVM_EXIT.PSC), scratch: GHCB_GPA + 0x800n })}`;
    const validate2m = `
      mov rax, 0x${R.toString(16)}
      mov ecx, 1
      mov edx, 1
      ${PVALIDATE}`;
    const g = ghcbGuest(`${psc}\n${validate2m}\nsetc r8b\nmov r12, rax\n${psc}\nmov r13, [rdi+0x3a0]\n${validate2m}\nsetc r9b\nmov r10, rax\nhlt`, { mappings });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const r = g.vm.vcpu.regs;
    expect([r.r12, r.r8 & 0xffn]).toEqual([0n, 0n]);
    expect(r.r13).toBe(0n);
    expect([r.r10, r.r9 & 0xffn]).toEqual([0n, 1n]);
    expect(g.platform.rmp.lookup(R)).toMatchObject({ pageSize: '2m', validated: true });
    expect(g.trace.ofType('rmpupdate').filter((e) => e.gpa === R)).toHaveLength(1);
  });

  // Issue 9 row 11: after a 2M conversion to shared the honest VMM remaps the region at 4K
  // (KVM zaps on every attribute change), so a later 4K private page needs no size-mismatch fix.
  it('a 2M PSC to shared returns the NPT to 4K; a later 4K private page validates without an NPF', () => {
    const R = 0x600000n;
    const psc = (op: number, size2m: boolean, gpa: bigint) => `
      mov word ptr [0x${(GHCB_GPA + 0x800n).toString(16)}], 0
      mov word ptr [0x${(GHCB_GPA + 0x802n).toString(16)}], 0
      mov rax, 0x${encodePscEntry({ curPage: 0, gfn: gpa >> 12n, op, size2m }).toString(16)}
      mov [0x${(GHCB_GPA + 0x808n).toString(16)}], rax
      ${ghcbCall({ exitCode: BigInt(SVM_EXIT.PSC), scratch: GHCB_GPA + 0x800n })}`;
    const g = ghcbGuest(`${psc(PSC_OP.PRIVATE, true, R)}
      mov r12, rax
      ${psc(PSC_OP.SHARED, true, R)}
      ${psc(PSC_OP.PRIVATE, false, R + 0x3000n)}
      mov rax, 0x${(R + 0x3000n).toString(16)}
      xor ecx, ecx
      mov edx, 1
      ${PVALIDATE}
      mov r10, rax
      hlt`, { mappings });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    // Mapped 2M while private, back to 4K by the shared conversion itself (before the 4K PSC).
    const order = g.trace.events.filter((e) => e.type === 'npt-page-size' || (e.type === 'psc' && e.via === 'ghcb'))
      .map((e) => (e.type === 'psc' ? `psc ${e.op} ${e.size}` : `npt ${e.size}`));
    expect(order).toEqual(['npt 2m', `psc ${PSC_OP.PRIVATE} 2m`, 'npt 4k', `psc ${PSC_OP.SHARED} 2m`, `psc ${PSC_OP.PRIVATE} 4k`]);
    expect(g.vm.vcpu.regs.r10).toBe(0n);
    expect(g.trace.ofType('npf')).toHaveLength(0);
    expect(g.platform.rmp.lookup(R + 0x3000n)).toMatchObject({ pageSize: '4k', validated: true });
  });

  it('invalid header (end_entry >= 253) -> (1<<32)|1', () => {
    const g = pscGuest(ENTRIES, 253);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r8).toBe(PSC_ERROR.INVALID_HEADER);
  });

  it('invalid entry (misaligned 2M) -> (1<<32)|2', () => {
    const g = pscGuest([encodePscEntry({ curPage: 0, gfn: 0x601n, op: PSC_OP.PRIVATE, size2m: true })], 0);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r8).toBe(PSC_ERROR.INVALID_ENTRY);
  });

  // KVM arch/x86/kvm/svm/sev.c snp_begin_psc, default case: an operation other than private/shared
  // is completed by __snp_complete_one_psc (cur_page 1 for 4K) with SW_EXITINFO2 0, not carried out.
  it('an unknown operation (9) is completed without being carried out -> 0, cur_page 1', () => {
    const g = pscGuest([encodePscEntry({ curPage: 0, gfn: 0x400n, op: 9, size2m: false })], 0);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r8).toBe(0n);
    expect(g.vm.memory.readU16(GHCB_GPA + 0x800n)).toBe(1);
    expect(g.vm.memory.readU64(GHCB_GPA + 0x808n) & 0xfffn).toBe(1n);
    expect(g.platform.rmp.lookup(0x400000n)).toMatchObject({ assigned: false });
  });

  // KVM sev_handle_vmgexit: a GHCB GPA the vCPU did not register fails the exit (-EINVAL): KVM_RUN
  // fails and the VM stops, with no answer in the GHCB.
  it('a GHCB call before the guest registered its GHCB stops the VM (vmm-error), the GHCB unanswered', () => {
    const g = snpGuest(`${ghcbCall({ exitCode: 0x7bn, info1: (0x3f8n << 16n) | 0x10n, rax: 0x48n })}\nhlt`, { mappings });
    expect(g.run()).toEqual({ outcome: 'vmm-error', reason: 'GHCB GPA 0x30000 is not registered (this vCPU registered no GHCB): KVM fails the exit (-EINVAL) and the VM stops' });
    expect(g.vm.memory.readU64(GHCB_GPA + 0x398n)).toBe((0x3f8n << 16n) | 0x10n);  // SW_EXITINFO1 as the guest wrote it
    expect(g.vmm.console.text).toBe('');
  });

  // KVM maps the GHCB GPA through the host's (shared) view and never asks whether the guest made it
  // shared (sev.c sev_handle_vmgexit: kvm_vcpu_map). A guest that forgot to share its GHCB gets no
  // answer: KVM's goes to the shared backing, which is not the page the guest reads. Here the host
  // reads the page's ciphertext and its writes are refused, so the answer is lost the same way.
  describe('a registered GHCB the guest left in private memory', () => {
    /** The whole identity map private (C=1), the GHCB page too, validated at launch. */
    const allPrivate = { mappings: privateIdentityWithGhcb().slice(0, 1), launch: [[GHCB_GPA, 0x1000n]] as Array<[bigint, bigint]> };
    const info1 = (0x3f8n << 16n) | 0x10n;

    it('gets no answer: the guest resumes and reads back its own GHCB (no console output, no VM stop)', () => {
      const g = ghcbGuest(`${ghcbCall({ exitCode: 0x7bn, info1, rax: 0x48n })}
        mov r8, [rdi+0x398]
        mov r9, [rdi+0x3a0]
        mov r10, [rdi+0x3f0]
        mov r11, [rdi+0x3f8]
        hlt`, allPrivate);
      expect(g.platform.rmp.lookup(GHCB_GPA)).toMatchObject({ assigned: true, validated: true });
      expect(g.run()).toMatchObject({ outcome: 'done' });
      // SW_EXITINFO1/2 and the valid bitmap (rax bit 63, exit code/info1/info2 bits 114..116) as the guest wrote them.
      expect([g.vm.vcpu.regs.r8, g.vm.vcpu.regs.r9, g.vm.vcpu.regs.r10, g.vm.vcpu.regs.r11]).toEqual([info1, 0n, 1n << 63n, 0x1cn << 48n]);
      expect(g.vmm.console.text).toBe('');
    });

    it('is served as what the host sees there, its ciphertext (a usage field that is not 0: INVALID_USAGE), and the answer is recorded as lost', () => {
      const g = ghcbGuest(`${ghcbCall({ exitCode: 0x7bn, info1, rax: 0x48n })}
hlt`, allPrivate);
      expect(g.run()).toMatchObject({ outcome: 'done' });
      expect(g.platform.handle.hostMemory.readU32(GHCB_GPA + 0xffcn)).not.toBe(0);  // the guest wrote 0 there (its memory starts zeroed)
      expect(g.vm.memory.readU32(GHCB_GPA + 0xffcn)).toBe(0);
      const lost = g.trace.ofType('ghcb-answer-lost');
      expect(lost).toHaveLength(1);
      expect(lost[0]).toMatchObject({ gpa: GHCB_GPA, exitInfo1: 2n, exitInfo2: 2n });  // GHCB_ERR_INVALID_USAGE
      expect(String(lost[0]!.why)).toMatch(/write refused: RMP-protected \(assigned to ASID 1\)/);
      expect(g.trace.ofType('ghcb-exit')).toHaveLength(0);
    });

    it('made private by its own PSC: the progress and the answer written back into it are lost, the guest resumes', () => {
      // KVM's PSC progress (__snp_complete_one_psc) and answer go into the page it mapped at the
      // VMGEXIT, which after the conversion is no longer the guest's; here the host's writes are refused.
      const entry = encodePscEntry({ curPage: 0, gfn: GHCB_GPA >> 12n, op: PSC_OP.PRIVATE, size2m: false });
      const g = ghcbGuest(`
        mov word ptr [0x${(GHCB_GPA + 0x800n).toString(16)}], 0
        mov word ptr [0x${(GHCB_GPA + 0x802n).toString(16)}], 0
        mov rax, 0x${entry.toString(16)}
        mov [0x${(GHCB_GPA + 0x808n).toString(16)}], rax
        ${ghcbCall({ exitCode: BigInt(SVM_EXIT.PSC), scratch: GHCB_GPA + 0x800n })}
        hlt`, { mappings });
      expect(g.run()).toMatchObject({ outcome: 'done' });
      expect(g.platform.rmp.lookup(GHCB_GPA)).toMatchObject({ assigned: true, validated: false });
      expect(g.trace.ofType('psc')).toMatchObject([{ via: 'ghcb', entry: 0, gpa: GHCB_GPA, op: PSC_OP.PRIVATE, error: 0n }]);
      expect(g.trace.ofType('ghcb-answer-lost')).toMatchObject([{ gpa: GHCB_GPA, why: expect.stringMatching(/write refused: RMP-protected/) }]);
    });

    it('unregistered, stops the VM first: KVM checks the registration before it serves the GHCB', () => {
      const g = snpGuest(`${ghcbCall({ exitCode: 0x7bn, info1, rax: 0x48n })}
hlt`, allPrivate);
      expect(g.run()).toMatchObject({ outcome: 'vmm-error', reason: expect.stringMatching(/^GHCB GPA 0x30000 is not registered/) });
    });
  });
});

describe('trace', () => {
  it('is deterministic: the same guest gives the same hash', () => {
    const src = `${msrProtocol(ghcbMsr.pscReq(T >> 12n, PSC_OP.PRIVATE))}\nmov rax, 0x${T.toString(16)}\nxor ecx, ecx\nmov edx, 1\n${PVALIDATE}\nhlt`;
    const a = snpGuest(src), b = snpGuest(src);
    a.run(); b.run();
    expect(a.trace.sha256()).toBe(b.trace.sha256());
    expect(a.digest).toBe(b.digest);
    for (const type of ['pvalidate', 'vmgexit', 'rmpupdate', 'launch-update']) expect([type, a.trace.ofType(type).length > 0]).toEqual([type, true]);
  });
});
