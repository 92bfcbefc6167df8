// RFLAGS.RF in the frame an SEV-SNP guest's exception pushes. AMD APM Vol. 2 §3.1.6 "Resume Flag
// (RF) Bit 16": when an exception occurs the processor normally sets RF=1 in the RFLAGS image
// saved on the interrupt stack (so that IRET back to the faulting instruction skips its
// instruction breakpoint); an interrupt between instructions pushes RF as it is (0 here: nothing
// set it). §15.20: events the VMM injects through EVENTINJ "are treated in every way as though
// they had occurred normally in the guest".
import { describe, expect, it } from 'vitest';
import { C_BIT, HANDLER, snpGuest } from '../../helpers/snp-guest.js';
import { installIdt } from '../../helpers/guest-setup.js';

const RF = 1n << 16n;
// 64-bit frame: [error code,] RIP, CS, RFLAGS. Each handler keeps the pushed RFLAGS in RBX.
const WITH_ERROR_CODE = 'mov rbx, [rsp + 24]\n mov r13, 29\n hlt';
const WITHOUT_ERROR_CODE = 'mov rbx, [rsp + 16]\n mov r13, 6\n hlt';

describe('RF in the RFLAGS image of an SNP guest\'s exception frame', () => {
  it('#VC the CPU raises for CPUID (SW_EXITCODE 0x72, RIP at the CPUID) pushes RF = 1', () => {
    const g = snpGuest('mov eax, 1\n cpuid\n hlt', { vcHandler: WITH_ERROR_CODE });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.rbx & RF]).toEqual([29n, RF]);
  });

  it('#VC 0x404 the CPU raises for a read of a guest-owned page with Validated = 0 pushes RF = 1', () => {
    const page = 0x400000n;
    const g = snpGuest(`mov rax, [0x${page.toString(16)}]\n hlt`, { vcHandler: WITH_ERROR_CODE });
    g.platform.rmpUpdate(page, { assigned: true, pageSize: '4k', gpa: page, asid: g.platform.asid });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.trace.ofType('inject-vc')[0]).toMatchObject({ errorCode: 0x404n });
    expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.rbx & RF]).toEqual([29n, RF]);
  });

  it('#UD the CPU raises for UD2 (a fault) pushes RF = 1', () => {
    const g = snpGuest('ud2\n hlt', { udHandler: WITHOUT_ERROR_CODE });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.rbx & RF]).toEqual([6n, RF]);
  });

  // The same APM text for exceptions the emulator itself raises on a guest instruction (exits of
  // kind 'exception'): #DE is a fault (RIP at the DIV), so RF = 1; INT3 and INT n are traps whose
  // frame holds the RIP after them, an instruction-boundary event: RF as it is (0).
  it('#DE the CPU raises for a divide by zero (a fault) pushes RF = 1; INT3 and INT n (after the instruction) push RF as it is (0)', () => {
    const frameRf = (main: string, vector: number) => {
      const g = snpGuest(main, { udHandler: WITHOUT_ERROR_CODE });
      installIdt(g.vm, { 29: HANDLER.vc, 13: HANDLER.gp, 14: HANDLER.pf, 6: HANDLER.ud, [vector]: HANDLER.ud });
      expect(g.run()).toMatchObject({ outcome: 'done' });
      expect(g.trace.ofType('inject').map((e) => e.vector)).toEqual([vector]);
      expect(g.vm.vcpu.regs.r13).toBe(6n);  // the frame was read by the handler
      return g.vm.vcpu.regs.rbx & RF;
    };
    expect(frameRf('xor ecx, ecx\n mov eax, 1\n div ecx\n hlt', 0)).toBe(RF);
    expect(frameRf('int3\n hlt', 3)).toBe(0n);
    expect(frameRf('int 0x40\n hlt', 0x40)).toBe(0n);
  });

  it('events the VMM injects: a fault-class exception (#VC, #UD) pushes RF = 1, an interrupt (vector 0x20) RF as it is (0)', () => {
    const vc = snpGuest('hlt', { vcHandler: WITH_ERROR_CODE });
    vc.platform.injectFromHost(29, 0x72n);
    expect(vc.run()).toMatchObject({ outcome: 'done' });
    expect([vc.vm.vcpu.regs.r13, vc.vm.vcpu.regs.rbx & RF]).toEqual([29n, RF]);

    const ud = snpGuest('hlt', { udHandler: WITHOUT_ERROR_CODE });
    ud.platform.injectFromHost(6);
    expect(ud.run()).toMatchObject({ outcome: 'done' });
    expect([ud.vm.vcpu.regs.r13, ud.vm.vcpu.regs.rbx & RF]).toEqual([6n, RF]);

    // Vector 0x20 delivered through the #UD handler's code: the same frame layout (no error code).
    const irq = snpGuest('hlt', { udHandler: WITHOUT_ERROR_CODE });
    installIdt(irq.vm, { 29: HANDLER.vc, 13: HANDLER.gp, 14: HANDLER.pf, 6: HANDLER.ud, 0x20: HANDLER.ud });
    irq.platform.injectFromHost(0x20);
    expect(irq.run()).toMatchObject({ outcome: 'done' });
    expect([irq.vm.vcpu.regs.r13, irq.vm.vcpu.regs.rbx & RF]).toEqual([6n, 0n]);
  });
});

// A #PF the CPU raises on the guest's own access is delivered as the architecture says, not only
// its vector: AMD APM Vol. 2 §8.4.15 "Page-Fault Exception (#PF)": the error code's P bit is 0 for
// a not-present page and W/R is 1 for a write, and CR2 holds the virtual address that caused the
// fault. (The default #PF handler of snpGuest keeps the error code in R15 and CR2 in R14.)
describe('the #PF an SNP guest\'s write to an unmapped address raises', () => {
  it('carries error code 2 (write, not present) and CR2 = the faulting address', () => {
    const unmapped = 0x40000000n;
    const g = snpGuest(`mov rax, 0x${unmapped.toString(16)}\n mov qword ptr [rax + 0x18], 1\n hlt`, {
      mappings: [{ va: 0n, pa: 0n, size: 0x800000n, pageSize: 4096n, extraBits: C_BIT }],
    });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.trace.ofType('inject').map((e) => e.vector)).toEqual([14]);
    const regs = g.vm.vcpu.regs;
    expect([regs.r13, regs.r15, regs.r14]).toEqual([14n, 2n, unmapped + 0x18n]);
  });
});
