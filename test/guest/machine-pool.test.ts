// A closed counting-mode machine hands its emulator, translated code included, to the next machine
// of the same size (native/src/machine_pool.cc). The new machine must be a new machine in all the
// guest can see: reset CPU, zero RAM, closed gate, the bytes it runs and not the ones translated
// in the last life, and the same instruction counts and coverage as a machine never used before.
// Each case uses its own RAM size, so only the machine it closed itself can be handed back.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';
import { assemble } from '../helpers/assemble.js';
import { runToHlt, simpleGuest } from '../helpers/guest-setup.js';

const MiB = 1n << 20n;

/** Runs `source` to HLT on a new machine of `memoryBytes` and returns what it saw; closes the machine. */
function runOnce(source: string, memoryBytes: bigint, before?: (vm: Machine) => void) {
  const vm = simpleGuest(source, { memoryBytes });
  try {
    before?.(vm);
    const edges = vm.enableEdgeCoverage();
    runToHlt(vm);
    return {
      rbx: vm.vcpu.regs.rbx, instructions: vm.vcpu.instructions, edges: Buffer.from(edges).toString('base64'),
      counters: vm.memoryCounters(),
    };
  } finally {
    vm.close();
  }
}

// Calls the routine at 0x2000 (its own page) 300 times, so the emulator has translated both pages.
const CALLER = `
    mov ecx, 300
  again:
    push rcx
    mov rax, 0x2000
    call rax
    pop rcx
    dec ecx
    jnz again
    hlt`;
const routine = (n: number) => `.org 0x1000\n add rbx, ${n}\n ret`;

