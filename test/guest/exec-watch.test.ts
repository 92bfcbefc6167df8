// The host's execution watch (Vcpu.watchExecution): armed by the first fetch from one range, it
// stops the run at the first later fetch from another, before that instruction runs. Boots of a
// real Linux use it to stop where the decompressor enters the kernel it decompressed.
import { describe, expect, it } from 'vitest';
import { installIdt, simpleGuest } from '../helpers/guest-setup.js';

// 0x1000 calls into the stop range while the watch is not armed yet, then runs in the arm range
// at 0x3000, which drops the stop page's TLB entry (as the CR3 write of Linux's decompressor
// does) and jumps back into the stop range.
const GUEST = `
  mov rax, 0x2000
  call rax
  mov rax, 0x3000
  jmp rax
  .org 0x1000
  mov rbx, 1
  ret
  .org 0x1100
  mov rbx, 2
  hlt
  .org 0x2000
  invlpg [0x2000]
  mov rax, 0x2100
  jmp rax`;

describe('execution watch', () => {
  for (const countInstructions of [true, false]) {
    it(`stops at the first fetch from the stop range after the arm range ran (${countInstructions ? 'counting' : 'fast'} mode)`, () => {
      const vm = simpleGuest(GUEST, { countInstructions });
      try {
        vm.vcpu.watchExecution({ start: 0x3000n, end: 0x4000n }, { start: 0x2000n, end: 0x3000n });
        const exit = vm.vcpu.run();
        expect(exit).toMatchObject({ kind: 'exec-watch', rip: 0x2100n, gpa: 0x2100n });
        expect(vm.vcpu.regs.rbx).toBe(1n); // the unarmed call ran; the watched instruction did not
        // One-shot: running on executes it.
        expect(vm.vcpu.run().kind).toBe('hlt');
        expect(vm.vcpu.regs.rbx).toBe(2n);
      } finally {
        vm.close();
      }
    });
  }

  it('a stop range around the arm range fires only outside it (a Linux boot watches all of RAM above the kernel)', () => {
    // At 0x3000 the arm page drops its own TLB entry, so its next instruction is fetched through
    // the watch again: inside the arm range, that must not stop the run.
    const vm = simpleGuest(`
      mov rax, 0x3000
      jmp rax
      .org 0x1100
      mov rbx, 2
      hlt
      .org 0x2000
      invlpg [0x3000]
      mov rbx, 1
      mov rax, 0x2100
      jmp rax`);
    try {
      vm.vcpu.watchExecution({ start: 0x3000n, end: 0x4000n }, { start: 0x1000n, end: 0x10000n });
      expect(vm.vcpu.run()).toMatchObject({ kind: 'exec-watch', rip: 0x2100n, gpa: 0x2100n });
      expect(vm.vcpu.regs.rbx).toBe(1n);
    } finally {
      vm.close();
    }
  });

  it('a #PF the host injects with its CR2 drops the old translations of the stop page, as writing CR2 itself does', () => {
    // The guest is loaded at 0x1000. The stop page 0x5000 runs before the watch arms; the arm page
    // 0x2000 then halts with no CR3 write, and the #PF handler (0x3000) jumps back into the stop
    // page: that fetch must fire.
    const vm = simpleGuest(`
      mov rax, 0x5000
      jmp rax
      .org 0x1000
      hlt
      .org 0x2000
      mov rax, 0x5000
      jmp rax
      .org 0x4000
      test rbx, rbx
      jnz 1f
      mov rbx, 1
      mov rax, 0x2000
      jmp rax
    1: hlt`, { memoryBytes: 40n << 20n });
    try {
      installIdt(vm, { 14: 0x3000n });
      vm.vcpu.watchExecution({ start: 0x2000n, end: 0x3000n }, { start: 0x5000n, end: 0x6000n });
      expect(vm.vcpu.run()).toMatchObject({ kind: 'hlt', rip: 0x2001n });
      vm.vcpu.inject(14, 0n, 0xdead000n);
      expect(vm.vcpu.run()).toMatchObject({ kind: 'exec-watch', gpa: 0x5000n });
      expect(vm.vcpu.readSpecial('cr2')).toBe(0xdead000n);
    } finally {
      vm.close();
    }
  });

  // 0x1000 calls into the stop page before the watch arms, so the emulator holds its translated
  // block, a jump-cache entry for it and a TLB entry that grants execute; the arm page at 0x3000
  // then calls back into the stop page with no TLB flush of its own: through the jump cache at
  // 0x2000 (the block translated before), or with a TLB hit at 0x2100 (a new block).
  for (const countInstructions of [true, false]) {
    for (const target of [0x2000n, 0x2100n]) {
      it(`code of the stop range that ran before the watch armed cannot run again unseen (call 0x${target.toString(16)}, ${countInstructions ? 'counting' : 'fast'} mode)`, () => {
        const vm = simpleGuest(`
          mov rax, 0x2000
          call rax
          mov rax, 0x3000
          jmp rax
          .org 0x1000
          inc rbx
          ret
          .org 0x1100
          mov rbx, 7
          ret
          .org 0x2000
          mov rax, ${target}
          call rax
          hlt`, { countInstructions });
        try {
          vm.vcpu.watchExecution({ start: 0x3000n, end: 0x4000n }, { start: 0x2000n, end: 0x3000n });
          expect(vm.vcpu.run()).toMatchObject({ kind: 'exec-watch', rip: target, gpa: target });
          expect(vm.vcpu.regs.rbx).toBe(1n); // only the call before arming ran
        } finally {
          vm.close();
        }
      });
    }
  }

  it('straight-line code running from the arm page into a stop page that ran before stops before the stop page runs', () => {
    // The stop page 0x3000 runs once before the watch arms; then the arm page's last bytes at
    // 0x2ff0 fall through into it. The emulator translates that as one block over both pages, so
    // the watch stops at the block's start (0x2ff0), before the stop page's INC runs a second time.
    const vm = simpleGuest(`
      mov rax, 0x3000
      call rax
      mov rax, 0x2ff0
      jmp rax
      .org 0x1ff0
      mov ecx, 5
      nop
      nop
      nop
      nop
      nop
      nop
      nop
      nop
      nop
      nop
      nop
      .org 0x2000
      inc rbx
      cmp rbx, 2
      je 1f
      ret
    1: hlt`);
    try {
      vm.vcpu.watchExecution({ start: 0x2000n, end: 0x3000n }, { start: 0x3000n, end: 0x4000n });
      expect(vm.vcpu.run().kind).toBe('exec-watch');
      expect(vm.vcpu.regs.rbx).toBe(1n);
      expect(vm.vcpu.regs.rip).toBeLessThanOrEqual(0x3000n);
    } finally {
      vm.close();
    }
  });

  it('a machine reused from the pool with the stop page translated in its last life stops there too', () => {
    const guest = `
      mov rax, 0x2000
      call rax
      mov rax, 0x3000
      jmp rax
      .org 0x1000
      inc rbx
      ret
      .org 0x2000
      mov rax, 0x2000
      call rax
      hlt`;
    const first = simpleGuest(guest);
    expect(first.vcpu.run().kind).toBe('hlt');
    expect(first.vcpu.regs.rbx).toBe(2n);
    first.close();
    const vm = simpleGuest(guest);
    try {
      vm.vcpu.watchExecution({ start: 0x3000n, end: 0x4000n }, { start: 0x2000n, end: 0x3000n });
      expect(vm.vcpu.run()).toMatchObject({ kind: 'exec-watch', rip: 0x2000n });
      expect(vm.vcpu.regs.rbx).toBe(1n);
      expect(vm.memoryCounters().keptCodePages).toBeGreaterThan(0); // the last life's code was kept
    } finally {
      vm.close();
    }
  });

  for (const countInstructions of [true, false]) {
    it(`a stop page that ran before arming and is rewritten by the host after the stop runs its new bytes (${countInstructions ? 'counting' : 'fast'} mode)`, () => {
      // The page at 0x2000 runs a hot loop (in counting mode its page gets code bits) when it is
      // called, before the watch arms; the arm page at 0x3000 jumps back to it: the stop. The
      // host then writes CPUID over its first instruction, and the run goes on with that CPUID,
      // not with translations or code bits of the bytes the page held before arming.
      const vm = simpleGuest(`
        mov rax, 0x2000
        call rax
        mov rax, 0x3000
        jmp rax
        .org 0x1000
        nop
        nop
        inc rbx
        cmp rbx, 1
        jne out
        mov ecx, 5000
      hot:
        dec ecx
        jnz hot
        ret
      out:
        hlt
        .org 0x2000
        mov rax, 0x2000
        jmp rax`, { countInstructions });
      try {
        vm.vcpu.watchExecution({ start: 0x3000n, end: 0x4000n }, { start: 0x2000n, end: 0x3000n });
        expect(vm.vcpu.run()).toMatchObject({ kind: 'exec-watch', rip: 0x2000n });
        expect(vm.vcpu.regs.rbx).toBe(1n);
        vm.memory.write(0x2000n, Uint8Array.from([0x0f, 0xa2])); // cpuid over the two NOPs
        expect(vm.vcpu.run()).toMatchObject({ kind: 'cpuid', rip: 0x2000n });
      } finally {
        vm.close();
      }
    });
  }

  for (const countInstructions of [true, false]) {
    it(`code running from a stop page straight into the arm page cannot come back to the stop page unseen (${countInstructions ? 'counting' : 'fast'} mode)`, () => {
      // The code at 0x2ff0 runs on into the arm page, in a block that spans both pages: the fetch
      // of the arm page that arms the watch is made while it is translated. The loop at 0x3000
      // jumps back to 0x2ff0 four times. The run stops in the stop page (early: before that
      // block runs, as the emulator translates both pages before any of it runs) and never
      // reaches the HLT.
      const vm = simpleGuest(`
        mov rax, 0x2ff0
        jmp rax
        .org 0x1ff0
        inc rbx
        .fill 0x2000 - 0x1ff3, 1, 0x90
        cmp rbx, 5
        jae done
        mov rax, 0x2ff0
        jmp rax
      done:
        hlt`, { countInstructions });
      try {
        vm.vcpu.watchExecution({ start: 0x3000n, end: 0x4000n }, { start: 0x2000n, end: 0x3000n });
        const exit = vm.vcpu.run();
        expect(exit.kind).toBe('exec-watch');
        expect(vm.vcpu.regs.rip >= 0x2ff0n && vm.vcpu.regs.rip < 0x3000n).toBe(true);
        expect(vm.vcpu.regs.rbx).toBeLessThan(2n);
      } finally {
        vm.close();
      }
    });
  }

  it('refuses ranges that are not page-aligned (a fetch from the rest of a page would fill it for both)', () => {
    const vm = simpleGuest('hlt');
    try {
      expect(() => vm.vcpu.watchExecution({ start: 0x3000n, end: 0x4000n }, { start: 0x2100n, end: 0x3000n })).toThrow(/page-aligned: stopBegin/);
      expect(() => vm.vcpu.watchExecution({ start: 0x3000n, end: 0x3800n }, { start: 0x2000n, end: 0x3000n })).toThrow(/page-aligned: armEnd/);
    } finally {
      vm.close();
    }
  });

  it('never fires when the arm range is never reached', () => {
    const vm = simpleGuest('mov rax, 0x2000\n jmp rax\n .org 0x1000\n hlt');
    try {
      vm.vcpu.watchExecution({ start: 0x8000n, end: 0x9000n }, { start: 0x2000n, end: 0x3000n });
      expect(vm.vcpu.run().kind).toBe('hlt');
    } finally {
      vm.close();
    }
  });
});
