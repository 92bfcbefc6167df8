// CPUID and RDMSR/WRMSR in a TD through real guest instructions, against the TDX module source
// (intel/tdx-module TDX_1.5.01): td_cpuid.c + cpuid_configurations.c, td_msr_access.c +
// msr_config_lookup.c. The module answers what its tables cover; the rest is #VE (or #GP).
import { describe, expect, it } from 'vitest';
import { TdAttributes } from '../../../src/platform/tdx/td-module.js';
import { HALT, TDCALL, runAtResetVector, runTdGuest } from '../../helpers/tdx-guest.js';

// #VE handler: VEINFO.GET → exit reason in R13, instruction length in RDI; counts in R12; steps
// over the instruction (as Linux does with ve->instr_len) and returns.
const VE_SKIP = `
  push rax\n push rcx\n push rdx\n push r8\n push r9\n push r10
  mov rax, 3\n ${TDCALL}
  mov r13, rcx\n mov edi, r10d\n inc r12
  pop r10\n pop r9\n pop r8\n pop rdx\n pop rcx\n pop rax
  add [rsp], rdi
  iretq`;
// #GP handler: counts in R14, drops the error code and steps over the 2-byte RDMSR/WRMSR.
const GP_SKIP = 'inc r14\n add rsp, 8\n add qword ptr [rsp], 2\n iretq';

/** Runs `body` with both handlers; returns the registers at the final halt. */
function run(body: string) {
  const { td, outcome } = runTdGuest(`xor r12, r12\n xor r13, r13\n xor r14, r14\n ${body}\n ${HALT}`, { ve: VE_SKIP, gp: GP_SKIP });
  expect(outcome.outcome, outcome.reason).toBe('done');
  return td.platform.machine.vcpu.regs;
}

/** CPUID(leaf, subleaf) → EAX..EDX in RBX, RSI, R8, R9 (RAX/RCX are clobbered by HALT). */
const cpuid = (leaf: number, subleaf = 0) =>
  `mov eax, 0x${leaf.toString(16)}\n mov ecx, ${subleaf}\n cpuid\n mov esi, ebx\n mov r8d, ecx\n mov r9d, edx\n mov ebx, eax`;
const str = (...regs: bigint[]) => Buffer.concat(regs.map((r) => { const b = Buffer.alloc(4); b.writeUInt32LE(Number(r)); return b; })).toString('latin1');