describe('machine pool: a closed machine hands its translated code on', () => {
  it('a machine taken from the pool starts as a new one: CPU state, RAM, gate and counters', () => {
    const size = 17n * MiB;
    const fresh = new Machine({ memoryBytes: size });
    const resetRip = fresh.vcpu.regs.rip, resetCr0 = fresh.vcpu.readSpecial('cr0'), resetEfer = fresh.vcpu.readSpecial('efer');
    const first = simpleGuest(`mov qword ptr [0x5000], 7\n mov rbx, 9\n hlt`, { memoryBytes: size });
    fresh.close(); // the pool hands out the machine closed last: `first`, closed below, after this one
    runToHlt(first);
    first.gate.set('shared', 0x800000n, 0x1000n, 'readwrite');
    first.snapshot();
    first.close();

    const vm = new Machine({ memoryBytes: size });
    try {
      expect(vm.vcpu.regs.rip).toBe(resetRip);
      expect(vm.vcpu.regs.rbx).toBe(0n);
      expect(vm.vcpu.readSpecial('cr0')).toBe(resetCr0);
      expect(vm.vcpu.readSpecial('efer')).toBe(resetEfer);
      expect(vm.vcpu.readSpecial('gdtrBase')).toBe(0n);
      expect(vm.vcpu.instructions).toBe(0n);
      expect([...vm.memory.read(0x5000n, 8)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
      expect([...vm.memory.read(0x1000n, 8)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
      expect(vm.gate.get('private', 0x1000n)).toBe('none');
      expect(vm.gate.get('shared', 0x800000n)).toBe('none');
      expect(vm.memoryCounters()).toMatchObject({ tlbFills: 0, restoredPages: 0, keptCodePages: 0, droppedCodePages: 0 });
    } finally {
      vm.close();
    }
  });

  it('a machine taken from the pool has its gate closed over every bitmap page the last life opened, and none of it lost when opened again', () => {
    // 40 GiB: 320 pages of each gate bitmap (128 MiB of guest pages each), more than a reset clears in place.
    const size = 40n << 30n;
    const first = new Machine({ memoryBytes: size });
    first.gate.set('private', 0n, size, 'readwrite');
    first.gate.set('shared', 0x1000n, 0x1000n, 'read');
    first.close();
    const second = new Machine({ memoryBytes: size });
    // A few scattered ranges: this life resets in place.
    for (const gpa of [0n, 3n << 30n, 17n << 30n]) second.gate.set('shared', gpa + 0x3000n, 0x200000n, 'readwrite');
    expect(second.gate.count('private', 0n, size)).toBe(0n);
    expect(second.gate.count('shared', 0n, size)).toBe(3n * 512n);
    second.close();
    const vm = new Machine({ memoryBytes: size });
    try {
      expect(vm.gate.count('private', 0n, size)).toBe(0n);
      expect(vm.gate.count('shared', 0n, size)).toBe(0n);
      vm.gate.set('private', 1n << 30n, 4n << 30n, 'read');
      expect(vm.gate.count('private', 0n, size)).toBe((4n << 30n) / 4096n);
    } finally {
      vm.close();
    }
  });

  it('snapshots of a machine taken from the pool hold only their own pages, whatever the last life snapshotted', () => {
    const size = 21n * MiB;
    const first = new Machine({ memoryBytes: size });
    first.memory.write(0x5000n, new Uint8Array(4096).fill(0xab));
    first.memory.write(0x6000n, new Uint8Array([1, 2, 3]));
    first.snapshot();
    first.close();
    const vm = new Machine({ memoryBytes: size });
    try {
      vm.memory.write(0x7000n, new Uint8Array(4096).fill(0x5a));
      const snap = vm.snapshot();
      vm.memory.write(0x5000n, new Uint8Array([9]));
      vm.memory.write(0x7000n, new Uint8Array([9]));
      vm.restore(snap);
      expect(vm.memory.read(0x5000n, 4096).every((b) => b === 0)).toBe(true);
      expect(vm.memory.read(0x6000n, 4096).every((b) => b === 0)).toBe(true);
      expect(vm.memory.read(0x7000n, 4096).every((b) => b === 0x5a)).toBe(true);
    } finally {
      vm.close();
    }
  });

  it('the same code runs on kept translations, with the instruction count and edges of a new machine', () => {
    const source = `${CALLER}\n${routine(1)}`;
    const size = 18n * MiB;
    const fresh = runOnce(source, size);
    const reused = runOnce(source, size);
    expect(fresh.counters.keptCodePages).toBe(0);
    expect(reused.counters.keptCodePages).toBe(2);
    // Both pages ran often enough for code bits (native/src/code_bits.h): the same bytes, the same bits.
    expect([fresh.counters.keptCodeBits, reused.counters.keptCodeBits]).toEqual([0, 2]);
    expect(reused.counters.droppedCodePages).toBe(0);
    expect(reused.rbx).toBe(300n);
    expect(reused.instructions).toBe(fresh.instructions);
    expect(reused.edges).toBe(fresh.edges);
  });

  it('other bytes loaded at the same address run, not the code translated from the old ones', () => {
    const size = 19n * MiB;
    runOnce(`${CALLER}\n${routine(1)}`, size);
    const changed = runOnce(`${CALLER}\n${routine(2)}`, size);
    expect(changed.rbx).toBe(600n);
    expect(changed.counters.droppedCodePages).toBe(1); // the routine's page; the caller's is the same
    expect(changed.counters.keptCodePages).toBe(1);
    expect(changed.counters.keptCodeBits).toBe(1); // the routine's page computes its own
    const fresh = runOnce(`${CALLER}\n${routine(2)}`, 20n * MiB);
    expect(changed.instructions).toBe(fresh.instructions);
    expect(changed.edges).toBe(fresh.edges);
  });

  it('a retired page the guest itself rewrites before running it runs the new bytes', () => {
    // The routine's page is empty in the new life: the guest stores `add rbx, 3; ret` there first.
    const newBytes = assemble('add rbx, 3\n ret', 0x2000n);
    const qword = Buffer.alloc(8);
    Buffer.from(newBytes).copy(qword);
    const writer = `
        mov rax, 0x${qword.readBigUInt64LE().toString(16)}
        mov qword ptr [0x2000], rax
        ${CALLER}`;
    const size = 21n * MiB;
    runOnce(`${CALLER}\n${routine(1)}`, size);
    const rewritten = runOnce(writer, size);
    expect(rewritten.rbx).toBe(900n);
    expect(rewritten.counters.droppedCodePages).toBe(2); // the routine's page, and the caller's (the store before it)
    const fresh = runOnce(writer, 22n * MiB);
    expect(rewritten.instructions).toBe(fresh.instructions);
    expect(rewritten.edges).toBe(fresh.edges);
  });

  it('code bits are kept only for the same bytes: NOPs turned into CPUID on a hot page of the last life still exit', () => {
    const hot = (patch: string) => `
        mov ecx, 5000
      hot:
        dec ecx
        jnz hot
      patch:
        ${patch}
        hlt`;
    const size = 26n * MiB;
    runOnce(hot('nop\n nop'), size);
    const same = runOnce(hot('nop\n nop'), size);
    expect(same.counters.keptCodeBits).toBe(1);
    const vm = simpleGuest(hot('cpuid'), { memoryBytes: size });
    try {
      const exit = vm.vcpu.run();
      expect(exit.kind).toBe('cpuid');
      expect([...vm.memory.read(exit.rip, 2)]).toEqual([0x0f, 0xa2]);
      expect(vm.memoryCounters()).toMatchObject({ keptCodeBits: 0, droppedCodePages: 1 });
    } finally {
      vm.close();
    }
  });

  it('several closed machines are kept: each of as many new ones takes one, with its translated code', () => {
    const source = `${CALLER}\n${routine(1)}`;
    const size = 27n * MiB;
    // Two alive at once, as a fuzz campaign's kept launches are, then both closed.
    const a = simpleGuest(source, { memoryBytes: size }), b = simpleGuest(source, { memoryBytes: size });
    for (const vm of [a, b]) {
      runToHlt(vm);
      vm.close();
    }
    const again = [simpleGuest(source, { memoryBytes: size }), simpleGuest(source, { memoryBytes: size })];
    try {
      for (const vm of again) runToHlt(vm);
      expect(again.map((vm) => [vm.vcpu.regs.rbx, vm.memoryCounters().keptCodePages])).toEqual([[300n, 2], [300n, 2]]);
    } finally {
      for (const vm of again) vm.close();
    }
  });

  it('a machine of another size or mode is not handed on', () => {
    const size = 23n * MiB;
    runOnce(`${CALLER}\n${routine(1)}`, size);
    const other = runOnce(`${CALLER}\n${routine(1)}`, 24n * MiB);
    expect(other.counters.keptCodePages).toBe(0);
    const smallPages = simpleGuest(`${CALLER}\n${routine(1)}`, { memoryBytes: size, ramPaging: 'on-touch' });
    try {
      runToHlt(smallPages);
      expect(smallPages.vcpu.regs.rbx).toBe(300n);
      expect(smallPages.memoryCounters().keptCodePages).toBe(0); // RAM in 4 KiB pages: not the one in huge pages
    } finally {
      smallPages.close();
    }
    const fast = simpleGuest(`${CALLER}\n${routine(1)}`, { memoryBytes: size, countInstructions: false });
    try {
      runToHlt(fast);
      expect(fast.memoryCounters().keptCodePages).toBe(0);
    } finally {
      fast.close();
    }
  });

  it('a counting-mode machine with another wall-clock timeout is handed on: counting mode ignores it', () => {
    const size = 25n * MiB;
    runOnce(`${CALLER}\n${routine(1)}`, size);
    const vm = simpleGuest(`${CALLER}\n${routine(1)}`, { memoryBytes: size, wallClockTimeoutMs: 1234 });
    try {
      runToHlt(vm);
      expect(vm.vcpu.regs.rbx).toBe(300n);
      expect(vm.memoryCounters().keptCodePages).toBe(2);
    } finally {
      vm.close();
    }
  });
});
