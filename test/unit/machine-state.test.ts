// Machine.saveState/loadState (src/cpu/machine.ts): the whole-VM state the platforms snapshot
// (TdxPlatform, SnpPlatform saveState) is the native snapshot and everything the TypeScript side
// keeps beside it: what RDRAND/RDSEED and RDTSC return next, the exit counters, and with several
// vCPUs which one runs and each one's architectural state. A restore brings back exactly the
// saved state, so a run from a restored snapshot repeats the run from the save.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';

const MEMORY = 16n << 20n;

describe('Machine state', () => {
  it('RDRAND/RDSEED and RDTSC give again after a restore what they gave after the save', () => {
    const vm = new Machine({ memoryBytes: MEMORY, countInstructions: false });
    try {
      vm.random.seed(5n);
      vm.tsc.seed(5n);
      vm.random.next();
      vm.tsc.read();
      const saved = vm.saveState();
      const after = [vm.random.next(), vm.tsc.read(), vm.random.next(), vm.tsc.read()];
      vm.loadState(saved);
      expect([vm.random.next(), vm.tsc.read(), vm.random.next(), vm.tsc.read()]).toEqual(after);
    } finally {
      vm.close();
    }
  });

  it('the exit counters are the saved ones: a kind first counted after the save is gone', () => {
    const vm = new Machine({ memoryBytes: MEMORY, countInstructions: false });
    try {
      const counts = vm.vcpu.exitCounts;
      counts.hlt = 2;
      const saved = vm.saveState();
      counts.hlt = 5;
      counts.cpuid = 1;
      vm.loadState(saved);
      expect(vm.vcpu.exitCounts).toEqual({ hlt: 2 });
    } finally {
      vm.close();
    }
  });

  it('several vCPUs: the vCPU that ran at the save runs again, with the hidden CS base of its entry state, whatever ran since', () => {
    // A real-mode CS base the VMSA gives is not selector << 4 (SDM Vol. 3A §9.1.4: the reset CS
    // base is not either): the CPU keeps it in CS's descriptor cache, which a restore brings back.
    const vm = new Machine({ memoryBytes: MEMORY, countInstructions: false, vcpus: 2 });
    try {
      vm.vcpu.enter({ mode: 'real16', csSelector: 0xf000, csBase: 0x300000n });
      vm.vcpu.regs.rax = 0x1111n;
      const saved = vm.saveState();
      vm.switchVcpu(1);
      vm.vcpu.enter({ mode: 'protected32' });
      vm.vcpu.regs.rax = 0x2222n;
      vm.loadState(saved);
      expect(vm.vcpuIndex).toBe(0);
      expect(vm.vcpu.regs.rax).toBe(0x1111n);
      expect(vm.vcpu.codeSegment()).toMatchObject({ protectedMode: false, bits: 16, selector: 0xf000, base: 0x300000n });
      vm.switchVcpu(1);
      // vCPU 1 is as it was at the save: in the emulator's reset state (64-bit), not the 32-bit entry state.
      expect(vm.vcpu.codeSegment()).toMatchObject({ protectedMode: true, longMode: true, bits: 64 });
    } finally {
      vm.close();
    }
  });
});

describe('Machine.withVcpu: the vCPU an event happened on', () => {
  it('is in the event only when the machine has several vCPUs, first; a one-vCPU event is its fields as they are (so one-vCPU traces, and their hashes, carry no vCPU)', () => {
    const one = new Machine({ memoryBytes: MEMORY, countInstructions: false });
    const two = new Machine({ memoryBytes: MEMORY, countInstructions: false, vcpus: 2 });
    try {
      expect(one.withVcpu({ gpa: 0x1000n })).toStrictEqual({ gpa: 0x1000n });
      two.switchVcpu(1);
      const fields = two.withVcpu({ gpa: 0x1000n });
      expect(fields).toStrictEqual({ vcpu: 1, gpa: 0x1000n });
      expect(Object.keys(fields)).toEqual(['vcpu', 'gpa']);
    } finally {
      one.close();
      two.close();
    }
  });
});

describe('Machine.resetVcpu', () => {
  it('puts a vCPU back into the emulator\'s reset state, the running one at once: it can then enter an entry state again', () => {
    const vm = new Machine({ memoryBytes: MEMORY, countInstructions: false, vcpus: 2 });
    try {
      vm.vcpu.enter({ mode: 'protected32' });
      vm.resetVcpu(0);
      expect(vm.vcpu.codeSegment()).toMatchObject({ protectedMode: true, longMode: true, bits: 64 });
      vm.vcpu.enter({ mode: 'real16', csSelector: 0xf000, csBase: 0xf0000n });
      vm.switchVcpu(1);
      vm.vcpu.enter({ mode: 'protected32' });
      vm.switchVcpu(0);
      vm.resetVcpu(1);
      expect(vm.vcpu.codeSegment()).toMatchObject({ protectedMode: false, bits: 16 });  // vCPU 0 as it was
      vm.switchVcpu(1);
      expect(vm.vcpu.codeSegment()).toMatchObject({ protectedMode: true, longMode: true, bits: 64 });
    } finally {
      vm.close();
    }
  });
});