describe('CPUID answered by the TDX module from its table (td_cpuid.c, cpuid_configurations.c)', () => {
  it('leaf 0: max base leaf 0x23 (fixed) and "GenuineIntel", no #VE', () => {
    const r = run(cpuid(0));
    expect(r.r12).toBe(0n);
    expect(r.rbx).toBe(0x23n);
    expect(str(r.rsi, r.r9, r.r8)).toBe('GenuineIntel');
  });

  it('leaf 1: fixed-1 hypervisor (ECX[31]) and APIC (EDX[9]); fixed-0 VMX/SMX (ECX[6:5]); APIC ID = VCPU_INDEX 0', () => {
    const r = run(cpuid(1));
    expect(r.r12).toBe(0n);
    expect(r.r8 & 0x80000000n).toBe(0x80000000n);
    expect(r.r9 & 0x200n).toBe(0x200n);
    expect(r.r8 & 0x60n).toBe(0n);
    expect(r.rsi >> 24n).toBe(0n);
  });

  it('leaf 0x21 subleaf 0: "IntelTDX    "; leaf 0x15: crystal clock fixed at 25 MHz; leaf 0x8000_0000: 0x8000_0008', () => {
    const r21 = run(cpuid(0x21));
    expect([r21.rbx, str(r21.rsi, r21.r9, r21.r8)]).toEqual([0n, 'IntelTDX    ']);
    const r15 = run(cpuid(0x15));
    expect([r15.rbx, r15.r8]).toEqual([1n, 0x17d7840n]);
    expect(run(cpuid(0x80000000)).rbx).toBe(0x80000008n);
  });

  it.each([
    ['faulting leaf 6', 6, 0], ['faulting leaf 0x1F', 0x1f, 0], ['faulting leaf 0x8000_0006', 0x80000006, 0],
    ['leaf 2 (not in the table)', 2, 0], ['leaf 0xB (not in the table)', 0xb, 0],
    ['hypervisor leaf 0x4000_0000', 0x40000000, 0], ['leaf 0x21 subleaf 1 (no such subleaf)', 0x21, 1],
  ])('%s → #VE, exit reason 10, instruction length 2', (_n, leaf, subleaf) => {
    const r = run(cpuid(leaf, subleaf));
    expect([r.r12, r.r13, r.rdi]).toEqual([1n, 10n, 2n]);
  });

  it('leaf 0xD: x87 and SSE (XFAM), 576 bytes of XSAVE area (legacy region and header) for XCR0 and for XFAM; XSAVEOPT', () => {
    // tdh_mng_init.c: EAX through xfam_mask_0xd_0x0, ECX = calculate_xsave_area_max_size(XFAM);
    // td_cpuid_exit reads EBX of subleaves 0 and 1 from the CPU, for the XCR0 the TD set.
    const s0 = run(cpuid(0xd, 0)), s1 = run(cpuid(0xd, 1)), s2 = run(cpuid(0xd, 2));
    expect([s0.r12, s0.rbx, s0.rsi, s0.r8, s0.r9]).toEqual([0n, 3n, 576n, 576n, 0n]);
    expect([s1.r12, s1.rbx, s1.rsi, s1.r8, s1.r9]).toEqual([0n, 1n, 576n, 0n, 0n]);
    expect([s2.r12, s2.rbx, s2.rsi, s2.r8, s2.r9]).toEqual([0n, 0n, 0n, 0n, 0n]); // AVX: XFAM lacks it
  });

  it('the XSAVE area CPUID(0xD, 0).EBX gives holds what XSAVE and XSAVEOPT store for every component XCR0 enables', () => {
    // 1 KiB of 0xAA at 0x20000, CR4.OSXSAVE set, XCR0 = CPUID(0xD, 0).EAX; XSAVE then XSAVEOPT with
    // EDX:EAX all ones. R14 = the highest offset either changed, RSI = EBX. XSAVE writes the header's
    // XSTATE_BV at 512 (SDM Vol. 1 §13.7); nothing it stores may lie beyond EBX bytes.
    const r = run(`
      mov rdi, 0x20000\n mov ecx, 1024\n mov al, 0xaa\n rep stosb
      mov rax, cr4\n or eax, 1 << 18\n mov cr4, rax
      mov eax, 0xd\n xor ecx, ecx\n cpuid\n mov esi, ebx
      xor ecx, ecx\n xor edx, edx\n xsetbv
      mov rbx, 0x20000\n mov eax, -1\n mov edx, -1\n xsave [rbx]\n xsaveopt [rbx]
      mov r14, 1023
      2: cmp byte ptr [rbx + r14], 0xaa\n jne 3f\n dec r14\n jnz 2b
      3:`);
    expect(r.r12).toBe(0n);
    expect(r.rsi).toBe(576n);
    expect(r.r14).toBeGreaterThanOrEqual(512n);
    expect(r.r14).toBeLessThan(r.rsi);
  });

  it.each([0x30, 0x80000009])('leaf %d, above its range, is answered as the last base leaf 0x23 (not the last extended one): no #VE', (leaf) => {
    const r = run(cpuid(leaf));
    const last = run(cpuid(0x23));
    expect([r.r12, r.rbx, r.rsi, r.r8, r.r9]).toEqual([0n, last.rbx, last.rsi, last.r8, last.r9]);
    expect(r.rbx).not.toBe(0x3034n); // CPUID(0x8000_0008).EAX
  });
});

