// A LOCK prefix on an instruction that cannot take one is #UD (Intel SDM Vol. 2A §2.1.1 and
// Vol. 3A Table 6-2; AMD APM Vol. 3 §1.2.5): a fault of the decode, so it comes before any
// intercept, and the instruction does nothing. The emulator alone ran CPUID, RDTSC, RDMSR, port
// I/O, RDRAND, TDCALL, PVALIDATE, VMGEXIT and the like with it as if it were absent; the native
// side now raises it for every instruction it traps (Machine::OnCode), before any exit.
import { describe, expect, it } from 'vitest';
import { HALT, runTdGuest } from '../helpers/tdx-guest.js';
import { snpGuest } from '../helpers/snp-guest.js';

// [name, set-up, the LOCK-prefixed instruction's bytes]
const LOCKED: readonly (readonly [string, string, string])[] = [
  ['CPUID', 'xor eax, eax', '0xf0, 0x0f, 0xa2'],
  ['RDTSC', 'xor eax, eax', '0xf0, 0x0f, 0x31'],
  ['RDTSCP', 'xor eax, eax', '0xf0, 0x0f, 0x01, 0xf9'],
  ['RDMSR (IA32_TSC)', 'mov ecx, 0x10\n xor eax, eax', '0xf0, 0x0f, 0x32'],
  ['WRMSR (IA32_SPEC_CTRL)', 'mov ecx, 0x48\n xor eax, eax\n xor edx, edx', '0xf0, 0x0f, 0x30'],
  ['IN AL, DX (COM1)', 'mov dx, 0x3f8\n xor eax, eax', '0xf0, 0xec'],
  ['OUT imm8, AL', 'xor eax, eax', '0xf0, 0xe6, 0x80'],
  ['OUTSB', 'mov dx, 0x80\n xor eax, eax\n lea rsi, [rip]', '0xf0, 0x6e'],
  ['RDRAND EAX', 'xor eax, eax', '0xf0, 0x0f, 0xc7, 0xf0'],
  ['TDCALL', 'xor eax, eax', '0xf0, 0x66, 0x0f, 0x01, 0xcc'],
  ['PVALIDATE', 'xor eax, eax', '0xf0, 0xf2, 0x0f, 0x01, 0xff'],
  ['VMGEXIT', 'xor eax, eax', '0xf0, 0xf3, 0x0f, 0x01, 0xd9'],
  ['RMPADJUST', 'xor eax, eax', '0xf0, 0xf3, 0x0f, 0x01, 0xfe'],
  ['PAUSE', 'xor eax, eax', '0xf0, 0xf3, 0x90'],
  ['WBINVD', 'xor eax, eax', '0xf0, 0x0f, 0x09'],
  ['MONITOR', 'xor eax, eax\n xor ecx, ecx\n xor edx, edx', '0xf0, 0x0f, 0x01, 0xc8'],
  ['RDPMC', 'xor eax, eax\n xor ecx, ecx', '0xf0, 0x0f, 0x33'],
];

describe('LOCK on an intercepted instruction: #UD at the instruction, nothing else', () => {
  it.each(LOCKED)('in a TD: LOCK %s', (_name, setup, bytes) => {
    // #UD handler: vector -> R15, the pushed RIP -> RBX; no #VE, no TDCALL, no console output.
    const { td, outcome } = runTdGuest(`${setup}\n lea r12, [rip + 1f]\n 1: .byte ${bytes}\n mov r15, 0xbad\n ${HALT}`, {
      ud: `mov r15, 6\n mov rbx, [rsp]\n mov r13, rax\n ${HALT}`,
    });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r15, r.rbx, r.r13]).toEqual([6n, r.r12, 0n]);
    expect(td.platform.trace.ofType('ve-injected')).toEqual([]);
  });

  it.each(LOCKED)('on an SNP guest: LOCK %s', (_name, setup, bytes) => {
    // The default #UD handler: vector -> R13, the pushed RIP -> R15.
    const g = snpGuest(`${setup}\n lea r12, [rip + 1f]\n 1: .byte ${bytes}\n mov r13, 0xbad\n hlt`);
    expect(g.run().outcome).toBe('done');
    const r = g.vm.vcpu.regs;
    expect([r.r13, r.r15, r.rax]).toEqual([6n, r.r12, 0n]);
    expect(g.trace.ofType('inject-vc')).toEqual([]);
  });

  it('in fast mode too (no per-instruction count): LOCK CPUID and LOCK RDTSC', () => {
    for (const bytes of ['0xf0, 0x0f, 0xa2', '0xf0, 0x0f, 0x31']) {
      const g = snpGuest(`xor eax, eax\n lea r12, [rip + 1f]\n 1: .byte ${bytes}\n mov r13, 0xbad\n hlt`, { countInstructions: false });
      expect(g.run().outcome).toBe('done');
      expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.r15, g.vm.vcpu.regs.rax]).toEqual([6n, g.vm.vcpu.regs.r12, 0n]);
    }
  });
});
