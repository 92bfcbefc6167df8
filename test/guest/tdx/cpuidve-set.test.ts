// TDG.VP.CPUIDVE.SET (leaf 5) through real guest TDCALLs and CPUIDs, checked against the TDX
// module 1.5 source: `tdg_vp_cpuidve_set.c` (RCX bit 0 supervisor, bit 1 user, bits 63:2 reserved
// → OPERAND_INVALID naming RCX) and `td_cpuid.c` td_cpuid_exit (with the vCPU's flag for its CPL
// set, every CPUID leaf the module would answer is a #VE with exit reason 10 instead).
import { describe, expect, it } from 'vitest';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { HALT, TDCALL, runTdGuest, tdGuest, toCpl } from '../../helpers/tdx-guest.js';

const cpuidVeSet = (rcx: number | bigint) => `mov rax, 5\n mov rcx, ${rcx}\n ${TDCALL}`;
/** #VE handler: the VE info's exit reason into RBX, then R15 = 20 and halt. */
const VE_REASON = `mov rax, 3\n ${TDCALL}\n mov rbx, rcx\n mov r15, 20\n ${HALT}`;

describe('TDG.VP.CPUIDVE.SET', () => {
  it('supervisor: CPUID of a leaf the module answers (leaf 0) becomes a #VE with exit reason 10 at CPL 0', () => {
    const { td, outcome } = runTdGuest(`xor eax, eax\n cpuid\n mov r12, rbx\n ${cpuidVeSet(1)}\n mov r13, rax\n xor eax, eax\n cpuid\n ${HALT}`, { ve: VE_REASON });
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect(r.r12).toBe(0x756e6547n); // "Genu": answered before the SET
    expect(r.r13).toBe(0n);
    expect([r.r15, r.rbx]).toEqual([20n, 10n]);
  });

  it('user only: CPUID at CPL 0 is still answered, at CPL 1 it is a #VE', () => {
    const { td, outcome } = runTdGuest(`${cpuidVeSet(2)}\n xor eax, eax\n cpuid\n mov r12, rbx\n ${toCpl(1)}\n xor eax, eax\n cpuid\n mov r15, 99\n ${HALT}`, { ve: VE_REASON });
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect(r.r12).toBe(0x756e6547n);
    expect([r.r15, r.rbx]).toEqual([20n, 10n]);
  });

  it('supervisor only: CPUID at CPL 1 is answered', () => {
    const td = tdGuest(`${cpuidVeSet(1)}\n ${toCpl(1)}\n xor eax, eax\n cpuid\n mov r12, rbx\n mov eax, 0x10\n mov r15, 99\n mov [0x90000], r12\n hlt`, { ve: VE_REASON });
    runTd(td);
    // HLT at CPL 1 is #GP (the default handler sets R15 = 13); the CPUID before it was answered.
    expect(td.platform.machine.memory.readU64(0x90000n)).toBe(0x756e6547n);
  });

  it('RCX 0 clears both; a reserved bit is OPERAND_INVALID naming RCX and changes nothing', () => {
    const { td, outcome } = runTdGuest(`${cpuidVeSet(3)}\n ${cpuidVeSet(0)}\n xor eax, eax\n cpuid\n mov r12, rbx\n ${cpuidVeSet(5)}\n mov r13, rax\n xor eax, eax\n cpuid\n mov r14, rbx\n ${HALT}`, { ve: VE_REASON });
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r12, r.r14]).toEqual([0x756e6547n, 0x756e6547n]);
    expect(r.r13).toBe(0xc000010000000001n);
    expect(td.platform.module.cpuidVe).toEqual([{ supervisor: false, user: false }]);
  });

  it('the flags are per vCPU state the whole-VM snapshot keeps', () => {
    const { td } = runTdGuest(`${cpuidVeSet(2)}\n ${HALT}`);
    const module = td.platform.module;
    const saved = module.saveState();
    module.cpuidVe[0] = { supervisor: true, user: false };
    module.loadState(saved);
    expect(module.cpuidVe).toEqual([{ supervisor: false, user: true }]);
  });
});
