// RDPMC and XSETBV as real guest instructions, on both platforms.
// RDPMC: the emulator alone raises #UD for it at any CPL (Unicorn helper_rdpmc). The CPU's own
// checks come first (LOCK #UD; CPL > 0 with CR4.PCE clear #GP(0): SDM Vol. 2B RDPMC, APM Vol. 3
// RDPMC; SDM Vol. 3C §26.1.1, APM Vol. 2 §15.9). A TD without ATTRIBUTES.PERFMON has RDPMC exiting
// (td_vmcs_init.c) and td_rdpmc_exit (td_other_exits.c) injects #GP(0). An SNP guest takes #VC
// SVM_EXIT_RDPMC (KVM init_vmcb: INTERCEPT_RDPMC); KVM without a vPMU answers the GHCB request with
// #GP(0) by event injection (kvm_emulate_rdpmc: kvm_pmu_rdpmc fails while pmu->version is 0).
// XSETBV: every XSETBV of a TD exits to the module, whose td_xsetbv_instruction_exit (td_xsetbv.c)
// injects #GP(0) for ECX != 0 or an XCR0 value check_guest_xcr0_value refuses (a bit outside
// XFAM, x87|SSE here: td-cpuid.ts TD_XFAM), and otherwise does the XSETBV itself. An SNP guest's
// XSETBV is not intercepted (KVM sev_es_init_vmcb: "Can't intercept XSETBV"): the CPU runs it.
import { describe, expect, it } from 'vitest';
import { HALT, runAtResetVector, runTdGuest, toCpl } from '../helpers/tdx-guest.js';
import { GHCB_GPA, REGISTER_GHCB, SNP_GUEST_CPL3_LAUNCH, SNP_GUEST_TO_CPL3, ghcbCall, privateIdentityWithGhcb, snpGuest } from '../helpers/snp-guest.js';
import { GHCB_ERR, GHCB_OFFSET, SVM_EXIT } from '../../src/platform/snp/ghcb-page.js';
import { TdAttributes } from '../../src/platform/tdx/td-module.js';
import { TD_XFAM } from '../../src/platform/tdx/td-cpuid.js';
import { SnpPlatform } from '../../src/platform/snp/snp-cpu.js';
import { applyVmsa, bspResetVmsa } from '../../src/platform/snp/vmsa.js';
import { CODE_BASE, runToHlt, simpleGuest } from '../helpers/guest-setup.js';
import { assemble } from '../helpers/assemble.js';

// #GP handler for TD guests: error code -> R13, the pushed RIP -> R12, vector -> R15.
const TD_GP_FRAME = `pop r13\n mov r12, [rsp]\n mov r15, 13\n ${HALT}`;

