// Where the emulator's translated code lives (native/src/guest_ram.cc, MapLazily; machine.cc,
// Machine::Init; machine_pool.cc, Poolable): TCG calls a helper of the addon (the counting hook of
// every instruction, slow-path loads and stores) directly only when the translation buffer lies
// within ±2 GiB of the addon's code; otherwise each call goes through a constant-pool entry whose
// insertion scans the block's pool, quadratic in the block's length (tcg/i386 tcg_out_branch,
// tcg-pool new_pool_insert in Unicorn's QEMU). Guest RAM of even a small guest reserves 4 GiB (the
// firmware sits below 4 GiB), so it must not be mapped between the two. Each case runs in a
// process of its own: the address space of a shared test worker holds other tests' machines.
// Linux only: the layout is read from /proc/self/maps.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const MACHINE_JS = join(import.meta.dirname, '..', '..', 'dist', 'cpu', 'machine.js');

/**
 * Runs `body` (which makes machines with `ran(memoryBytes)`) in a fresh node process and returns,
 * for each translation buffer mapped meanwhile, whether it is within ±2 GiB of the addon's code.
 */
function newBuffersIn(body: string): boolean[] {
  const script = `
    import { readFileSync } from 'node:fs';
    const { Machine } = await import(${JSON.stringify(MACHINE_JS)});
    const maps = () => readFileSync('/proc/self/maps', 'utf8').split('\\n').filter(Boolean).map((line) => {
      const [range, perms, , , , path = ''] = line.split(/\\s+/);
      const [start, end] = range.split('-').map((x) => BigInt('0x' + x));
      return { start, end, perms, path };
    });
    // Unicorn's translation buffers: the only writable and executable mappings this large (64 MiB).
    const isBuffer = (m) => m.perms === 'rwxp' && m.end - m.start >= 32n << 20n;
    const ran = (memoryBytes) => {
      const m = new Machine({ memoryBytes });
      m.gate.set('private', 0n, 0x2000n, 'readwrite');
      m.memory.write(0x1000n, Uint8Array.from([0x90, 0xf4]));  // nop; hlt: the emulator translates a block
      m.vcpu.regs.rip = 0x1000n;
      if (m.vcpu.run().kind !== 'hlt') throw new Error('no hlt');
      return m;
    };
    const before = new Set(maps().filter(isBuffer).map((m) => m.start));
    ${body}
    const all = maps();
    const text = all.find((m) => m.path.endsWith('minivisor.node') && m.perms.startsWith('r-x'));
    const abs = (d) => (d < 0n ? -d : d);
    const near = all.filter((m) => isBuffer(m) && !before.has(m.start))
      .map((b) => abs(b.end - text.start) < 2n << 30n && abs(text.end - b.start) < 2n << 30n);
    process.stdout.write(JSON.stringify(near));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as boolean[];
}

describe.runIf(process.platform === 'linux')('the translation buffer and the addon', () => {
  it('each of three machines with 4 GiB guests has its translation buffer within ±2 GiB of the addon\'s code', () => {
    expect(newBuffersIn('const kept = [0, 1, 2].map(() => ran(4n << 30n));')).toEqual([true, true, true]);
  });

  it('so has a machine with a 64 TiB guest, whose RAM is too large for the range kept for large reservations', () => {
    expect(newBuffersIn('const kept = ran(64n << 40n);')).toEqual([true]);
  });

  it('and a machine made after a 64 TiB one was closed: the huge one is not kept for reuse (its buffer is gone with it)', () => {
    expect(newBuffersIn('ran(64n << 40n).close(); const kept = ran(4n << 30n);')).toEqual([true]);
  });
});
