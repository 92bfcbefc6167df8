// The host's content watch (Machine.watchContent, native/src/content_watch.h): the first guest
// read of private content the guest did not write itself is recorded, exactly (GPA of the first
// foreign byte, RIP, instruction number); the guest's own stores make bytes its own, a byte at a
// time; the guest sees nothing of it; and the state is part of snapshots.
import { describe, expect, it } from 'vitest';
import { CODE_BASE, simpleGuest } from '../helpers/guest-setup.js';
import type { Machine } from '../../src/cpu/machine.js';

const WATCHED = 0x40000n;

function run(source: string, options: { countInstructions?: boolean; watch?: boolean; granularity?: 'byte' | 'page' } = {}): { vm: Machine; exit: string } {
  const vm = simpleGuest(source, { countInstructions: options.countInstructions ?? true });
  vm.memory.write(WATCHED, Buffer.alloc(0x1000, 0xab)); // what someone else left there
  if (options.watch !== false) vm.watchContent(WATCHED, 0x1000n, true, options.granularity ?? 'byte');
  const exit = vm.vcpu.run().kind;
  return { vm, exit };
}

/** The address of the instruction after `count` instructions of fixed `sizes` from CODE_BASE. */
const ripAfter = (...sizes: number[]) => CODE_BASE + BigInt(sizes.reduce((a, b) => a + b, 0));

