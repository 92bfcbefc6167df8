// A BootConfig from a library caller is checked as the CLI checks its flags: a field no boot can
// take is a BootConfigError naming it, never a TypeError from inside the run or a boot of
// something else (before the check, platform "foo" booted as SNP and accept "x" as lazy).
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BootConfigError, checkBootConfig, type BootConfig } from '../../../src/boot/boot-config.js';
import { parseBootOptions, type RawBootOptions } from '../../../src/cli/boot-options.js';
import { boot } from '../../../src/index.js';
import { refusalMessage } from '../../helpers/refusal.js';

const valid = parseBootOptions({});

const rejected = (overrides: Record<string, unknown>): string =>
  refusalMessage(() => checkBootConfig({ ...valid, ...overrides } as unknown as BootConfig), BootConfigError, `accepted ${JSON.stringify(Object.keys(overrides))}`);

describe('checkBootConfig', () => {
  it('takes every configuration the CLI makes from its flags', () => {
    const flags: RawBootOptions[] = [
      {}, { platform: 'snp' }, { memory: '128M', workload: '64M' }, { memory: '64T', preAccept: 'all', accept: 'eager', unit: '4K' },
      { seed: '0xffffffffffffffff', maxInstructions: String(1n << 62n) }, { fast: true }, { vcpus: '4', schedule: 'pct', quantum: '1' },
      { handover: 'kexec' }, { variant: 'reaccept-skipped' }, { tracking: 'memmap' }, { linux: '/k', cmdline: '' }, { trace: '/t.jsonl', firmware: '/f' },
    ];
    for (const raw of flags) expect(() => checkBootConfig(parseBootOptions(raw)), JSON.stringify(raw)).not.toThrow();
  });

  it('names the field and what it must be', () => {
    expect(rejected({ platform: 'foo' })).toBe('BootConfig.platform must be "tdx" or "snp", got "foo"');
    expect(rejected({ accept: 'x' })).toMatch(/^BootConfig\.accept must be "lazy" or "eager", got "x"$/);
    expect(rejected({ memoryBytes: 4096 })).toMatch(/^BootConfig\.memoryBytes must be a bigint multiple of 4096 .*, got 4096$/);
    expect(rejected({ seed: 1 })).toMatch(/^BootConfig\.seed .* got 1$/);
    expect(rejected({ seed: -1n })).toMatch(/^BootConfig\.seed .* got -1n$/);  // a bigint as the caller writes it
  });

  it('refuses each field outside what a boot can take', () => {
    const bad: Array<[string, unknown]> = [
      ['memoryBytes', 5n], ['memoryBytes', (128n << 20n) - 4096n], ['memoryBytes', (64n << 40n) + 4096n], ['memoryBytes', (256n << 20n) + 1n],
      ['preAccept', 4097n], ['preAccept', 8n << 30n], ['preAccept', 'some'], ['unitBytes', 3n], ['unitBytes', 1n << 30n],
      ['workloadBytes', 4095n], ['workloadBytes', 3n << 30n], ['workloadBytes', -4096n], ['seed', -1n], ['seed', 1n << 64n],
      ['maxInstructions', 0n], ['maxInstructions', (1n << 62n) + 1n], ['traceFile', 7], ['firmwareFile', ''], ['countInstructions', 'yes'],
      ['variant', 'no-such-variant'], ['vcpus', 0], ['vcpus', 65], ['vcpus', 1.5], ['schedule', { policy: 'fifo', quantum: 1 }],
      ['schedule', { policy: 'random', quantum: 0 }], ['handover', 'reboot'], ['linux', { kernelFile: '' , cmdline: '' }], ['tracking', 'list'],
      ['schedule', { policy: 'random', quantum: 2 ** 32 + 1 }], ['linux', { kernelFile: '/k', cmdline: 7 }],
    ];
    for (const [field, value] of bad) expect(rejected({ [field]: value }), `${field} = ${String(value)}`).toMatch(new RegExp(`^BootConfig\\.${field} must be `));
  });

  it('refuses a field a BootConfig does not have (before: a typo of an optional field was ignored, firmware: booted our firmware)', () => {
    expect(rejected({ firmware: '/my/firmware.elf' })).toMatch(/^BootConfig has no field "firmware" \(its fields: platform, .*firmwareFile.*\)$/);
    expect(rejected({ vcpu: 4, Seed: 2n })).toMatch(/^BootConfig has no field "vcpu", "Seed" /);
  });

  it('writes a number that JSON cannot (NaN) as itself (before: "got null")', () => {
    expect(rejected({ vcpus: NaN })).toBe('BootConfig.vcpus must be an integer from 1 to 64, got NaN');
  });

  it('takes the bounds themselves: no pre-acceptance or workload at all, pre-accepting all of memory, 64 vCPUs (MV_MAX_VCPUS), a turn of 2^32', () => {
    for (const overrides of [{ preAccept: 0n }, { workloadBytes: 0n }, { preAccept: valid.memoryBytes }, { workloadBytes: valid.memoryBytes / 2n },
      { vcpus: 64 }, { schedule: { policy: 'random' as const, quantum: 2 ** 32 } }]) {
      expect(() => checkBootConfig({ ...valid, ...overrides }), JSON.stringify(Object.keys(overrides))).not.toThrow();
    }
  });

  it('lets fast mode, which counts no instructions, take a budget of 0', () => {
    expect(() => checkBootConfig({ ...valid, countInstructions: false, maxInstructions: 0n })).not.toThrow();
  });

  it('stops boot() before it builds anything or writes the trace file', () => {
    const traceFile = join(mkdtempSync(join(tmpdir(), 'minivisor-config-')), 'trace.jsonl');
    expect(() => boot({ ...valid, platform: 'foo' as 'tdx', traceFile })).toThrow(BootConfigError);
    expect(() => boot({} as BootConfig)).toThrow(/^BootConfig\.platform must be/);
    expect(() => checkBootConfig('tdx' as unknown as BootConfig)).toThrow(new BootConfigError('a BootConfig must be an object'));
    expect(existsSync(traceFile)).toBe(false);
  });
});
