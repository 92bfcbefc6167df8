// A snapshot taken after another (its base: the last one taken or restored) copies only the RAM
// and gate-bitmap pages changed since, and refers to the base's copy of the rest
// (native/src/snapshot.h). Whatever chain of snapshots shares what, a restore of any of them
// gives back that moment's RAM and gate, checked against plain models.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';
import type { GateAccess } from '../../src/memory/page-gate.js';
import { Prng } from '../../src/shared/prng.js';

const copied = (vm: Machine) => vm.memoryCounters().snapshotCopiedPages;
const pageAt = (vm: Machine, gpa: bigint) => new Uint8Array(vm.memory.read(gpa, 0x1000));

describe('snapshots share the pages not changed since their base', () => {
  it('a snapshot after another copies only the pages written since; restores of either give back their bytes', () => {
    const vm = new Machine({ memoryBytes: 1n << 30n, wallClockTimeoutMs: 0 });
    try {
      const page = (i: number) => 0x100000n + BigInt(i) * 0x1000n;
      for (let i = 0; i < 64; i++) vm.memory.fill(page(i), 0x1000n, i + 1);
      const start = copied(vm);
      const first = vm.snapshot();
      expect(copied(vm) - start).toBe(64);
      for (const i of [3, 40, 63]) vm.memory.fill(page(i), 0x1000n, 0xee);
      const second = vm.snapshot();
      expect(copied(vm) - start).toBe(64 + 3);
      // Nothing written since: the next one copies nothing.
      vm.snapshot();
      expect(copied(vm) - start).toBe(64 + 3);

      vm.memory.fill(page(5), 0x1000n, 0x11);
      vm.restore(first);
      for (const i of [3, 5, 40, 63]) expect(pageAt(vm, page(i))).toEqual(new Uint8Array(0x1000).fill(i + 1));
      vm.restore(second);
      for (const i of [3, 40, 63]) expect(pageAt(vm, page(i))).toEqual(new Uint8Array(0x1000).fill(0xee));
      expect(pageAt(vm, page(5))).toEqual(new Uint8Array(0x1000).fill(6));
    } finally {
      vm.close();
    }
  });

  it.each([1n, 2n])('long chains, restores of older snapshots and zero fills keep every snapshot right (seed %s)', (seed) => {
    // 16 pages 64 MiB apart: they fall in 8 pages of each gate bitmap (one covers 128 MiB).
    const vm = new Machine({ memoryBytes: 1n << 30n, wallClockTimeoutMs: 0 });
    const rng = new Prng(seed);
    const PAGES = 16;
    const gpa = (i: number) => BigInt(i) * (64n << 20n) + 0x3000n;
    const accesses: GateAccess[] = ['none', 'read', 'readwrite'];
    let ram = Array.from({ length: PAGES }, () => new Uint8Array(0x1000));
    let gate: GateAccess[] = new Array<GateAccess>(PAGES).fill('none');
    const snaps: { snap: ReturnType<Machine['snapshot']>; ram: Uint8Array[]; gate: GateAccess[] }[] = [];
    const take = () => snaps.push({ snap: vm.snapshot(), ram: ram.map((p) => p.slice()), gate: [...gate] });
    try {
      take();
      for (let step = 0; step < 400; step++) {
        const op = rng.below(10);
        const i = rng.below(PAGES);
        let what: string;
        if (op <= 2) {
          // A few qwords (a sparse page) or many (held whole).
          const words = rng.chance(1, 2) ? 1 + rng.below(4) : 100;
          for (let w = 0; w < words; w++) {
            const off = rng.below(512) * 8, value = BigInt(rng.below(2 ** 30) + 1);
            const bytes = new Uint8Array(new BigUint64Array([value]).buffer);
            vm.memory.write(gpa(i) + BigInt(off), bytes);
            ram[i]!.set(bytes, off);
          }
          what = `write page ${i}`;
        } else if (op === 3) {
          vm.memory.fill(gpa(i), 0x1000n, 0);
          ram[i]!.fill(0);
          what = `zero page ${i}`;
        } else if (op <= 5) {
          const access = rng.pick(accesses);
          vm.gate.set('private', gpa(i), 0x1000n, access);
          gate[i] = access;
          what = `gate of page ${i}: ${access}`;
        } else if (op <= 7) {
          take();
          what = 'snapshot';
        } else {
          const at = rng.chance(1, 3) ? rng.below(snaps.length) : snaps.length - 1;
          vm.restore(snaps[at]!.snap);
          ram = snaps[at]!.ram.map((p) => p.slice());
          gate = [...snaps[at]!.gate];
          // The snapshot restored last is the base of the next: it goes to the end like a new one.
          snaps.push(snaps.splice(at, 1)[0]!);
          what = `restore ${at}`;
        }
        for (let p = 0; p < PAGES; p++) {
          // Compared natively: toEqual on 4 KiB arrays, 6,400 times, takes minutes.
          expect(Buffer.compare(vm.memory.read(gpa(p), 0x1000), ram[p]!), `step ${step} (${what}): page ${p}`).toBe(0);
          expect(vm.gate.get('private', gpa(p)), `step ${step} (${what}): gate of page ${p}`).toBe(gate[p]);
        }
      }
    } finally {
      vm.close();
    }
  });
});
