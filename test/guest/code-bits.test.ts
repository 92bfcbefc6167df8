// Counting mode looks up, per code page, which offsets may hold an intercepted instruction
// (native/src/code_bits.h) instead of decoding every instruction. A page's answers must go the
// moment its bytes change, whoever changes them: these guests run a loop long enough for their
// page to get code bits, then turn two NOPs on that page into CPUID, which must still exit.
import { describe, expect, it } from 'vitest';
import { PT_BASE, enablePaging, loadCode, runToHlt, simpleGuest } from '../helpers/guest-setup.js';

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

  // A branch whose target is its own first byte runs again at the same address as the
  // architecture says, not because its block was retranslated: no charge, in every encoding of a
  // relative branch (SDM Vol. 2: JMP EB cb / E9 cd, Jcc 7x cb / 0F 8x cd, LOOP E2 cb; the
  // displacement counts from the next instruction, so it is minus the whole length).
  it.each([
    ['JMP rel8', [0xeb, 0xfe]],
    ['JMP rel32', [0xe9, 0xfb, 0xff, 0xff, 0xff]],
    ['JNZ rel8', [0x75, 0xfe]],
    ['JNZ rel32', [0x0f, 0x85, 0xfa, 0xff, 0xff, 0xff]],
    ['LOOP rel8', [0xe2, 0xfe]],
    ['JMP rel8 behind a REX prefix', [0x48, 0xeb, 0xfd]],
  ])('%s to itself repeats at no charge until the instruction limit', (_name, bytes) => {
    const vm = simpleGuest(`
        xor eax, eax
        inc eax
        mov rcx, 1000000
        .byte ${bytes.join(', ')}
        hlt`);
    try {
      vm.vcpu.instructionLimit = 20_000n;
      expect(vm.vcpu.run()).toMatchObject({ kind: 'budget', instructions: 20_000n });
      expect(vm.vcpu.budgetCharged).toBe(1024n);  // the run's own exit charge, nothing else
    } finally {
      vm.close();
    }
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

// The code hook's common case (native/src/machine.cc OnCode) keeps the last code page's bits and the
// instruction count at which the budget runs out beside it: both must change whenever what they
// stand for does, or an instruction runs that the full path would have stopped.
describe('the code hook\'s common case knows no more than its full path', () => {
  it('a MOV to CR3 that maps the running linear page to other bytes exits at a CPUID there', () => {
    const vm = simpleGuest('hlt');
    const VA = 0x400000n;
    const code = loadCode(vm, `
        mov ecx, 5000
      hot:
        dec ecx
        jnz hot
        mov cr3, rdx
      after:
        nop
        nop
        hlt`, VA);
    // The same page under other tables: the same bytes but a CPUID where the first page has NOPs.
    const other = Uint8Array.from(code);
    other.set(CPUID, code.length - 3);
    vm.memory.write(0x500000n, other);
    const CODE = { va: 0n, pa: 0n, size: 0x200000n, pageSize: 0x200000n } as const;
    const tablesB = enablePaging(vm, [CODE, { va: VA, pa: VA, size: 0x1000n, pageSize: 4096n }]);
    enablePaging(vm, [CODE, { va: VA, pa: 0x500000n, size: 0x1000n, pageSize: 4096n }], tablesB);
    vm.vcpu.writeSpecial('cr3', PT_BASE);
    vm.vcpu.regs.rip = VA;
    vm.vcpu.regs.rdx = tablesB;
    const exit = vm.vcpu.run();
    expect(exit).toMatchObject({ kind: 'cpuid', rip: VA + BigInt(code.length - 3) });
  });

  it('a retranslation charge moves the budget stop of the instructions after it', () => {
    // The store rewrites the block it runs in (the NOP after it), so the emulator runs it again in
    // a block of its own: one retranslation, charged. Then a hot loop on another page runs into
    // the budget on the common case.
    const vm = simpleGuest(`
        mov byte ptr [rip + patch], 0x90
      patch:
        nop
        mov ecx, 1000000
        mov eax, 0x3000
        jmp rax`);
    loadCode(vm, `
      hot:
        dec ecx
        jnz hot
        hlt`, 0x3000n);
    vm.vcpu.regs.rip = 0x1000n;
    const BUDGET = 20_000n;
    vm.vcpu.budgetLimit = BUDGET;
    expect(vm.vcpu.run().kind).toBe('budget');
    expect(vm.vcpu.budgetCharged).toBe(1024n + 512n);  // the run and the retranslation
    expect(vm.vcpu.instructions + vm.vcpu.budgetCharged).toBe(BUDGET);
  });
});
