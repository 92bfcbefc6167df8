// The dynamic CPUID bits the module computes per call (intel/tdx-module TDX_1.5.01
// src/td_dispatcher/vm_exits/td_cpuid.c td_cpuid_exit: INITIAL_APIC_ID = VCPU_INDEX, OSXSAVE =
// CR4.OSXSAVE, OSPKE = CR4.PKE, SYSCALL/SYSRET only in 64-bit mode).
import { describe, expect, it } from 'vitest';
import { tdCpuid, type CpuidAnswer } from '../../../src/platform/tdx/td-cpuid.js';
import { createTd } from '../../../src/vmm/tdx/run-td.js';

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
});
