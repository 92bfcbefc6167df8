// `minivisor boot` flags (src/cli/boot-options.ts) at the edges of what they accept: every bound
// taken at its value and refused one step past it, with a BootOptionError (exit status 2), never
// another exception. The bounds come from the flags' documentation and src/boot/boot-config.ts:
// memory from 128M to 64T in 4K pages, --pre-accept and --workload within --memory, a 64-bit
// seed, at most 2^62 instructions, 1-64 vCPUs, a quantum of 1 to 2^32 instructions, and the stub
// kernel's workload table of 4096 allocations of 1M (guest/kernel/main.c).
import { describe, expect, it } from 'vitest';
import { BootOptionError, DEFAULT_LINUX_CMDLINE, parseBootOptions, type RawBootOptions } from '../../../src/cli/boot-options.js';
import { refusalMessage } from '../../helpers/refusal.js';

const K = 1n << 10n;
const M = 1n << 20n;
const G = 1n << 30n;
const T = 1n << 40n;

/** The BootOptionError `raw` gets (failing the test when it gets none or another exception). */
const refusal = (raw: RawBootOptions): string => refusalMessage(() => parseBootOptions(raw), BootOptionError, `accepted ${JSON.stringify(raw)}`);

describe('boot flags at their bounds', () => {
  it('--memory: 128M to 64T, in whole 4K pages', () => {
    expect(parseBootOptions({ memory: '128M', workload: '4M' }).memoryBytes).toBe(128n * M);
    expect(parseBootOptions({ memory: '64T' }).memoryBytes).toBe(64n * T);
    expect(refusal({ memory: String(128n * M - 4n * K) })).toMatch(/--memory must be between 128M and 64T/);
    expect(refusal({ memory: String(64n * T + 4n * K) })).toMatch(/--memory must be between 128M and 64T/);
    expect(refusal({ memory: String(128n * M + K) })).toMatch(/--memory must be a multiple of 4K/);
  });

  it('--pre-accept: up to --memory in 4K pages, or all (any case); 16M before a Linux kernel, else 64M', () => {
    expect(parseBootOptions({ memory: '256M', preAccept: '256M' }).preAccept).toBe(256n * M);
    expect(refusal({ memory: '256M', preAccept: String(256n * M + 4n * K) })).toMatch(/--pre-accept .* is larger than --memory/);
    expect(refusal({ preAccept: String(64n * M + K) })).toMatch(/--pre-accept must be a multiple of 4K/);
    expect(parseBootOptions({ preAccept: ' ALL ' }).preAccept).toBe('all');
    expect(parseBootOptions({}).preAccept).toBe(64n * M);
    expect(parseBootOptions({ linux: '/vmlinuz' }).preAccept).toBe(16n * M);
  });

  it('--unit: 4K or 2M, in either case', () => {
    expect(parseBootOptions({ unit: '4k' }).unitBytes).toBe(4n * K);
    expect(parseBootOptions({ unit: '2m' }).unitBytes).toBe(2n * M);
  });

  it('--workload: whole 4K pages, at most half of --memory, and at most 4096M for the stub kernel (not for --kernel or --linux)', () => {
    expect(parseBootOptions({ memory: '256M', workload: '128M' }).workloadBytes).toBe(128n * M);
    expect(refusal({ memory: '256M', workload: String(128n * M + 4n * K) })).toMatch(/must be at most half of --memory/);
    expect(refusal({ workload: String(4n * M + K) })).toMatch(/--workload must be a multiple of 4K/);
    expect(parseBootOptions({ memory: '16G', workload: '4096M' }).workloadBytes).toBe(4096n * M);
    expect(refusal({ memory: '16G', workload: String(4096n * M + 4n * K) })).toMatch(/must be at most 4G: the stub kernel's workload table/);
    expect(parseBootOptions({ memory: '16G', workload: '4100M', kernel: '/k.elf' }).workloadBytes).toBe(4100n * M);
    expect(parseBootOptions({ memory: '16G', workload: '4100M', linux: '/vmlinuz' }).workloadBytes).toBe(4100n * M);
  });

  it('--seed and --max-instructions: whole numbers (decimal or 0x), a seed to 2^64-1, a budget from 1 to 2^62', () => {
    expect(parseBootOptions({ seed: '0xffffffffffffffff' }).seed).toBe((1n << 64n) - 1n);
    expect(parseBootOptions({}).seed).toBe(1n);
    expect(parseBootOptions({ seed: ' 7 ' }).seed).toBe(7n);
    for (const seed of ['12abc', '7 8', '0x', '-1', '1e3']) expect(refusal({ seed })).toMatch(/--seed .* is not a non-negative integer/);
    expect(parseBootOptions({ maxInstructions: String(1n << 62n) }).maxInstructions).toBe(1n << 62n);
    expect(refusal({ maxInstructions: String((1n << 62n) + 1n) })).toMatch(/--max-instructions .* is larger than 4611686018427387904/);
  });

  it('--vcpus 1 to 64 (one is the default, left out of the config); --quantum 1 to 2^32', () => {
    expect(parseBootOptions({ vcpus: '1' })).not.toHaveProperty('vcpus');
    expect(parseBootOptions({ vcpus: '2' })).toMatchObject({ vcpus: 2, schedule: { policy: 'random', quantum: 2000 } });
    expect(parseBootOptions({ vcpus: '64' }).vcpus).toBe(64);
    expect(refusal({ vcpus: '65' })).toMatch(/--vcpus .* is larger than 64/);
    expect(refusal({ vcpus: '0' })).toBe('--vcpus must be at least 1');
    expect(parseBootOptions({ vcpus: '2', quantum: String(2 ** 32) }).schedule?.quantum).toBe(2 ** 32);
    expect(refusal({ vcpus: '2', quantum: String(2 ** 32 + 1) })).toMatch(/--quantum .* is larger than 4294967296/);
    expect(refusal({ quantum: '0' })).toBe('--quantum must be at least 1');
    expect(refusal({ vcpus: '2', schedule: 'fifo' })).toBe('--schedule must be one of round-robin, random, pct, not "fifo"');
  });

  it('keeps the --trace file, and refuses a --variant it does not know', () => {
    expect(parseBootOptions({ trace: '/tmp/run.jsonl' }).traceFile).toBe('/tmp/run.jsonl');
    expect(refusal({ variant: 'no-such-variant' })).toMatch(/--variant must be one of /);
  });
});

describe('boot flags that do not go together', () => {
  it('--handover boots the built stubs on one vCPU, and kexec\'s second workload (twice the first) must fit', () => {
    expect(refusal({ handover: 'kexec', firmware: '/f' })).toMatch(/cannot be combined with --firmware/);
    expect(refusal({ handover: 'kexec', decompressor: '/d' })).toMatch(/cannot be combined with --decompressor or --kernel/);
    expect(refusal({ handover: 'crash', kernel: '/k' })).toMatch(/cannot be combined with --decompressor or --kernel/);
    expect(refusal({ handover: 'kexec', vcpus: '2' })).toMatch(/--handover runs one vCPU/);
    expect(parseBootOptions({ handover: 'kexec', memory: '256M', workload: '64M' }).handover).toBe('kexec');
    expect(refusal({ handover: 'kexec', memory: '256M', workload: String(64n * M + 4n * K) })).toMatch(/must be at most a quarter of --memory with --handover kexec/);
    expect(parseBootOptions({ handover: 'kexec', memory: '16G', workload: '2048M' }).handover).toBe('kexec');
    expect(refusal({ handover: 'kexec', memory: '16G', workload: String(2048n * M + 4n * K) })).toMatch(/must be at most 2G with --handover kexec/);
    // crash runs no second workload: half of --memory is its only bound.
    expect(parseBootOptions({ handover: 'crash', memory: '256M', workload: '128M' }).handover).toBe('crash');
  });

  it('--linux boots one vCPU, no stub handover, with the documented command line unless --cmdline', () => {
    expect(parseBootOptions({ linux: '/vmlinuz' }).linux).toEqual({ kernelFile: '/vmlinuz', cmdline: DEFAULT_LINUX_CMDLINE });
    expect(DEFAULT_LINUX_CMDLINE).toBe('console=ttyS0 earlyprintk=serial,ttyS0,115200 nokaslr no5lvl');
    expect(refusal({ linux: '/vmlinuz', vcpus: '2' })).toBe('--linux boots one vCPU for now');
    expect(refusal({ linux: '/vmlinuz', handover: 'kexec' })).toMatch(/--linux boots a Linux kernel instead/);
  });

  it('--tracking memmap boots its own decompressor and kernel, alone', () => {
    expect(parseBootOptions({ tracking: 'memmap', variant: 'map-from-config' }).tracking).toBe('memmap');
    expect(refusal({ tracking: 'memmap', variant: 'reaccept-skipped' })).toBe('--tracking memmap is built with --variant map-from-config or trusts-injected-exception only, not "reaccept-skipped"');
    expect(refusal({ tracking: 'memmap', decompressor: '/d' })).toMatch(/does not take --decompressor or --kernel/);
    expect(refusal({ tracking: 'memmap', handover: 'kexec' })).toMatch(/does not take --handover or --linux/);
    expect(refusal({ tracking: 'memmap', linux: '/vmlinuz' })).toMatch(/does not take --handover or --linux/);
    // bitmap is the default build: the config leaves the field out.
    expect(parseBootOptions({ tracking: 'bitmap' })).not.toHaveProperty('tracking');
  });
});
