// Counting mode looks up, per code page, which offsets may hold an intercepted instruction
// (native/src/code_bits.h) instead of decoding every instruction. A page's answers must go the
// moment its bytes change, whoever changes them: these guests run a loop long enough for their
// page to get code bits, then turn two NOPs on that page into CPUID, which must still exit.
import { describe, expect, it } from 'vitest';
import { runToHlt, simpleGuest } from '../helpers/guest-setup.js';

const CPUID = [0x0f, 0xa2];

function expectCpuidExitAtPatch(vm: ReturnType<typeof simpleGuest>): void {
  const exit = vm.vcpu.run();
  expect(exit.kind).toBe('cpuid');
  expect([...vm.memory.read(exit.rip, 2)]).toEqual(CPUID);
}

describe('code bits follow the bytes of the page (counting mode)', () => {
  it('a guest store turning NOPs on a hot page into CPUID exits at the CPUID', () => {
    const vm = simpleGuest(`
        mov ecx, 5000
      hot:
        dec ecx
        jnz hot
        mov word ptr [rip + patch], 0xa20f
      patch:
        nop
        nop
        hlt`);
    expectCpuidExitAtPatch(vm);
  });

  it('a page that mixes code and data (a store to it on every iteration) still exits at a CPUID written there', () => {
    const vm = simpleGuest(`
        mov ecx, 5000
      hot:
        mov dword ptr [rip + counter], ecx
        dec ecx
        jnz hot
        mov word ptr [rip + patch], 0xa20f
      patch:
        nop
        nop
        hlt
      counter:
        .long 0`);
    expectCpuidExitAtPatch(vm);
    expect(vm.memory.readU32(vm.vcpu.regs.rip + 3n)).toBe(1);  // counter, after hlt and the 2-byte CPUID
  });

  it('a host write of CPUID into a page that already ran hot exits at the CPUID', () => {
    const vm = simpleGuest(`
        mov ecx, 5000
      hot:
        dec ecx
        jnz hot
        jmp patch
      patch:
        nop
        nop
        hlt`);
    const end = runToHlt(vm).rip;
    const patch = end - 3n;
    vm.memory.write(patch, Uint8Array.from(CPUID));
    vm.vcpu.regs.rip = 0x1000n;
    expectCpuidExitAtPatch(vm);
    expect(vm.vcpu.regs.rip).toBe(patch);
  });

  it('a REP string step still counts as a repeat, not a retranslation, once its page has code bits', () => {
    const vm = simpleGuest(`
        mov ecx, 5000
      hot:
        dec ecx
        jnz hot
        lea rdi, [rip + buffer]
        mov ecx, 1000
        xor eax, eax
        rep stosb
        hlt
      buffer:`);
    runToHlt(vm);
    // One exit (the run) and no retranslation charge: 1000 REP steps re-run one address.
    expect(vm.vcpu.budgetCharged).toBe(1024n);
    // Each step counts as an instruction: the loop's 2 x 5000, six more, and 1000 steps.
    expect(vm.vcpu.instructions).toBe(10_000n + 6n + 1000n);
  });

  it('REP OUTSB on a page with code bits exits (string I/O is intercepted, repeated or not)', () => {
    const vm = simpleGuest(`
        mov ecx, 5000
      hot:
        dec ecx
        jnz hot
        lea rsi, [rip + hot]
        mov dx, 0x80
        mov ecx, 3
        rep outsb
        hlt`);
    const exit = vm.vcpu.run();
    expect(exit).toMatchObject({ kind: 'io', direction: 'out', port: 0x80, string: true, rep: true, size: 1 });
    vm.vcpu.complete(exit as { length: number });  // the VMM completes the whole string
    expect(vm.vcpu.run().kind).toBe('hlt');
  });
});
