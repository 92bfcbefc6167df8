// Zero fills (TDX ACCEPT, SNP page clears) skip pages the machine has never seen written, which
// read as zeros already. A page the guest writes again after a fill, through a TLB entry that
// survived it, must still count as written: else the next fill skips it and the guest reads back
// data that should have been zeroed. Checked against a plain byte model through random host
// writes, guest stores and loads, fills, snapshots and restores.
import { describe, expect, it } from 'vitest';
import { Prng } from '../../src/shared/prng.js';
import { CODE_BASE, runToHlt, simpleGuest } from '../helpers/guest-setup.js';

const BASE = 0x400000n;
const PAGES = 12;
const SIZE = PAGES * 4096;

/** A guest that loads [rsi] into rbx, stores rax to [rdi], loads [rsi] again into rcx. */
const STORE_AND_LOAD = `
  mov rbx, [rsi]
  mov [rdi], rax
  mov rcx, [rsi]
  hlt`;

function guestStore(vm: ReturnType<typeof simpleGuest>, gpa: bigint, value: bigint, readGpa = gpa): void {
  vm.vcpu.regs.rip = CODE_BASE;
  vm.vcpu.regs.rdi = gpa;
  vm.vcpu.regs.rsi = readGpa;
  vm.vcpu.regs.rax = value;
  runToHlt(vm);
}

describe('zero fill of pages the guest wrote', () => {
  it('zeroes a page the guest wrote again after an earlier fill, with no TLB flush between', () => {
    const vm = simpleGuest(STORE_AND_LOAD);
    try {
      const base = vm.snapshot();
      vm.restore(base);
      guestStore(vm, BASE, 0x1111n);
      vm.memory.fill(BASE, 0x1000n, 0);
      guestStore(vm, BASE + 8n, 0x2222n);
      vm.memory.fill(BASE, 0x1000n, 0);
      expect(vm.memory.readU64(BASE + 8n)).toBe(0n);
      // And a snapshot taken now holds the zeroes: a restore of it after another write gives them back.
      const after = vm.snapshot();
      guestStore(vm, BASE + 8n, 0x3333n);
      vm.restore(after);
      expect(vm.memory.readU64(BASE + 8n)).toBe(0n);
    } finally {
      vm.close();
    }
  });

  it.each([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n])('matches a byte model through random writes, fills, snapshots and restores (seed %s)', (seed) => {
    const vm = simpleGuest(STORE_AND_LOAD);
    const rng = new Prng(seed);
    let model = new Uint8Array(SIZE);
    const view = () => new DataView(model.buffer);
    const snaps: { snap: ReturnType<typeof vm.snapshot>; model: Uint8Array }[] = [{ snap: vm.snapshot(), model: model.slice() }];
    try {
      for (let step = 0; step < 300; step++) {
        const op = rng.below(9);
        const off = rng.below(PAGES) * 4096 + rng.below(512) * 8;
        const value = BigInt(rng.below(2 ** 30) + 1);
        let what: string;
        if (op === 0) {
          vm.memory.writeU64(BASE + BigInt(off), value);
          view().setBigUint64(off, value, true);
          what = `host write +0x${off.toString(16)}`;
        } else if (op <= 3) {
          const readOff = rng.below(PAGES) * 4096 + rng.below(512) * 8;
          const before = view().getBigUint64(readOff, true);
          guestStore(vm, BASE + BigInt(off), value, BASE + BigInt(readOff));
          expect(vm.vcpu.regs.rbx).toBe(before);
          view().setBigUint64(off, value, true);
          expect(vm.vcpu.regs.rcx).toBe(view().getBigUint64(readOff, true));
          what = `guest store +0x${off.toString(16)}`;
        } else if (op <= 5) {
          const first = rng.below(PAGES);
          const head = rng.chance(1, 3) ? rng.below(4096) : 0;
          const tail = rng.chance(1, 3) ? rng.below(100) : 0;
          const start = first * 4096 + head;
          const length = Math.max(0, (1 + rng.below(PAGES - first)) * 4096 - head - tail);
          vm.memory.fill(BASE + BigInt(start), BigInt(length), 0);
          model.fill(0, start, start + length);
          what = `fill +0x${start.toString(16)} 0x${length.toString(16)} bytes`;
        } else if (op === 6) {
          snaps.push({ snap: vm.snapshot(), model: model.slice() });
          what = 'snapshot';
        } else {
          const i = rng.chance(1, 4) ? rng.below(snaps.length) : snaps.length - 1;
          vm.restore(snaps[i]!.snap);
          model = snaps[i]!.model.slice();
          // The snapshot restored last is the one most restores go back to (a fuzz campaign's).
          snaps.push(snaps.splice(i, 1)[0]!);
          what = `restore ${i}`;
        }
        const got = vm.memory.read(BASE, SIZE);
        const firstDiff = got.findIndex((b, i) => b !== model[i]);
        expect(firstDiff, `step ${step} (${what}): byte +0x${firstDiff.toString(16)} differs`).toBe(-1);
      }
    } finally {
      vm.close();
    }
  });
});
