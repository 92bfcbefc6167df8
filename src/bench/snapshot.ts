// Snapshot and restore cost against guest size (issue 11): the guest dirties 256 pages after a
// snapshot, then the VM is restored, at 64 MiB, 1 TiB and 16 TiB. The cost should follow the
// dirty pages and the gate state that changed, not the size of the guest.
import { Machine } from '../cpu/machine.js';

// mov rcx, 0x400000; 1: mov [rcx], rcx; add rcx, 0x1000; cmp rcx, 0x500000; jb 1b; hlt
const DIRTY_256_PAGES = [
  0x48, 0xc7, 0xc1, 0x00, 0x00, 0x40, 0x00,
  0x48, 0x89, 0x09, 0x48, 0x81, 0xc1, 0x00, 0x10, 0x00, 0x00,
  0x48, 0x81, 0xf9, 0x00, 0x00, 0x50, 0x00, 0x72, 0xed, 0xf4,
];

export interface SnapshotSample { memory: string; snapshotMs: number; restoreMs: number }
export interface SnapshotBench { samples: SnapshotSample[]; largestVsSmallest: number; target: number }

const ms = (fn: () => void): number => {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
};

function sample(label: string, bytes: bigint, rounds: number): SnapshotSample {
  const vm = new Machine({ memoryBytes: bytes, wallClockTimeoutMs: 0 });
  // Like a lazily accepted guest: the first 64 MiB accepted and partly written.
  vm.gate.set('private', 0n, 63n << 20n, 'readwrite');
  vm.memory.fill(0x2000000n, 1n << 20n, 0x5a);
  vm.memory.write(0x1000n, Uint8Array.from(DIRTY_256_PAGES));
  let snapshotMs = Infinity, restoreMs = Infinity;
  for (let i = 0; i < rounds; i++) {
    vm.vcpu.regs.rip = 0x1000n;
    let snap!: ReturnType<Machine['snapshot']>;
    snapshotMs = Math.min(snapshotMs, ms(() => { snap = vm.snapshot(); }));
    // The platform changes a little gate state too (a page accepted after the snapshot).
    vm.gate.set('private', 0x3fff000n, 0x1000n, 'readwrite');
    if (vm.vcpu.run().kind !== 'hlt' || vm.dirtyPages() !== 256) throw new Error(`snapshot bench: ${vm.dirtyPages()} dirty pages, expected 256`);
    restoreMs = Math.min(restoreMs, ms(() => vm.restore(snap)));
    if (vm.gate.get('private', 0x3fff000n) !== 'none') throw new Error('snapshot bench: restore kept a gate change');
  }
  vm.close();
  return { memory: label, snapshotMs, restoreMs };
}

// Best of 10 after a warm-up. A round's snapshot has the snapshot restored in the round before as
// its base: it copies the 256 pages the guest dirtied and shares the rest (native/src/snapshot.h).
// The first round of each VM has no base and copies all ~500 pages written into fresh memory,
// which this host first-touches at ~10 us a page, whatever the guest's size; before snapshots
// shared pages every round did, and with best of 3 the ratio swung from 1x to 35x.
export function benchSnapshot(rounds = 10): SnapshotBench {
  sample('64M', 64n << 20n, rounds);
  const samples = [sample('64M', 64n << 20n, rounds), sample('1T', 1n << 40n, rounds), sample('16T', 16n << 40n, rounds)];
  const total = (s: SnapshotSample) => s.snapshotMs + s.restoreMs;
  return { samples, largestVsSmallest: total(samples[2]!) / total(samples[0]!), target: 2 };
}
