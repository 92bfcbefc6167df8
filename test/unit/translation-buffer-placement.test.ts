// Where the emulator's translated code lives (native/src/guest_ram.cc, MapLazily): TCG calls a
// helper of the addon (the counting hook of every instruction, slow-path loads and stores)
// directly only when the translation buffer lies within ±2 GiB of the addon's code; otherwise
// each call goes through a constant-pool entry whose insertion scans the block's pool, quadratic
// in the block's length (tcg/i386 tcg_out_branch, tcg-pool new_pool_insert in Unicorn's QEMU).
// Guest RAM of even a small guest reserves 4 GiB (the firmware sits below 4 GiB), so it must not
// be mapped between the two. Linux only: the layout is read from /proc/self/maps.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';

interface Mapping { start: bigint; end: bigint; perms: string; path: string }

function mappings(): Mapping[] {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter(Boolean).map((line) => {
    const [range, perms, , , , path = ''] = line.split(/\s+/);
    const [start, end] = range!.split('-').map((x) => BigInt(`0x${x}`));
    return { start: start!, end: end!, perms: perms!, path };
  });
}

const TWO_GIB = 2n << 30n;
// Unicorn's translation buffers: the only writable and executable mappings this large (kTranslationBufferBytes, 64 MiB).
const isBuffer = (m: Mapping) => m.perms === 'rwxp' && m.end - m.start >= 32n << 20n;

/** The translation buffers `create` adds (machines of earlier tests may still be mapped, kept for reuse), each with its distance from the addon's code. */
function newBuffers(create: () => Machine[]): { buffer: string; withinTwoGiB: boolean }[] {
  const before = new Set(mappings().filter(isBuffer).map((m) => m.start));
  const machines = create();
  try {
    const all = mappings();
    const code = all.filter((m) => m.path.endsWith('minivisor.node') && m.perms.startsWith('r-x'));
    expect(code).toHaveLength(1);
    const text = code[0]!;
    const buffers = all.filter((m) => isBuffer(m) && !before.has(m.start));
    expect(buffers).toHaveLength(machines.length);
    return buffers.map((b) => {
      const farthest = [b.end - text.start, text.end - b.start].map((d) => (d < 0n ? -d : d)).reduce((x, y) => (x > y ? x : y));
      return { buffer: b.start.toString(16), withinTwoGiB: farthest < TWO_GIB };
    });
  } finally {
    for (const m of machines) m.close();
  }
}

/** A machine that has run a block (nop; hlt), so its emulator has translated code. */
function ranMachine(memoryBytes: bigint): Machine {
  const m = new Machine({ memoryBytes });
  m.gate.set('private', 0n, 0x2000n, 'readwrite');
  m.memory.write(0x1000n, Uint8Array.from([0x90, 0xf4]));
  m.vcpu.regs.rip = 0x1000n;
  expect(m.vcpu.run().kind).toBe('hlt');
  return m;
}

describe.runIf(process.platform === 'linux')('the translation buffer and the addon', () => {
  it('each of three machines with 4 GiB guests has its translation buffer within ±2 GiB of the addon\'s code', () => {
    for (const b of newBuffers(() => [0, 1, 2].map(() => ranMachine(4n << 30n)))) expect(b).toMatchObject({ withinTwoGiB: true });
  });

  it('so has a machine with a 64 TiB guest, whose RAM is too large for the range kept for large reservations', () => {
    for (const b of newBuffers(() => [ranMachine(64n << 40n)])) expect(b).toMatchObject({ withinTwoGiB: true });
  });
});
