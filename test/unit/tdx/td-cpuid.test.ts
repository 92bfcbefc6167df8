// The dynamic CPUID bits the module computes per call (intel/tdx-module TDX_1.5.01
// src/td_dispatcher/vm_exits/td_cpuid.c td_cpuid_exit: INITIAL_APIC_ID = VCPU_INDEX, OSXSAVE =
// CR4.OSXSAVE, OSPKE = CR4.PKE, SYSCALL/SYSRET only in 64-bit mode).
import { describe, expect, it } from 'vitest';
import { tdCpuid, type CpuidAnswer } from '../../../src/platform/tdx/td-cpuid.js';
import { createTd } from '../../../src/vmm/tdx/run-td.js';
import { runAtResetVector } from '../../helpers/tdx-guest.js';

const CR4_OSXSAVE = 1n << 18n;
const CR4_PKE = 1n << 22n;
const base = { vcpuIndex: 0, cr4: 0n, in64BitMode: true };
const regs = (a: CpuidAnswer) => (a.kind === 'answer' ? a.regs : expect.fail('CPUID answered with #VE'));

describe('dynamic CPUID bits (td_cpuid.c)', () => {
  it('CPUID(1).EBX[31:24] is the vCPU index; ECX[27] OSXSAVE follows CR4.OSXSAVE', () => {
    expect(regs(tdCpuid(1, 0, { ...base, vcpuIndex: 3 }))[1] >>> 24).toBe(3);
    expect(regs(tdCpuid(1, 0, base))[2] & (1 << 27)).toBe(0);
    expect(regs(tdCpuid(1, 0, { ...base, cr4: CR4_OSXSAVE }))[2] & (1 << 27)).toBe(1 << 27);
  });

  it('CPUID(7, 0).ECX[4] OSPKE follows CR4.PKE (subleaf 0 only)', () => {
    expect(regs(tdCpuid(7, 0, base))[2] & 0x10).toBe(0);
    expect(regs(tdCpuid(7, 0, { ...base, cr4: CR4_PKE }))[2] & 0x10).toBe(0x10);
    expect(regs(tdCpuid(7, 1, { ...base, cr4: CR4_PKE }))[2] & 0x10).toBe(0);
  });

  it('CPUID(0x8000_0001).EDX[11] SYSCALL is reported only in 64-bit mode', () => {
    expect(regs(tdCpuid(0x80000001, 0, base))[3] & (1 << 11)).toBe(1 << 11);
    expect(regs(tdCpuid(0x80000001, 0, { ...base, in64BitMode: false }))[3] & (1 << 11)).toBe(0);
  });

  it('a guest CPUID on vCPU 1 of a two-vCPU TD reads APIC ID 1', () => {
    const td = createTd({ memoryBytes: 8n << 20n, vcpus: 2 });
    const m = td.platform.module;
    m.machine.switchVcpu(1);
    m.handleExit({ kind: 'cpuid', rip: m.machine.vcpu.regs.rip, length: 2, leaf: 1, subleaf: 0 });
    expect(m.machine.vcpu.regs.rbx >> 24n).toBe(1n);
  });

  it('only those bits follow the vCPU state: every other bit of every answered leaf is the same with all of it set', () => {
    // td_cpuid_exit's switch: leaf 1 EBX[31:24] and ECX[27], leaf 7 subleaf 0 ECX[4], leaf
    // 0x8000_0001 EDX[11] (leaves 1 and 0x8000_0001 answer every subleaf); the other leaves and
    // subleaves are the TDCS values as they are. (Leaf 0xD subleaves 0 and 1 EBX, the XSAVE area
    // size the CPU gives for the current XCR0/XSS, are dynamic too; XFAM x87|SSE keeps the model's at 576.)
    const DYNAMIC: Record<string, readonly number[]> = { '1.0': [0, 0xff000000, 1 << 27, 0], '7.0': [0, 0, 1 << 4, 0], '80000001.0': [0, 0, 0, 1 << 11] };
    const all = { vcpuIndex: 0xff, cr4: (1n << 64n) - 1n, in64BitMode: true };
    const none = { vcpuIndex: 0, cr4: 0n, in64BitMode: false };
    for (const leaf of [0, 1, 3, 4, 5, 7, 8, 0xa, 0xd, 0xe, 0x11, 0x12, 0x13, 0x14, 0x15, 0x19, 0x1c, 0x1d, 0x1e, 0x20, 0x21, 0x22, 0x23, 0x80000000, 0x80000001, 0x80000007, 0x80000008]) {
      for (const subleaf of [0, 1, 2, 3]) {
        const a = tdCpuid(leaf, subleaf, all), b = tdCpuid(leaf, subleaf, none);
        if (a.kind !== 'answer' || b.kind !== 'answer') { expect(a.kind, `CPUID(${leaf.toString(16)}, ${subleaf})`).toBe(b.kind); continue; }
        const dyn = DYNAMIC[leaf === 7 ? `7.${subleaf}` : `${leaf.toString(16)}.0`] ?? [0, 0, 0, 0];
        for (let i = 0; i < 4; i++) expect((a.regs[i]! ^ b.regs[i]!) & ~dyn[i]!, `CPUID(${leaf.toString(16)}, ${subleaf}) register ${i}`).toBe(0);
      }
    }
  });

  it('SYSCALL reads 0 in CPUID(0x8000_0001).EDX in 32-bit protected mode: the TD\'s first instructions at the reset vector', () => {
    // is_td_guest_in_64b_mode (helpers.c) is CS.L with IA32_EFER.LMA; TDH.VP.INIT starts the TD in
    // 32-bit protected mode (td_vmcs_init.c). A 4 KiB firmware volume below 4 GiB: mov eax,
    // 0x80000001; xor ecx, ecx; cpuid; jmp $.
    const { td, step } = runAtResetVector([0xb8, 0x01, 0x00, 0x00, 0x80, 0x31, 0xc9, 0x0f, 0xa2, 0xeb, 0xfe]);
    expect(step).toMatchObject({ kind: 'outcome', outcome: { outcome: 'budget' } });
    const vcpu = td.platform.machine.vcpu;
    expect(vcpu.codeSegment().bits).toBe(32);
    expect(vcpu.regs.rip).toBe(0xfffffff9n); // after the CPUID, which the module answered
    expect(vcpu.regs.rdx & 0x2c100000n).toBe(0x2c100000n); // NX, 1G pages, RDTSCP, LM
    expect(vcpu.regs.rdx & (1n << 11n)).toBe(0n);
    td.platform.machine.close();
  });

  it('EAX and ECX are read as unsigned 32-bit values (a leaf with bit 31 set, passed as a negative number)', () => {
    expect(tdCpuid(0x80000008 | 0, 0, base)).toEqual(tdCpuid(0x80000008, 0, base));
    expect(regs(tdCpuid(0x80000008 | 0, 0, base))[0] & 0xff).toBe(0x34);
  });

  it('the trace records each CPUID with its leaf and subleaf and who answered it: the module, or #VE', () => {
    const td = createTd({ memoryBytes: 8n << 20n });
    const m = td.platform.module;
    m.handleExit({ kind: 'cpuid', rip: m.machine.vcpu.regs.rip, length: 2, leaf: 7, subleaf: 1 });
    m.handleExit({ kind: 'cpuid', rip: m.machine.vcpu.regs.rip, length: 2, leaf: 0x1f, subleaf: 2 });
    expect(td.trace.events.filter((e) => e.type === 'cpuid').map((e) => [e.leaf, e.subleaf, e.handledBy])).toEqual([[7, 1, 'tdx-module'], [0x1f, 2, '#VE']]);
  });
});