describe('MSRs: native, emulated, #GP or #VE (td_msr_access.c, msr_config_lookup.c)', () => {
  const rdmsr = (msr: number, to = 'rbx') => `mov ecx, 0x${msr.toString(16)}\n rdmsr\n shl rdx, 32\n or rax, rdx\n mov ${to}, rax`;
  const wrmsr = (msr: number, value: bigint) => `mov ecx, 0x${msr.toString(16)}\n mov eax, 0x${(value & 0xffffffffn).toString(16)}\n mov edx, 0x${(value >> 32n).toString(16)}\n wrmsr`;

  it.each([
    ['IA32_APIC_BASE read', rdmsr(0x1b), 31n], ['IA32_APIC_BASE write', wrmsr(0x1b, 0xfee00c00n), 32n],
    ['IA32_MISC_ENABLE write', wrmsr(0x1a0, 1n), 32n], ['IA32_TSC write', wrmsr(0x10, 0n), 32n],
    ['x2APIC ID (0x802) read', rdmsr(0x802), 31n], ['x2APIC ICR (0x830) write', wrmsr(0x830, 0x4000n), 32n],
    ['IA32_TSC_DEADLINE (CPUID enumerates it) write', wrmsr(0x6e0, 1n), 32n],
    ['IA32_FEATURE_CONTROL (0x3A, not in the table) read', rdmsr(0x3a), 31n],
    ['an unknown MSR outside the bitmap ranges read', rdmsr(0x12345678), 31n],
  ])('%s → #VE with the exit reason, instruction length 2', (_n, body, reason) => {
    const r = run(body);
    expect([r.r12, r.r13, r.rdi, r.r14]).toEqual([1n, reason, 2n, 0n]);
  });

  it.each([
    ['x2APIC 0x800 read', rdmsr(0x800)], ['x2APIC 0x804 write', wrmsr(0x804, 0n)], ['x2APIC 0x840 read', rdmsr(0x840)],
  ])('%s → #GP(0), no #VE', (_n, body) => {
    const r = run(body);
    expect([r.r14, r.r12]).toEqual([1n, 0n]);
  });

  it('IA32_PAT and the x2APIC TPR are the TD\'s own: written and read back without any exit', () => {
    const r = run(`${wrmsr(0x277, 0x0007010600070106n)}\n ${rdmsr(0x277)}\n ${wrmsr(0x808, 0x20n)}\n ${rdmsr(0x808, 'rsi')}`);
    expect([r.rbx, r.rsi, r.r12, r.r14]).toEqual([0x0007010600070106n, 0x20n, 0n, 0n]);
  });

  it('IA32_SPEC_CTRL (0x48) is the TD\'s own (msr_config_lookup.c: bitmap bit 0): written and read back without any exit', () => {
    const r = run(`${wrmsr(0x48, 1n)}\n ${rdmsr(0x48)}`);
    expect([r.rbx, r.r12, r.r14]).toEqual([1n, 0n, 0n]);
  });

  it('IA32_MISC_ENABLE read is emulated without PERFMON: bit 7 (perfmon available) 0, bit 12 (PEBS unavailable) 1', () => {
    const r = run(rdmsr(0x1a0));
    expect([r.rbx & 0x80n, r.rbx & 0x1000n, r.r12]).toEqual([0n, 0x1000n, 0n]);
  });

  it('IA32_EFER: read natively; a write may change only SCE, any other change is #VE', () => {
    const r = run(`${rdmsr(0xc0000080)}\n mov rsi, rbx\n or rsi, 1\n mov rax, rsi\n mov rdx, rsi\n shr rdx, 32\n mov ecx, 0xc0000080\n wrmsr
      ${rdmsr(0xc0000080, 'r15')}\n mov rax, r15\n xor rax, 0x800\n mov rdx, rax\n shr rdx, 32\n mov ecx, 0xc0000080\n wrmsr`);
    expect(r.rbx & 0x400n).toBe(0x400n); // LMA: the guest runs in long mode
    expect(r.r15).toBe(r.rbx | 1n); // SCE set
    expect([r.r12, r.r13]).toEqual([1n, 32n]); // flipping NXE → #VE
  });

  it('IA32_EFER: LMA is read-only, a write with it clear keeps it (wrmsr_ia32_efer uses the old value): no #VE', () => {
    const r = run(`${rdmsr(0xc0000080)}\n mov rax, rbx\n and rax, ~0x400\n xor rax, 1\n mov rdx, rax\n shr rdx, 32\n mov ecx, 0xc0000080\n wrmsr
      ${rdmsr(0xc0000080, 'r15')}`);
    expect(r.rbx & 0x400n).toBe(0x400n);
    expect([r.r15, r.r12]).toEqual([r.rbx ^ 1n, 0n]);
  });

  // msr_config_lookup.c rows checked against the old partial table: each of these took the #VE default.
  it.each([
    ['IA32_SGXLEPUBKEYHASH0 (0x8C) read', rdmsr(0x8c)], ['MSR_SLAM_ENABLE (0x276) write', wrmsr(0x276, 1n)],
    ['IA32_VMX_BASIC (0x480) write', wrmsr(0x480, 0n)], ['IA32_BNDCFGS (0xD90) write', wrmsr(0xd90, 0n)],
    ['IA32_PMC0 (0xC1) read without ATTRIBUTES.PERFMON (DYN_PERFMON)', rdmsr(0xc1)],
    ['IA32_U_CET (0x6A0) read, XFAM without CET (DYN_XFAM_CET)', rdmsr(0x6a0)], ['IA32_PKRS (0x6E1) write without ATTRIBUTES.PKS', wrmsr(0x6e1, 0n)],
    ['IA32_XSS (0xDA0) write of a component XFAM lacks (wrmsr_ia32_xss)', wrmsr(0xda0, 0x800n)],
    ['IA32_DEBUGCTL (0x1D9) write of reserved bit 3 (wrmsr_ia32_debugctl)', wrmsr(0x1d9, 8n)],
  ])('%s → #GP(0) from the module, no #VE', (_n, body) => {
    const r = run(body);
    expect([r.r14, r.r12]).toEqual([1n, 0n]);
  });

  it.each([
    ['IA32_CSTAR (0xC000_0083, not in the table) write', wrmsr(0xc0000083, 0n), 32n],
    ['IA32_VMX_PINBASED_CTLS (0x481) read', rdmsr(0x481), 31n],
    ['IA32_DEBUGCTL (0x1D9) write of TR without BTS (wrmsr_ia32_debugctl)', wrmsr(0x1d9, 0x40n), 32n],
  ])('%s → #VE', (_n, body, reason) => {
    const r = run(body);
    expect([r.r12, r.r13, r.r14]).toEqual([1n, reason, 0n]);
  });

  // td_rdmsr_exit → rdmsr_l1_only_special_msrs: the TDCS virtual values TDH.MNG.INIT computed
  // (virt_msr_helpers.h; worked out in test/unit/tdx/virtual-vmx-msrs.test.ts); 0x481 (non-TRUE
  // PINBASED_CTLS) is msr_config_lookup.c's MSR_ACTION_VE row.
  it('IA32_VMX_BASIC (0x480), TRUE_PROCBASED_CTLS (0x48E) and CR4_FIXED1 (0x489) reads are answered by the module; PINBASED_CTLS (0x481) is #VE', () => {
    const r = run(`${rdmsr(0x480)}\n ${rdmsr(0x48e, 'rsi')}\n ${rdmsr(0x489, 'r15')}\n ${rdmsr(0x481, 'r8')}`);
    expect([r.rbx, r.rsi, r.r15]).toEqual([0x01c0_0000_0000_0000n, 0xfdfb_fffe_b522_6dfan, 0x627ffn]);
    expect([r.r12, r.r13, r.r14]).toEqual([1n, 31n, 0n]);
  });

  // IA32_PRED_CMD / IA32_FLUSH_CMD: bitmap bit 0 for both directions, so the CPU runs them; they are
  // write-only with bit 0 the only command bit (SDM Vol. 4 Table 2-2).
  it('IA32_PRED_CMD (0x49) and IA32_FLUSH_CMD (0x10B) run natively: a command write passes; a read or a reserved bit is the CPU\'s #GP(0)', () => {
    const r = run(`${wrmsr(0x49, 1n)}\n ${wrmsr(0x10b, 1n)}\n mov rbx, r14\n ${rdmsr(0x49, 'rsi')}\n ${wrmsr(0x49, 2n)}`);
    expect([r.rbx, r.r14, r.r12]).toEqual([0n, 2n, 0n]);
  });

  it('the module emulates IA32_XAPIC_DISABLE_STATUS (0xBD: 1) and IA32_ARCH_CAPABILITIES (0x10A) reads; writes are the CPU\'s #GP', () => {
    const r = run(`${rdmsr(0xbd)}\n ${rdmsr(0x10a, 'rsi')}\n mov r15, r14\n ${wrmsr(0x10a, 0n)}`);
    expect([r.rbx, r.rsi, r.r12, r.r15, r.r14]).toEqual([1n, 0n, 0n, 0n, 1n]);
  });

  it('IA32_DEBUGCTL (0x1D9) is emulated: LBR written and read back, EN_UNCORE_PMI (bit 13) not; IA32_SYSENTER_CS (0x174) is the TD\'s own', () => {
    const r = run(`${wrmsr(0x1d9, 0x2001n)}\n ${rdmsr(0x1d9)}\n ${wrmsr(0x174, 0x10n)}\n ${rdmsr(0x174, 'rsi')}`);
    expect([r.rbx, r.rsi, r.r12, r.r14]).toEqual([1n, 0x10n, 0n, 0n]);
  });

  // wrmsr_ia32_xss (td_msr_access.c): a set bit must be in ia32_xss_supported_mask AND in XFAM.
  // The model's TD has XFAM x87|SSE and the CPU's XSS components are supervisor ones
  // (PT bit 8, CET 11/12, ...): no bit is in both, so only 0 is written, natively (bitmap read bit FIXED_0).
  it('IA32_XSS (0xDA0): 0 is written without an exit; a user component (SSE, bit 1) or one XFAM lacks (PT, bit 8) is #GP(0)', () => {
    const r = run(`${wrmsr(0xda0, 0n)}\n mov rax, -1\n mov rdx, -1\n ${rdmsr(0xda0)}\n mov r15, r14\n ${wrmsr(0xda0, 2n)}\n mov rsi, r14\n ${wrmsr(0xda0, 0x100n)}`);
    expect([r.rbx, r.r15, r.rsi, r.r14, r.r12]).toEqual([0n, 0n, 1n, 2n, 0n]);
  });

  // rdmsr_ia32_perf_capabilities: without ATTRIBUTES.PERFMON "Return the value 0 in EDX:EAX";
  // the write row is DYN_PERFMON / MSR_ACTION_GP (msr_config_lookup.c row 34).
  it('IA32_PERF_CAPABILITIES (0x345) without PERFMON: a read is emulated as 0 over EDX:EAX, a write is #GP(0)', () => {
    const r = run(`mov rax, -1\n mov rdx, -1\n ${rdmsr(0x345)}\n mov r15, r14\n ${wrmsr(0x345, 0n)}`);
    expect([r.rbx, r.r15, r.r14, r.r12]).toEqual([0n, 0n, 1n, 0n]);
  });

  // rdmsr_ia32_debugctl reads the TD VMCS's guest DEBUGCTL; nothing has written it, and IA32_DEBUGCTL
  // is 0 after RESET/INIT (SDM Vol. 4 Table 2-2; Vol. 3 Table 10-1).
  it('IA32_DEBUGCTL (0x1D9) reads 0 before any write, over whatever EDX:EAX held', () => {
    const r = run(`mov rax, -1\n mov rdx, -1\n ${rdmsr(0x1d9)}`);
    expect([r.rbx, r.r12, r.r14]).toEqual([0n, 0n, 0n]);
  });

  it('IA32_TSC read is native and advances', () => {
    const r = run(`${rdmsr(0x10)}\n nop\n nop\n ${rdmsr(0x10, 'rsi')}`);
    expect(r.r12).toBe(0n);
    expect(r.rsi > r.rbx).toBe(true);
  });
});