describe('RDPMC in a TD (ATTRIBUTES.PERFMON clear)', () => {
  it.each(['0', '1', '0x40000000', '0xffffffff'])('ECX %s: #GP(0) from td_rdpmc_exit, RIP at the instruction, whatever counter ECX names', (ecx) => {
    const { td, outcome } = runTdGuest(`mov rcx, ${ecx}\n mov r14, -1\n lea rbx, [rip + 1f]\n 1: rdpmc\n mov r14, 0x77\n ${HALT}`, { gp: TD_GP_FRAME });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r15, r.r13, r.r12, r.r14]).toEqual([13n, 0n, r.rbx, 0xffffffffffffffffn]);
  });

  it('with a LOCK prefix: #UD, the CPU\'s, not the module\'s #GP', () => {
    const { td, outcome } = runTdGuest(`xor ecx, ecx\n .byte 0xf0, 0x0f, 0x33\n ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(6n);
  });

  // SDM Vol. 2B RDPMC: #GP(0) "If the current privilege level is not 0 and the PCE flag in the CR4
  // register is clear": CPL 1 and 2 as well as 3. With ATTRIBUTES.PERFMON the TD has no RDPMC
  // exiting, so the #GP(0) is the CPU's own; with CR4.PCE set there is none, and the read reaches
  // counters the model does not have.
  it.each([1, 2] as const)('with ATTRIBUTES.PERFMON, at CPL %s: #GP(0) with CR4.PCE clear, no #GP with it set', (cpl) => {
    const { td, outcome } = runTdGuest(`${toCpl(cpl)}\n xor ecx, ecx\n mov r14, -1\n lea rbx, [rip + 1f]\n 1: rdpmc\n mov r14, 0x77\n ${HALT}`, { attributes: TdAttributes.PERFMON, gp: TD_GP_FRAME });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r15, r.r13, r.r12, r.r14]).toEqual([13n, 0n, r.rbx, 0xffffffffffffffffn]);
    const pce = runTdGuest(`mov rax, cr4\n bts rax, 8\n mov cr4, rax\n ${toCpl(cpl)}\n xor ecx, ecx\n rdpmc\n ${HALT}`, { attributes: TdAttributes.PERFMON });
    expect(pce.outcome).toMatchObject({ outcome: 'fault', reason: expect.stringMatching(/RDPMC .* ATTRIBUTES\.PERFMON/) });
  });

  it('with ATTRIBUTES.PERFMON there is no RDPMC exiting: the CPU reads its own counters, which the model does not have, so the run stops', () => {
    const { outcome } = runTdGuest(`xor ecx, ecx\n rdpmc\n ${HALT}`, { attributes: TdAttributes.PERFMON });
    expect(outcome).toMatchObject({ outcome: 'fault', reason: expect.stringMatching(/RDPMC .* ATTRIBUTES\.PERFMON/) });
  });
});

describe('XSETBV in a TD (XFAM x87|SSE)', () => {
  it('the model\'s TD has XFAM 3', () => {
    expect(TD_XFAM).toBe(3n);
  });

  it('XCR0 starts at 1, x87 only (tdh_vp_init.c: guest_state.xcr0 = XCR0_RESET_STATE, loaded by TDH.VP.ENTER)', () => {
    // At the reset vector (ECX = TDH.VP.INIT's RCX, 0): mov eax, cr4; bts eax, 18 (OSXSAVE); mov cr4, eax; xgetbv; jmp $.
    const { td, step } = runAtResetVector([0x0f, 0x20, 0xe0, 0x0f, 0xba, 0xe8, 0x12, 0x0f, 0x22, 0xe0, 0x0f, 0x01, 0xd0, 0xeb, 0xfe], 5n);
    expect(step).toMatchObject({ kind: 'outcome', outcome: { outcome: 'budget' } });
    const r = td.platform.machine.vcpu.regs;
    expect([r.rax & 0xffffffffn, r.rdx & 0xffffffffn]).toEqual([1n, 0n]);
    td.platform.machine.close();
  });

  it('a value within XFAM is done (the module\'s own XSETBV): XGETBV reads it back', () => {
    const { td, outcome } = runTdGuest(`
      xor ecx, ecx\n xor edx, edx
      mov eax, 1\n xsetbv\n xgetbv\n mov r8, rax
      mov eax, 3\n xsetbv\n xgetbv\n mov r9, rax
      mov r15, 0x99
      ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r8, r.r9, r.r15]).toEqual([1n, 3n, 0x99n]);
  });

  it('the high halves of RAX, RCX and RDX are ignored (SDM Vol. 2D XSETBV; td_xsetbv.c takes (uint32_t)RCX and RAX & BITS(31,0)): XCR0 = EDX:EAX = 3', () => {
    const { td, outcome } = runTdGuest(`
      mov rax, 0xffffffff00000003\n mov rcx, 0xffffffff00000000\n mov rdx, 0xffffffff00000000
      xsetbv
      xor ecx, ecx\n xgetbv\n mov r8, rax
      ${HALT}`, { gp: TD_GP_FRAME });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r8, r.r15]).toEqual([3n, 0n]);
  });

  it.each([
    ['AVX (bit 2), which the CPU has but XFAM does not', 0, 7, 0],
    ['AVX with ECX 1 (td_xsetbv.c checks ECX first)', 1, 7, 0],
    ['a bit in EDX (bit 32)', 0, 3, 1],
    ['x87 clear as well as a bit outside XFAM', 0, 6, 0],
  ])('%s: #GP(0), RIP at the instruction, XCR0 unchanged', (_name, ecx, eax, edx) => {
    const { td, outcome } = runTdGuest(`
      xor ecx, ecx\n xor edx, edx\n mov eax, 3\n xsetbv
      mov ecx, ${ecx}\n mov eax, ${eax}\n mov edx, ${edx}
      lea rbx, [rip + 1f]
    1: xsetbv
      ${HALT}`, { gp: `pop r13\n mov r12, [rsp]\n xor ecx, ecx\n xgetbv\n mov r8, rax\n mov r15, 13\n ${HALT}` });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r15, r.r13, r.r12, r.r8]).toEqual([13n, 0n, r.rbx, 3n]);
  });

  it('with CR4.OSXSAVE clear: #UD before any VM exit (SDM Vol. 2D XSETBV), even for a value outside XFAM', () => {
    const { td, outcome } = runTdGuest(`
      mov rax, cr4\n btr rax, 18\n mov cr4, rax
      xor ecx, ecx\n xor edx, edx\n mov eax, 7
      xsetbv
      ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(6n);
  });
});

describe('RDPMC on an SNP guest', () => {
  // #VC handler: error code -> R15, the pushed RIP -> RBX, vector -> R13.
  const VC_FRAME = 'pop r15\n mov rbx, [rsp]\n mov r13, 29\n hlt';

  it('#VC with SVM_EXIT_RDPMC (0x6f), RIP at the instruction', () => {
    const g = snpGuest(`lea r12, [rip + 1f]\n xor ecx, ecx\n 1: rdpmc\n mov r13, 0xbad\n hlt`, { vcHandler: VC_FRAME });
    expect(g.run().outcome).toBe('done');
    const r = g.vm.vcpu.regs;
    expect([r.r13, r.r15, r.rbx]).toEqual([29n, 0x6fn, r.r12]);
    expect(SVM_EXIT.RDPMC).toBe(0x6f);
  });

  it('at CPL 3: #GP(0) with CR4.PCE clear, #VC with it set; with LOCK #UD; the CPU\'s checks before any intercept', () => {
    const atCpl3 = (insn: string, pce: boolean) => {
      const g = snpGuest(`
        ${pce ? 'mov rax, cr4\n bts rax, 8\n mov cr4, rax' : ''}
        ${SNP_GUEST_TO_CPL3}
        xor ecx, ecx
        ${insn}
        hlt`, { launch: SNP_GUEST_CPL3_LAUNCH });
      g.run();
      return { vc: g.trace.ofType('inject-vc'), other: g.trace.ofType('inject') };
    };
    const noPce = atCpl3('rdpmc', false);
    expect(noPce.vc).toEqual([]);
    expect(noPce.other[0]).toMatchObject({ vector: 13, errorCode: 0n });
    const pce = atCpl3('rdpmc', true);
    expect(pce.other).toEqual([]);
    expect(pce.vc[0]).toMatchObject({ vector: 29, errorCode: 0x6fn });
    const lock = atCpl3('.byte 0xf0, 0x0f, 0x33', true);
    expect(lock.vc).toEqual([]);
    expect(lock.other[0]).toMatchObject({ vector: 6 });
  });

  it('the honest VMM answers a GHCB RDPMC request as KVM without a vPMU: SW_EXITINFO1/2 = 0 and #GP(0) injected after the VMGEXIT; without RCX valid, MISSING_INPUT and no #GP', () => {
    const ask = (withRcx: boolean) => {
      // RCX's valid bit is bit 0x308/8 = 97 of the bitmap (ghcbCall leaves it as it is).
      const rcxValid = withRcx
        ? `mov qword ptr [0x${(GHCB_GPA + BigInt(GHCB_OFFSET.rcx)).toString(16)}], 1\n`
          + `or byte ptr [0x${(GHCB_GPA + BigInt(GHCB_OFFSET.validBitmap + (GHCB_OFFSET.rcx / 8 >> 3))).toString(16)}], ${1 << (GHCB_OFFSET.rcx / 8 & 7)}`
        : '';
      const g = snpGuest(`
        ${REGISTER_GHCB}
        mov r13, 0
        lea r12, [rip + after]
        ${rcxValid}
        ${ghcbCall({ exitCode: BigInt(SVM_EXIT.RDPMC) })}
      after:
        mov rbx, [0x${(GHCB_GPA + BigInt(GHCB_OFFSET.swExitInfo1)).toString(16)}]
        mov rsi, [0x${(GHCB_GPA + BigInt(GHCB_OFFSET.swExitInfo2)).toString(16)}]
        hlt`, { mappings: privateIdentityWithGhcb() });
      expect(g.run().outcome).toBe('done');
      return { g, r: g.vm.vcpu.regs };
    };
    const served = ask(true);
    // The default #GP handler: vector -> R13, error code -> R15, then HLT (RBX/RSI never loaded).
    expect([served.r.r13, served.r.r15]).toEqual([13n, 0n]);
    const gp = served.g.trace.ofType('inject');
    expect(gp).toHaveLength(1);
    expect(gp[0]).toMatchObject({ vector: 13, errorCode: 0n, rip: served.r.r12, reason: 'injected by the VMM' });
    const missing = ask(false);
    expect([missing.r.r13, missing.r.rbx, missing.r.rsi]).toEqual([0n, 2n, GHCB_ERR.MISSING_INPUT]);
    expect(missing.g.trace.ofType('inject')).toEqual([]);
  });
});

describe('XSETBV on an SNP guest: not intercepted, the CPU runs it', () => {
  it('XCR0 takes the value, with no #VC', () => {
    const g = snpGuest(`
      mov r13, 0
      xor ecx, ecx\n xor edx, edx
      mov eax, 1\n xsetbv\n xgetbv\n mov r8, rax
      mov eax, 3\n xsetbv\n xgetbv\n mov r9, rax
      hlt`);
    expect(g.run().outcome).toBe('done');
    const r = g.vm.vcpu.regs;
    expect([r.r8, r.r9, r.r13]).toEqual([1n, 3n, 0n]);
    expect(g.trace.ofType('inject-vc')).toEqual([]);
  });

  it.each([
    ['AVX without SSE', 5],
    ['AVX-512 opmask without ZMM_Hi256 and Hi16_ZMM', 0x27],
  ])('%s: the CPU\'s #GP(0), RIP at the XSETBV, XCR0 unchanged (SDM Vol. 2D XSETBV; QEMU\'s helper_xsetbv would take it)', (_what, value) => {
    const g = snpGuest(`
      mov r13, 0
      xor ecx, ecx\n xor edx, edx
      mov eax, 3\n xsetbv
      mov eax, ${value}
      lea r12, [rip + 1f]
    1: xsetbv
      hlt`, { udHandler: 'mov r13, 6\n hlt' });
    g.vm.memory.write(CODE_BASE + 0x900n, assemble('pop r15\n mov rbx, [rsp]\n mov r13, 13\n xor ecx, ecx\n xgetbv\n mov r8, rax\n hlt', CODE_BASE + 0x900n));
    expect(g.run().outcome).toBe('done');
    const r = g.vm.vcpu.regs;
    expect([r.r13, r.r15, r.rbx, r.r8]).toEqual([13n, 0n, r.r12, 3n]);
    expect(g.trace.ofType('inject-vc')).toEqual([]);
  });

  it('with CR4.OSXSAVE clear the same XSETBV is #UD, which comes before the value\'s #GP (SDM Vol. 2D XSETBV, exceptions)', () => {
    const g = snpGuest(`
      mov r13, 0
      mov rax, cr4\n btr rax, 18\n mov cr4, rax
      xor ecx, ecx\n xor edx, edx\n mov eax, 5
      xsetbv
      hlt`, { udHandler: 'mov r13, 6\n hlt' });
    expect(g.run().outcome).toBe('done');
    expect(g.vm.vcpu.regs.r13).toBe(6n);
  });

  it('ECX 1: the CPU\'s own #GP(0) (SDM Vol. 2D XSETBV), no #VC', () => {
    const g = snpGuest(`mov r13, 0\n mov ecx, 1\n xor edx, edx\n mov eax, 3\n xsetbv\n hlt`);
    expect(g.run().outcome).toBe('done');
    expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.r15]).toEqual([13n, 0n]);
    expect(g.trace.ofType('inject-vc')).toEqual([]);
  });
});

describe('Vcpu.writeXcr0: XCR0 as a reset or VMRUN sets it, through the CPU\'s own XSETBV', () => {
  const xgetbv = (vm: ReturnType<typeof simpleGuest>) => {
    runToHlt(vm);
    return vm.vcpu.regs.r8;
  };
  const code = 'mov rax, cr4\n or rax, 0x40000\n mov cr4, rax\n xor ecx, ecx\n xgetbv\n mov r8, rax\n hlt';

  it('takes a value XSETBV takes, and leaves CR4, RIP, RAX, RCX and RDX as they were', () => {
    for (const value of [1n, 3n, 7n]) {
      const vm = simpleGuest(code);
      const before = { cr4: vm.vcpu.readSpecial('cr4'), rip: vm.vcpu.regs.rip };
      Object.assign(vm.vcpu.regs, { rax: 0x11n, rcx: 0x22n, rdx: 0x33n });
      vm.vcpu.writeXcr0(value);
      expect([vm.vcpu.readSpecial('cr4'), vm.vcpu.regs.rip, vm.vcpu.regs.rax, vm.vcpu.regs.rcx, vm.vcpu.regs.rdx]).toEqual([before.cr4, before.rip, 0x11n, 0x22n, 0x33n]);
      expect(xgetbv(vm)).toBe(value);
      vm.close();
    }
  });

  it('with CR4.OSXSAVE clear, XCR0 takes the value all the same and CR4 stays clear (the host writes XCR0 as VMRUN or TDH.VP.INIT does, with no XSETBV of the guest\'s)', () => {
    const vm = simpleGuest(code);
    const cr4 = vm.vcpu.readSpecial('cr4') & ~0x40000n;
    vm.vcpu.writeSpecial('cr4', cr4);
    vm.vcpu.writeXcr0(3n);
    expect(vm.vcpu.readSpecial('cr4')).toBe(cr4);
    expect(xgetbv(vm)).toBe(3n);
    vm.close();
  });

  it('refuses a bit the CPU does not support in EAX\'s top byte or in EDX (SDM Vol. 2D XSETBV: #GP), XCR0 unchanged', () => {
    const vm = simpleGuest(code);
    vm.vcpu.writeXcr0(3n);
    for (const value of [0x80000003n, 0x100000003n]) expect(() => vm.vcpu.writeXcr0(value)).toThrow(/cannot set XCR0/);
    expect(xgetbv(vm)).toBe(3n);
    vm.close();
  });

  it('refuses what XSETBV refuses with #GP (SDM Vol. 2D XSETBV: bit 0 clear, AVX without SSE, a feature the CPU lacks), XCR0 unchanged', () => {
    const vm = simpleGuest(code);
    vm.vcpu.writeXcr0(1n);
    expect(() => vm.vcpu.writeXcr0(0n)).toThrow(/cannot set XCR0: XSETBV of 0x0 raises #GP/);
    // A feature the emulated CPU lacks (PKRU, bit 9: CPUID 0xD.0 does not list it): the CPU's own XSETBV refuses it.
    expect(() => vm.vcpu.writeXcr0(0x203n)).toThrow(/cannot set XCR0: XSETBV of 0x203: XSETBV raised vector 13/);
    expect(() => vm.vcpu.writeXcr0(5n)).toThrow(/XSETBV of 0x5 raises #GP/);
    expect(() => vm.vcpu.writeXcr0(0x67n)).toThrow(/XSETBV of 0x67 raises #GP/);  // bits 7:5 not all set
    expect(xgetbv(vm)).toBe(1n);
    vm.close();
  });

  it('an SNP BSP starts from its launch VMSA with XCR0 1 (KVM kvm_vcpu_reset: xcr0 = XFEATURE_MASK_FP; sev-snp-measure: the VMSA\'s xcr0 is 1)', () => {
    const m = SnpPlatform.create({ memoryBytes: 16n << 20n }).machine;
    const written: bigint[] = [];
    const original = m.vcpu.writeXcr0.bind(m.vcpu);
    m.vcpu.writeXcr0 = (value: bigint) => { written.push(value); original(value); };
    applyVmsa(m, bspResetVmsa());
    expect(written).toEqual([1n]);
    m.close();
  });
});
