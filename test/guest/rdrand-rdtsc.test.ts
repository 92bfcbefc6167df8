// RDRAND, RDSEED and RDTSC on both platforms: Unicorn would answer them from the host's random
// source and clock, so the native side stops at them (native/src/trapped_insn.cc) and the CPU
// model answers from the run's seed (src/cpu/hardware-random.ts, virtual-tsc.ts): a run repeats.
// Linux's decompressor needs it: sev_verify_cbit() under SEV-SNP, KASLR's kaslr_get_random_long().
import { describe, expect, it } from 'vitest';
import { HardwareRandom } from '../../src/cpu/hardware-random.js';
import { TSC_STEP_PER_READ, VirtualTsc } from '../../src/cpu/virtual-tsc.js';
import { runTd } from '../../src/vmm/tdx/run-td.js';
import { snpGuest } from '../helpers/snp-guest.js';
import { tdGuest } from '../helpers/tdx-guest.js';

/**
 * rdrand r10 (64-bit); rdrand ebx (32-bit: zero-extends); rdseed cx (16-bit: keeps the rest);
 * two RDTSCs; flags after the first and the last random instruction in r8, r9.
 */
const PROGRAM = `
  mov rbx, -1
  mov rcx, -1
  xor eax, eax
  cmp eax, eax          # ZF = 1, CF = 0 before: RDRAND must clear ZF and set CF
  rdrand r10
  pushfq
  pop r8
  rdrand ebx
  rdseed cx
  pushfq
  pop r9
  rdtsc
  shl rdx, 32
  or rax, rdx
  mov r11, rax
  rdtsc
  shl rdx, 32
  or rax, rdx
  mov r12, rax
`;

function expectedRandom(seed: bigint): bigint[] {
  const r = new HardwareRandom();
  r.seed(seed);
  return [r.next(), r.next() & 0xffffffffn, r.next() & 0xffffn];
}

describe.each(['snp', 'tdx'] as const)('RDRAND, RDSEED and RDTSC in a %s guest', (platform) => {
  function run(seed: bigint) {
    if (platform === 'snp') {
      const g = snpGuest(`${PROGRAM}\n hlt`);
      g.vm.random.seed(seed);
      g.vm.tsc.seed(seed);
      expect(g.run()).toMatchObject({ outcome: 'done' });
      return { regs: g.vm.vcpu.regs, events: g.trace.events, close: () => g.vm.close() };
    }
    // The TDX helper's HLT (a TDVMCALL) clobbers RAX/RCX/R10-R11: keep the results elsewhere first.
    const td = tdGuest(`${PROGRAM}\n mov r13, r10\n mov r14, r11\n mov r15, rcx\n xor eax, eax\n mov ecx, 0xc00\n xor r10d, r10d\n mov r11d, 12\n .byte 0x66, 0x0f, 0x01, 0xcc`);
    td.platform.machine.random.seed(seed);
    td.platform.machine.tsc.seed(seed);
    expect(runTd(td).outcome).toBe('done');
    const regs = td.platform.machine.vcpu.regs;
    return {
      regs: { ...regs.toObject(), r10: regs.r13, r11: regs.r14, rcx: regs.r15 }, events: td.platform.trace.events,
      close: () => td.platform.machine.close(),
    };
  }

  it('RDRAND/RDSEED give the seeded values at their operand size, with CF = 1 and ZF = 0, and the guest goes on', () => {
    const g = run(42n);
    const [a, b, c] = expectedRandom(42n);
    expect(g.regs.r10).toBe(a);
    expect(g.regs.rbx).toBe(b);                              // 32-bit destination: upper half cleared
    expect(g.regs.rcx).toBe(0xffffffffffff0000n | c!);       // 16-bit destination: the rest kept
    for (const flags of [g.regs.r8, g.regs.r9]) expect([flags & 1n, (flags >> 6n) & 1n]).toEqual([1n, 0n]);
    expect(g.events.filter((e) => e.type === 'rdrand' || e.type === 'rdseed').map((e) => [e.type, e.value])).toEqual([['rdrand', a], ['rdrand', b], ['rdseed', c]]);
    g.close();
  });

  it('RDTSC counts up by a fixed step from a value the seed gives', () => {
    const g = run(42n);
    const tsc = new VirtualTsc();
    tsc.seed(42n);
    expect(g.regs.r11).toBe(tsc.read());
    expect(g.regs.r12 - g.regs.r11).toBe(TSC_STEP_PER_READ);
    g.close();
  });

  it('the same seed repeats the run; another seed changes the values', () => {
    const [one, again, other] = [run(1n), run(1n), run(2n)];
    expect([again.regs.r10, again.regs.r11]).toEqual([one.regs.r10, one.regs.r11]);
    expect(other.regs.r10).not.toBe(one.regs.r10);
    expect(other.regs.r11).not.toBe(one.regs.r11);
    for (const g of [one, again, other]) g.close();
  });
});

// RDTSCP reads the same counter and loads ECX with IA32_TSC_AUX[31:0], clearing RCX's upper half
// (SDM Vol. 2B "RDTSCP"). Unicorn would answer it from the host's TSC: two runs read different
// values and neither follows the guest's RDTSCs.
describe('RDTSCP', () => {
  const RDTSCP_PAIR = `
    mov rcx, -1
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov rbx, rax
    rdtscp
    shl rdx, 32
    or rax, rdx
    mov rsi, rax
    mov rdi, rcx`;

  it('in a TD: the next value of the seeded counter, and ECX = the IA32_TSC_AUX the TD wrote', () => {
    const read = (seed: bigint) => {
      const td = tdGuest(`mov ecx, 0xc0000103\n mov eax, 0x2a\n xor edx, edx\n wrmsr\n ${RDTSCP_PAIR}
        xor eax, eax\n mov ecx, 0xc00\n xor r10d, r10d\n mov r11d, 12\n .byte 0x66, 0x0f, 0x01, 0xcc`);
      td.platform.machine.tsc.seed(seed);
      expect(runTd(td).outcome).toBe('done');
      const r = td.platform.machine.vcpu.regs;
      const out = [r.rbx, r.rsi, r.rdi];
      td.platform.machine.close();
      return out;
    };
    const tsc = new VirtualTsc();
    tsc.seed(7n);
    const first = tsc.read();
    expect(read(7n)).toEqual([first, first + TSC_STEP_PER_READ, 0x2an]);
    expect(read(7n)).toEqual(read(7n));
  });

  it('on an SNP guest: the next value of the seeded counter, ECX = IA32_TSC_AUX (0: KVM intercepts the MSR for a guest without RDTSCP in its CPUID)', () => {
    const g = snpGuest(`${RDTSCP_PAIR}\n hlt`);
    g.vm.tsc.seed(7n);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const tsc = new VirtualTsc();
    tsc.seed(7n);
    const first = tsc.read();
    expect([g.vm.vcpu.regs.rbx, g.vm.vcpu.regs.rsi, g.vm.vcpu.regs.rdi]).toEqual([first, first + TSC_STEP_PER_READ, 0n]);
    g.vm.close();
  });
});
