// The Machine/Vcpu API's own limits (src/cpu/machine.ts, vcpu.ts): 1 to 64 vCPUs (README: --vcpus
// 1 to 64), no vCPU that does not exist, snapshots only of the machine that took them, and
// instruction budgets that are unsigned 64-bit counters.
import { describe, expect, it } from 'vitest';
import { Machine, MAX_VCPUS } from '../../src/cpu/machine.js';

const MEMORY = 16n << 20n;

describe('Machine limits', () => {
  it('has 1 to 64 vCPUs: 0, 65 and 1.5 are RangeErrors; 64 is a machine', () => {
    expect(MAX_VCPUS).toBe(64);
    for (const vcpus of [0, 65, 1.5]) {
      expect(() => new Machine({ memoryBytes: MEMORY, countInstructions: false, vcpus })).toThrow(`vcpus must be 1..64, got ${vcpus}`);
    }
    const m = new Machine({ memoryBytes: MEMORY, countInstructions: false, vcpus: 64 });
    expect(m.vcpuCount).toBe(64);
    m.switchVcpu(63);
    expect(m.vcpuIndex).toBe(63);
    expect(() => m.switchVcpu(64)).toThrow('no vCPU 64 on this machine (it has 64)');
    expect(m.vcpuIndex).toBe(63);
    m.close();
  });

  it('resets only a vCPU it has: index vcpuCount and -1 are RangeErrors, and the machine keeps its vCPUs', () => {
    const m = new Machine({ memoryBytes: MEMORY, countInstructions: false, vcpus: 2 });
    for (const index of [2, -1]) expect(() => m.resetVcpu(index)).toThrow(`cannot reset vCPU ${index}: no such vCPU (the machine has 2)`);
    expect(m.vcpuCount).toBe(2);
    m.resetVcpu(1);
    expect(m.vcpuCount).toBe(2);
    m.close();
  });

  it('restores only its own snapshots', () => {
    const a = new Machine({ memoryBytes: MEMORY, countInstructions: false });
    const b = new Machine({ memoryBytes: MEMORY, countInstructions: false });
    const snap = a.snapshot();
    a.memory.write(0x1000n, Buffer.from([1]));
    expect(() => b.restore(snap)).toThrow('that snapshot belongs to another VM');
    a.restore(snap);
    expect(a.memory.read(0x1000n, 1)[0]).toBe(0);
    a.close();
    b.close();
  });

  it('instruction and budget limits are unsigned 64-bit: negative is a RangeError, above 2^64 - 1 is 2^64 - 1', () => {
    const m = new Machine({ memoryBytes: MEMORY, countInstructions: true });
    const vcpu = m.vcpu;
    expect(() => { vcpu.instructionLimit = -1n; }).toThrow(RangeError);
    expect(() => { vcpu.budgetLimit = -1n; }).toThrow(RangeError);
    vcpu.instructionLimit = 1n << 70n;
    vcpu.budgetLimit = 1n << 64n;
    expect([vcpu.instructionLimit, vcpu.budgetLimit]).toEqual([(1n << 64n) - 1n, (1n << 64n) - 1n]);
    vcpu.instructionLimit = (1n << 64n) - 2n;
    expect(vcpu.instructionLimit).toBe((1n << 64n) - 2n);
    m.close();
  });
});