describe('content watch', () => {
  it('records the first read of watched content with its exact GPA, RIP and instruction number, once', () => {
    // mov rbx, imm32 (7 bytes); mov rax, [rbx+0x10] (4 bytes); mov rcx, [rbx] (3); hlt
    const { vm, exit } = run(`
      mov rbx, ${WATCHED}
      mov rax, [rbx+0x10]
      mov rcx, [rbx]
      hlt`);
    try {
      expect(exit).toBe('hlt');
      expect(vm.vcpu.regs.rax).toBe(0xababababababababn); // the guest read it: the watch is invisible
      expect(vm.foreignReadsPending).toBe(true);
      expect(vm.takeForeignReads()).toEqual([{ gpa: WATCHED + 0x10n, rip: ripAfter(7), instructions: 2n }]);
      expect(vm.foreignReadsPending).toBe(false);
      expect(vm.watchedContentPages(WATCHED, 0x1000n)).toBe(0); // consumed: no longer watched
    } finally {
      vm.close();
    }
  });

  it('records nothing when the guest never reads the watched page', () => {
    const { vm, exit } = run(`
      mov rbx, ${WATCHED + 0x1000n}
      mov rax, [rbx]
      hlt`);
    try {
      expect(exit).toBe('hlt');
      expect(vm.foreignReadsPending).toBe(false);
      expect(vm.takeForeignReads()).toEqual([]);
      expect(vm.watchedContentPages(WATCHED, 0x1000n)).toBe(1);
    } finally {
      vm.close();
    }
  });

  it('records nothing when the guest overwrites the whole page before reading it, and the page stops being watched', () => {
    const { vm, exit } = run(`
      mov rdi, ${WATCHED}
      mov rcx, 512
      xor eax, eax
      rep stosq
      mov rbx, ${WATCHED}
      mov rax, [rbx+0x800]
      hlt`);
    try {
      expect(exit).toBe('hlt');
      expect(vm.takeForeignReads()).toEqual([]);
      expect(vm.watchedContentPages(WATCHED, 0x1000n)).toBe(0);
    } finally {
      vm.close();
    }
  });

  it('a partial write makes only the bytes written the guest\'s own: reading them is fine, reading the rest is not', () => {
    // mov rbx (7); mov qword [rbx], 1 (7); mov rax, [rbx] (3); mov eax, [rbx+4] (3); mov rcx, [rbx+4] (4); hlt
    const { vm, exit } = run(`
      mov rbx, ${WATCHED}
      mov qword ptr [rbx], 1
      mov rax, [rbx]
      mov eax, [rbx+4]
      mov rcx, [rbx+4]
      hlt`);
    try {
      expect(exit).toBe('hlt');
      // The qword at +4 spans its own bytes 4..7 and foreign 8..11: the first foreign byte is +8.
      expect(vm.takeForeignReads()).toEqual([{ gpa: WATCHED + 8n, rip: ripAfter(7, 7, 3, 3), instructions: 5n }]);
    } finally {
      vm.close();
    }
  });

  it('is invisible to the budget: the same instruction count and limit with and without the watch, and exact stepping', () => {
    const source = `
      mov rbx, ${WATCHED}
      mov qword ptr [rbx], 1
      mov rax, [rbx]
      mov rcx, 3
      mov [rbx+8], rcx
      hlt`;
    const counts = [true, false].map((watch) => {
      const { vm, exit } = run(source, { watch });
      try {
        expect(exit).toBe('hlt');
        expect(vm.takeForeignReads()).toEqual([]);
        return { instructions: vm.vcpu.instructions, limit: vm.vcpu.instructionLimit };
      } finally {
        vm.close();
      }
    });
    expect(counts[0]).toEqual(counts[1]);
    // A limit that falls right after a watched store still stops there, and the limit reads as set.
    const vm = simpleGuest(source);
    try {
      vm.watchContent(WATCHED, 0x1000n, true);
      vm.vcpu.instructionLimit = vm.vcpu.instructions + 2n;
      expect(vm.vcpu.run().kind).toBe('budget');
      expect(vm.vcpu.regs.rip).toBe(ripAfter(7, 7));
      expect(vm.vcpu.instructionLimit).toBe(vm.vcpu.instructions);
    } finally {
      vm.close();
    }
  });

  it('a read-modify-write consumes what it reads', () => {
    const { vm } = run(`
      mov rbx, ${WATCHED}
      add qword ptr [rbx+0x20], 1
      mov rax, [rbx+0x20]
      hlt`);
    try {
      expect(vm.takeForeignReads()).toMatchObject([{ gpa: WATCHED + 0x20n, rip: ripAfter(7) }]);
    } finally {
      vm.close();
    }
  });

  it('running code from a watched page consumes it', () => {
    const vm = simpleGuest(`
      mov rax, ${WATCHED}
      jmp rax`);
    try {
      vm.memory.write(WATCHED, Buffer.from([0xf4])); // hlt
      vm.watchContent(WATCHED, 0x1000n, true);
      expect(vm.vcpu.run().kind).toBe('hlt');
      expect(vm.takeForeignReads()).toMatchObject([{ gpa: WATCHED }]);
    } finally {
      vm.close();
    }
  });

  it('shared accesses and unwatched pages are not watched; unwatching forgets the page', () => {
    const { vm } = run(`
      mov rbx, ${WATCHED}
      mov rax, [rbx]
      hlt`, { watch: false });
    try {
      expect(vm.foreignReadsPending).toBe(false);
      vm.watchContent(WATCHED, 0x2000n, true);
      expect(vm.watchedContentPages(0n, vm.memoryBytes)).toBe(2);
      vm.watchContent(WATCHED, 0x1000n, false);
      expect(vm.watchedContentPages(0n, vm.memoryBytes)).toBe(1);
      expect(vm.watchedContentPages(WATCHED + 0x1000n, 1n)).toBe(1);
    } finally {
      vm.close();
    }
  });

  for (const granularity of ['byte', 'page'] as const) {
    it(`a ${granularity} watch started among pages the TLB-fill hook already found unwatched is seen`, () => {
      // The hook keeps the answer for the run of unwatched pages around the one it asked about
      // (ContentWatch::Watched); a new watch inside that run must end it.
      const { vm, exit } = run(`
        mov rax, [rbx]
        hlt`);
      try {
        vm.vcpu.regs.rip = CODE_BASE;
        vm.vcpu.regs.rbx = WATCHED + 0x2000n;
        expect(exit).toBe('hlt');
        expect(vm.vcpu.run().kind).toBe('hlt');
        expect(vm.foreignReadsPending).toBe(false);
        vm.watchContent(WATCHED + 0x3000n, 0x1000n, true, granularity);
        vm.vcpu.regs.rip = CODE_BASE;
        vm.vcpu.regs.rbx = WATCHED + 0x3000n;
        expect(vm.vcpu.run().kind).toBe('hlt');
        expect(vm.takeForeignReads()).toMatchObject([{ gpa: WATCHED + 0x3000n }]);
      } finally {
        vm.close();
      }
    });
  }

  it('fast mode: a read is recorded without the RIP, and a store makes nothing the guest\'s own', () => {
    const { vm, exit } = run(`
      mov rbx, ${WATCHED}
      mov qword ptr [rbx], 1
      mov rax, [rbx]
      hlt`, { countInstructions: false });
    try {
      expect(exit).toBe('hlt');
      expect(vm.vcpu.regs.rax).toBe(1n);
      expect(vm.takeForeignReads()).toEqual([{ gpa: WATCHED, rip: undefined, instructions: 0n }]);
    } finally {
      vm.close();
    }
  });

  it('the watch, the guest\'s own bytes and the recorded reads are part of a snapshot', () => {
    const vm = simpleGuest(`
      mov rbx, ${WATCHED}
      mov qword ptr [rbx], 7
      hlt
      mov rax, [rbx]
      mov rcx, [rbx+8]
      hlt`);
    try {
      vm.watchContent(WATCHED, 0x1000n, true);
      expect(vm.vcpu.run().kind).toBe('hlt');
      const snap = vm.snapshot(); // the qword at +0 is the guest's own here
      const runOn = () => {
        expect(vm.vcpu.run().kind).toBe('hlt');
        return vm.takeForeignReads();
      };
      const first = runOn();
      expect(first).toHaveLength(1);
      expect(first[0]!.gpa).toBe(WATCHED + 8n);
      vm.restore(snap);
      expect(vm.watchedContentPages(WATCHED, 0x1000n)).toBe(1);
      expect(runOn()).toEqual(first);
      // Restored and then unwatched (as a re-accept does): the same reads record nothing.
      vm.restore(snap);
      vm.watchContent(WATCHED, 0x1000n, false);
      expect(runOn()).toEqual([]);
    } finally {
      vm.close();
    }
  });

  describe('page granularity (until the guest\'s first store)', () => {
    for (const countInstructions of [true, false]) {
      const mode = countInstructions ? 'counting' : 'fast';
      it(`${mode} mode: a read before any store is recorded, at the byte it read when decoded`, () => {
        const { vm } = run(`
          mov rbx, ${WATCHED}
          mov rax, [rbx+0x18]
          hlt`, { countInstructions, granularity: 'page' });
        try {
          expect(vm.vcpu.regs.rax).toBe(0xababababababababn);
          expect(vm.takeForeignReads()).toEqual([countInstructions
            ? { gpa: WATCHED + 0x18n, rip: ripAfter(7), instructions: 2n }
            : { gpa: WATCHED, rip: undefined, instructions: 0n }]);
          expect(vm.watchedContentPages(WATCHED, 0x1000n)).toBe(0);
        } finally {
          vm.close();
        }
      });

      it(`${mode} mode: the first store ends the watch, whatever bytes it wrote (the granularity's blind spot)`, () => {
        const { vm } = run(`
          mov rbx, ${WATCHED}
          mov byte ptr [rbx], 1
          mov rax, [rbx]
          mov rcx, [rbx+0x800]
          hlt`, { countInstructions, granularity: 'page' });
        try {
          expect(vm.vcpu.regs.rax).toBe(0xababababababab01n);
          expect(vm.takeForeignReads()).toEqual([]);
          expect(vm.watchedContentPages(WATCHED, 0x1000n)).toBe(0);
        } finally {
          vm.close();
        }
      });
    }

    it('a read-modify-write reads first: it consumes', () => {
      const { vm } = run(`
        mov rbx, ${WATCHED}
        add qword ptr [rbx+0x20], 1
        hlt`, { granularity: 'page' });
      try {
        expect(vm.takeForeignReads()).toMatchObject([{ gpa: WATCHED + 0x20n, rip: CODE_BASE + 7n }]);
      } finally {
        vm.close();
      }
    });

    it('does not coarsen a byte-by-byte watch of the same page', () => {
      const vm = simpleGuest(`
        mov rbx, ${WATCHED}
        mov qword ptr [rbx], 1
        mov rax, [rbx+8]
        mov qword ptr [rbx+0x1000], 1
        mov rcx, [rbx+0x1008]
        hlt`);
      try {
        vm.watchContent(WATCHED, 0x1000n, true);
        vm.watchContent(WATCHED, 0x2000n, true, 'page');
        expect(vm.watchedContentPages(WATCHED, 0x2000n)).toBe(2);
        expect(vm.vcpu.run().kind).toBe('hlt');
        // The byte-watched page still sees the read of its unwritten +8; the page-watched one ended at the store.
        expect(vm.takeForeignReads()).toMatchObject([{ gpa: WATCHED + 8n }]);
        expect(vm.watchedContentPages(WATCHED, 0x2000n)).toBe(0);
      } finally {
        vm.close();
      }
    });

    it('is part of a snapshot', () => {
      const vm = simpleGuest(`
        hlt
        mov rbx, ${WATCHED}
        mov rax, [rbx]
        hlt`);
      try {
        vm.watchContent(WATCHED, 0x1000n, true, 'page');
        expect(vm.vcpu.run().kind).toBe('hlt');
        const snap = vm.snapshot();
        expect(vm.vcpu.run().kind).toBe('hlt');
        expect(vm.takeForeignReads()).toHaveLength(1);
        vm.restore(snap);
        expect(vm.watchedContentPages(WATCHED, 0x1000n)).toBe(1);
        expect(vm.vcpu.run().kind).toBe('hlt');
        expect(vm.takeForeignReads()).toHaveLength(1);
      } finally {
        vm.close();
      }
    });
  });
});