// What the guest sees of an MSR access beyond its action, each from the TDX module or the SDM.
describe('MSR exits: the #VE information, the #GP error code and RDMSR\'s EDX:EAX', () => {
  const rdmsr = (msr: number) => `mov ecx, 0x${msr.toString(16)}\n rdmsr`;
  // tdx_td_dispatcher.c: an MSR exit the module does not handle is td_generic_ve_exit(vm_exit_reason, 0):
  // tdx_inject_ve with exit qualification 0, GLA 0 and GPA 0. VEINFO.GET (TDCALL leaf 3) returns
  // them in RDX, R8 and R9, the instruction length in R10[31:0] and its information in R10[63:32].
  const VE_INFO = `
    push rax\n push rcx\n push rdx\n push r8\n push r9\n push r10
    mov rax, 3\n ${TDCALL}
    mov r13, rcx\n mov r15, rdx\n mov rsi, r8\n mov rbx, r9\n mov edi, r10d\n mov r14, r10\n shr r14, 32\n inc r12
    pop r10\n pop r9\n pop r8\n pop rdx\n pop rcx\n pop rax
    add [rsp], rdi
    iretq`;
  it.each([
    ['RDMSR of IA32_FEATURE_CONTROL (0x3A, not in the table)', rdmsr(0x3a), 31n],
    ['WRMSR of IA32_TSC (0x10, MSR_ACTION_VE)', 'mov ecx, 0x10\n xor eax, eax\n xor edx, edx\n wrmsr', 32n],
    // td_cpuid.c td_cpuid_exit: tdx_inject_ve(VMEXIT_REASON_CPUID_INSTRUCTION, 0, tdvps, 0, 0).
    ['CPUID(6) (faulting in cpuid_lookup[])', 'mov eax, 6\n xor ecx, ecx\n cpuid', 10n],
  ])('%s: #VE with exit qualification, GLA, GPA and instruction information 0', (_n, body, reason) => {
    const { td, outcome } = runTdGuest(`xor r12, r12\n mov r15, -1\n mov rsi, -1\n mov rbx, -1\n mov r14, -1\n ${body}\n ${HALT}`, { ve: VE_INFO });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r12, r.r13, r.r15, r.rsi, r.rbx, r.rdi, r.r14]).toEqual([1n, reason, 0n, 0n, 0n, 2n, 0n]);
  });

  // tdx_inject_ve takes the instruction length from the VM-exit instruction length field (SDM Vol. 3C
  // §28.2.5: the length of the instruction that caused the exit, prefixes included), which Linux's
  // #VE handler adds to RIP (tdx.c ve_instr_len).
  it('a CPUID with an operand-size prefix (66 0F A2) that #VEs reports instruction length 3', () => {
    const { td, outcome } = runTdGuest(`xor r12, r12\n mov rdi, -1\n mov eax, 6\n xor ecx, ecx\n .byte 0x66, 0x0f, 0xa2\n ${HALT}`, { ve: VE_INFO });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r12, r.r13, r.rdi]).toEqual([1n, 10n, 3n]);
  });

  // tdx_td_dispatcher.c: TD_MSR_ACCESS_GP is inject_gp(0), and the CPU's own #GP for a native
  // access is #GP(0) too (SDM Vol. 2B RDMSR/WRMSR): the handler finds error code 0 on its stack.
  it('the module\'s #GP (IA32_SGXLEPUBKEYHASH0 write) and the CPU\'s (IA32_PRED_CMD read) push error code 0', () => {
    const GP_CODE = 'inc r14\n pop rbx\n or rsi, rbx\n add qword ptr [rsp], 2\n iretq';
    const { td, outcome } = runTdGuest(`xor r14, r14\n xor rsi, rsi\n mov ecx, 0x8c\n xor eax, eax\n xor edx, edx\n wrmsr\n ${rdmsr(0x49)}\n ${HALT}`, { gp: GP_CODE });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r14, r.rsi]).toEqual([2n, 0n]);
  });

  // SDM Vol. 2B RDMSR: EDX:EAX ← MSR[ECX]; in 64-bit mode the high 32 bits of RAX and RDX are
  // cleared. IA32_PAT (native) and IA32_VMX_BASIC (emulated, rdmsr_set_value_in_tdvps: RDX the high
  // half, RAX the low half) both have bits above 31 set.
  it('RDMSR leaves the low half in RAX and the high half in RDX, natively and emulated', () => {
    const { td, outcome } = runTdGuest(`${rdmsr(0x277)}\n mov rsi, rax\n mov rdi, rdx\n ${rdmsr(0x480)}\n mov r8, rax\n mov r9, rdx\n ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    const pat = 0x0007040600070406n; // the power-up value (SDM Vol. 3A §13.12.4)
    expect([r.rsi, r.rdi]).toEqual([pat & 0xffffffffn, pat >> 32n]);
    expect([r.r8, r.r9]).toEqual([0n, 0x01c00000n]);
  });
});

// wrmsr_ia32_debugctl (td_msr_access.c) on ia32_debugctl_t (msr_defs.h: reserved_0 bits 5:3,
// reserved_1 bits 63:16; tr 6, bts 7): a reserved bit is #GP(0), checked before "TR without BTS"
// (#VE); TR with BTS, or BTS alone, is written.
describe('IA32_DEBUGCTL writes (wrmsr_ia32_debugctl)', () => {
  const GP_SKIP = 'inc r14\n add rsp, 8\n add qword ptr [rsp], 2\n iretq';
  const VE_SKIP = `push rax\n push rcx\n push rdx\n push r8\n push r9\n push r10\n mov rax, 3\n ${TDCALL}\n mov edi, r10d\n inc r12
    pop r10\n pop r9\n pop r8\n pop rdx\n pop rcx\n pop rax\n add [rsp], rdi\n iretq`;
  const write = (value: bigint) => `mov ecx, 0x1d9\n mov eax, 0x${(value & 0xffffffffn).toString(16)}\n mov edx, 0x${(value >> 32n).toString(16)}\n wrmsr`;
  const run = (body: string) => {
    const { td, outcome } = runTdGuest(`xor r12, r12\n xor r14, r14\n ${body}\n mov ecx, 0x1d9\n rdmsr\n shl rdx, 32\n or rax, rdx\n mov rbx, rax\n ${HALT}`, { ve: VE_SKIP, gp: GP_SKIP });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    return { gp: r.r14, ve: r.r12, value: r.rbx };
  };

  it.each([3n, 4n, 5n, 16n, 31n, 32n, 60n, 63n])('reserved bit %i → #GP(0), nothing written', (bit) => {
    expect(run(write(1n << bit))).toEqual({ gp: 1n, ve: 0n, value: 0n });
  });
  it('a reserved bit with TR but not BTS is #GP(0), not #VE: the reserved bits are checked first', () => {
    expect(run(write(0x48n))).toEqual({ gp: 1n, ve: 0n, value: 0n });
  });
  it.each([['TR and BTS', 0xc0n], ['BTS alone', 0x80n]])('%s → written without an exit', (_n, value) => {
    expect(run(write(value))).toEqual({ gp: 0n, ve: 0n, value });
  });
});

// rdmsr_ia32_misc_enables (td_msr_access.c): without ATTRIBUTES.PERFMON the read exits and the
// module returns the CPU's IA32_MISC_ENABLE (ia32_rdmsr) with perfmon_available (bit 7) cleared and
// pebs_unavailable (bit 12) set; with PERFMON the bitmap bit is clear and the TD reads the MSR itself.
it('IA32_MISC_ENABLE without PERFMON is the value a PERFMON TD reads, bit 7 cleared and bit 12 set', () => {
  const read = (attributes: bigint) => {
    const { td, outcome } = runTdGuest(`mov ecx, 0x1a0\n rdmsr\n shl rdx, 32\n or rax, rdx\n mov rbx, rax\n ${HALT}`, { attributes });
    expect(outcome.outcome, outcome.reason).toBe('done');
    return td.platform.machine.vcpu.regs.rbx;
  };
  const native = read(TdAttributes.PERFMON);
  expect(native & 0x80n).toBe(0x80n); // the virtual CPU has performance monitoring
  expect(read(0n)).toBe((native & ~0x80n) | 0x1000n);
});

// Natively run MSRs the CPU itself refuses or answers (bitmap bit 0, msr_config_lookup.c), SDM Vol. 4
// Table 2-2: IA32_FLUSH_CMD (10BH) is write-only with bit 0 its only command (63:1 reserved) and
// IA32_XAPIC_DISABLE_STATUS (BDH) read-only, so RDMSR of the one and WRMSR of the other, or a
// reserved FLUSH_CMD bit, is the CPU's #GP(0); IA32_SPEC_CTRL and the SYSENTER MSRs are 0 after
// RESET/INIT (SDM Vol. 3A Table 10-1) until the TD writes them.
describe('native MSRs the CPU refuses or answers', () => {
  const GP_SKIP = 'inc r14\n add rsp, 8\n add qword ptr [rsp], 2\n iretq';
  const run = (body: string) => {
    const { td, outcome } = runTdGuest(`xor r14, r14\n ${body}\n ${HALT}`, { gp: GP_SKIP });
    expect(outcome.outcome, outcome.reason).toBe('done');
    return td.platform.machine.vcpu.regs;
  };
  it.each([
    ['RDMSR of IA32_FLUSH_CMD', 'mov ecx, 0x10b\n rdmsr'],
    ['WRMSR of IA32_FLUSH_CMD with reserved bit 1', 'mov ecx, 0x10b\n mov eax, 2\n xor edx, edx\n wrmsr'],
    ['WRMSR of IA32_XAPIC_DISABLE_STATUS', 'mov ecx, 0xbd\n mov eax, 1\n xor edx, edx\n wrmsr'],
  ])('%s → #GP(0)', (_n, body) => {
    expect(run(body).r14).toBe(1n);
  });
  it('IA32_SPEC_CTRL and IA32_SYSENTER_CS/ESP/EIP read 0 before any write', () => {
    const rd = (msr: number, to: string) => `mov ecx, 0x${msr.toString(16)}\n mov rax, -1\n mov rdx, -1\n rdmsr\n shl rdx, 32\n or rax, rdx\n mov ${to}, rax`;
    const r = run(`${rd(0x48, 'rbx')}\n ${rd(0x174, 'rsi')}\n ${rd(0x175, 'rdi')}\n ${rd(0x176, 'r15')}`);
    expect([r.rbx, r.rsi, r.rdi, r.r15, r.r14]).toEqual([0n, 0n, 0n, 0n, 0n]);
  });
});

// IA32_KERNEL_GS_BASE and IA32_TSC_AUX are the TD's own (bitmap bit 0), so the CPU uses what the TD
// wrote: SWAPGS exchanges IA32_GS_BASE with IA32_KERNEL_GS_BASE, and RDTSCP returns IA32_TSC_AUX
// in ECX (SDM Vol. 2B SWAPGS, RDTSCP).
it('SWAPGS and RDTSCP use the IA32_KERNEL_GS_BASE and IA32_TSC_AUX values the TD wrote', () => {
  const wr = (msr: number, value: bigint) => `mov ecx, 0x${msr.toString(16)}\n mov eax, 0x${(value & 0xffffffffn).toString(16)}\n mov edx, 0x${(value >> 32n).toString(16)}\n wrmsr`;
  const { td, outcome } = runTdGuest(`${wr(0xc0000102, 0x123456789000n)}\n ${wr(0xc0000103, 0x2an)}\n swapgs
    mov ecx, 0xc0000101\n rdmsr\n shl rdx, 32\n or rax, rdx\n mov rbx, rax\n swapgs\n rdtscp\n mov esi, ecx\n ${HALT}`);
  expect(outcome.outcome, outcome.reason).toBe('done');
  const r = td.platform.machine.vcpu.regs;
  expect([r.rbx, r.rsi]).toEqual([0x123456789000n, 0x2an]);
});

// td_vmcs_init.c: the guest IA32_PERF_GLOBAL_CTRL field starts at 0xFF (the VMCS loads it at TD
// entry); with ATTRIBUTES.PERFMON the TD reads the MSR natively (msr_config_lookup.c: DYN_PERFMON).
describe('IA32_PERF_GLOBAL_CTRL after TDH.VP.INIT', () => {
  it('reads 0xFF in a PERFMON TD right from the reset vector', () => {
    // mov ecx, 0x38f; rdmsr; jmp $
    const { td } = runAtResetVector([0xb9, 0x8f, 0x03, 0x00, 0x00, 0x0f, 0x32, 0xeb, 0xfe], 4n, { attributes: TdAttributes.PERFMON });
    const r = td.platform.machine.vcpu.regs;
    expect([r.rax, r.rdx]).toEqual([0xffn, 0n]);
  });
});
