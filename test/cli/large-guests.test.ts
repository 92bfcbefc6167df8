// Valid configurations at the edges of what the README promises (issue 8): the largest guest,
// accepting all of a large SNP guest up front, and large workloads. Each boot runs in a child
// process (the installed command), awaited asynchronously so the test worker stays responsive.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';

const run = promisify(execFile);

async function boot(...args: string[]): Promise<{ outcome: string; outcomeReason: string; memoryBytes: number; guestStats: Record<string, string> }> {
  const { stdout } = await run(process.execPath, ['bin/minivisor.js', 'boot', '--json', ...args], { maxBuffer: 64 << 20 }).catch((err) => err);
  return JSON.parse(stdout);
}

describe('64 TiB guests', () => {
  it('a 64 TiB VM can be created every time, in fresh processes (5 in a row)', async () => {
    const create = `import('${process.cwd()}/dist/cpu/machine.js').then(({ Machine }) => { const m = new Machine({ memoryBytes: 64n << 40n }); m.memory.write((64n << 40n) - 4096n, Uint8Array.of(1)); console.log('ok'); })`;
    for (let i = 0; i < 5; i++) {
      const { stdout } = await run(process.execPath, ['-e', create]);
      expect(stdout.trim()).toBe('ok');
    }
  }, 120_000);

  it('guest RAM that cannot be one host range is reserved in pieces (64 TiB + 48 TiB at once)', () => {
    // 112 TiB of the 128 TiB user address space: no single hole is that large next to Node's
    // own mappings, so the second VM (at least) must be reserved in pieces.
    const a = new Machine({ memoryBytes: 64n << 40n });
    const b = new Machine({ memoryBytes: 48n << 40n });
    try {
      for (const [vm, size] of [[a, 64n << 40n], [b, 48n << 40n]] as const) {
        // Bytes on both sides of every 1 GiB boundary near the top and a copy across one.
        const gpa = size - (1n << 30n) - 2n;
        vm.memory.write(gpa, Uint8Array.of(1, 2, 3, 4));
        expect([...vm.memory.read(gpa, 4)]).toEqual([1, 2, 3, 4]);
        vm.memory.fill(size - 8192n, 8192n, 0xab);
        expect([...vm.memory.read(size - 2n, 2)]).toEqual([0xab, 0xab]);
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('boots with --memory 64T on both platforms', async () => {
    for (const platform of ['tdx', 'snp']) {
      const r = await boot('--platform', platform, '--memory', '64T');
      expect(r).toMatchObject({ outcome: 'done', memoryBytes: 64 * 2 ** 40 });
    }
  }, 120_000);
});

describe('large acceptance and workloads', () => {
  it('SNP --memory 128G --pre-accept all: the firmware maps what it validates with 1 GiB leaves', async () => {
    const r = await boot('--platform', 'snp', '--memory', '128G', '--pre-accept', 'all');
    expect(r.outcome).toBe('done');
    expect(r.outcomeReason).not.toMatch(/page_table_pool_exhausted/);
  }, 120_000);

  it('a 512M workload (512 chunks, 256 free extents after freeing every other one) completes', async () => {
    const r = await boot('--memory', '2G', '--workload', '512M');
    expect(r.outcome).toBe('done');
    expect(r.guestStats.workload_bytes_verified).toBeDefined();
    expect(BigInt(r.guestStats.reallocated_bytes!)).toBe(256n << 20n);
  }, 180_000);

  it('the largest workload the CLI takes (4G: the stub kernel\'s 4096 chunks of 1M) completes', async () => {
    const r = await boot('--memory', '8G', '--workload', '4G', '--fast');
    expect(r.outcome).toBe('done');
    expect(r.guestStats.workload_bytes_verified).toBeDefined();
  }, 180_000);
});
