// A fault the emulator raises is over once the host has delivered it. QEMU keeps the vector of
// an exception "in flight" (CPUX86State.old_exception) and, in check_exception
// (target/i386/excp_helper.c), turns the next contributory fault (#DE, #TS, #NP, #SS, #GP) into
// #DF and the one after into a triple fault, unless a delivery of its own cleared it
// (x86_cpu_do_interrupt: "successfully delivered"). Unicorn hands every exception to the hook
// instead, so nothing cleared it: the second of two unrelated faults came out as #DF. On the CPU a
// fault during handler delivery is a double fault; two faults each delivered are two faults
// (SDM Vol. 3A §6.15, Interrupt 8, Table 6-5).
import { describe, expect, it } from 'vitest';
import { CODE_BASE, installIdt, runToHlt, simpleGuest } from '../helpers/guest-setup.js';
import { assemble } from '../helpers/assemble.js';
import { snpGuest } from '../helpers/snp-guest.js';
import { HALT, runTdGuest, toCpl } from '../helpers/tdx-guest.js';

const HANDLER = 0x3000n;

describe('faults the emulator raises, one after another, each delivered', () => {
  it('three #DE then three #GP are six faults, no #DF and no triple fault', () => {
    // The handlers step over the 2-byte faulting instruction (DIV ECX; MOV DS, AX with a selector
    // past the GDT's limit) and count in R14; #GP's drops its error code first.
    const vm = simpleGuest(`
      xor r14, r14
      xor ecx, ecx
      div ecx
      div ecx
      div ecx
      mov eax, 0x40
      mov ds, ax
      mov ds, ax
      mov ds, ax
      hlt`);
    vm.memory.write(HANDLER, assemble('inc r14\n add qword ptr [rsp], 2\n iretq', HANDLER));
    vm.memory.write(HANDLER + 0x100n, assemble('inc r14\n add rsp, 8\n add qword ptr [rsp], 2\n iretq', HANDLER + 0x100n));
    installIdt(vm, { 0: HANDLER, 13: HANDLER + 0x100n });
    const vectors: number[] = [];
    for (;;) {
      const exit = vm.vcpu.run();
      if (exit.kind !== 'exception') {
        expect(exit.kind).toBe('hlt');
        break;
      }
      vectors.push(exit.vector);
      vm.vcpu.inject(exit.vector, exit.vector === 13 ? 0x40n : undefined);
    }
    expect(vectors).toEqual([0, 0, 0, 13, 13, 13]);
    expect(vm.vcpu.regs.r14).toBe(6n);
    vm.close();
  });

  it('Vcpu.writeXcr0 refused by the CPU\'s XSETBV twice: #GP both times, not #DF the second', () => {
    const vm = simpleGuest('hlt');
    // PKRU (bit 9): the emulated CPU lacks it, so the stub's XSETBV raises #GP(0).
    expect(() => vm.vcpu.writeXcr0(0x203n)).toThrow(/XSETBV raised vector 13/);
    expect(() => vm.vcpu.writeXcr0(0x203n)).toThrow(/XSETBV raised vector 13/);
    expect(() => vm.vcpu.writeXcr0(0x203n)).toThrow(/XSETBV raised vector 13/);
    runToHlt(vm);
    vm.close();
  });

  it('an SNP guest\'s two refused XSETBVs: two #GP(0) from the CPU, not #GP then #DF', () => {
    // XCR0 0x203 sets PKRU (bit 9), which the emulated CPU lacks (CPUID 0xD.0), so its XSETBV
    // refuses it with #GP(0) (SDM Vol. 2D XSETBV); an SNP guest's XSETBV is not intercepted.
    const g = snpGuest(`
      xor r12, r12
      xor ecx, ecx\n xor edx, edx\n mov eax, 0x203
      xsetbv
      xsetbv
      hlt`);
    // The #GP handler (at 0x900) steps over the 3-byte XSETBV and counts in R12.
    g.vm.memory.write(CODE_BASE + 0x900n, assemble('add rsp, 8\n add qword ptr [rsp], 3\n inc r12\n iretq', CODE_BASE + 0x900n));
    expect(g.run().outcome).toBe('done');
    expect(g.vm.vcpu.regs.r12).toBe(2n);
    expect(g.trace.ofType('inject').map((e) => e.vector)).toEqual([13, 13]);
  });

  it('a TD\'s HLT at CPL 1 twice: #GP(0) both times (SDM Vol. 2A HLT), not #GP then #DF', () => {
    const { td, outcome } = runTdGuest(`
      xor r14, r14
      ${toCpl(1)}
      hlt
      hlt
      ud2`, {
      // Steps over the HLT back to CPL 1, and ends the run at the second.
      gp: `pop r13\n inc r14\n add qword ptr [rsp], 1\n cmp r14, 2\n jae 1f\n iretq\n 1: mov r15, 13\n ${HALT}`,
    });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r15, r.r14, r.r13]).toEqual([13n, 2n, 0n]);
  });
});
