import { describe, expect, it } from 'vitest';
import { formatSize, parseSize, SizeError } from '../../src/cli/size.js';
import { BootOptionError, parseBootOptions } from '../../src/cli/boot-options.js';

describe('sizes', () => {
  it.each([
    ['4096', 4096n], ['4K', 4096n], ['2M', 2n << 20n], ['512M', 512n << 20n], ['4095M', 4095n << 20n],
    ['64G', 64n << 30n], ['1T', 1n << 40n], ['1t', 1n << 40n], ['4GiB', 4n << 30n],
  ])('parses %s', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', 'M', '-1G', '1.5G', '4X', '0x10', '1 2G'])('rejects %j', (text) => {
    expect(() => parseSize(text)).toThrow(SizeError);
  });

  it('formats sizes back', () => {
    expect(formatSize(4097n << 20n)).toBe('4097M');
    expect(formatSize(1n << 40n)).toBe('1T');
    expect(formatSize(1000n)).toBe('1000');
  });
});

describe('boot options', () => {
  it('has defaults that need no flags', () => {
    expect(parseBootOptions({})).toMatchObject({
      platform: 'tdx', memoryBytes: 4n << 30n, preAccept: 64n << 20n, accept: 'lazy', unitBytes: 2n << 20n,
      workloadBytes: 64n << 20n, seed: 1n,
    });
  });

  it.each([
    [{ platform: 'sev' }, /--platform/],
    [{ memory: '1M' }, /--memory must be between/],
    [{ memory: '128T' }, /--memory must be between/],
    [{ memory: '4G', preAccept: '8G' }, /larger than --memory/],
    [{ accept: 'sometimes' }, /--accept/],
    [{ unit: '1G' }, /--unit/],
    [{ seed: 'abc' }, /--seed/],
    [{ seed: '0x1' + '0'.repeat(16) }, /--seed/],
    [{ maxInstructions: '0' }, /at least 1/],
    [{ workload: '3G', memory: '4G' }, /at most half/],
  ])('rejects %j', (raw, message) => {
    expect(() => parseBootOptions(raw)).toThrow(BootOptionError);
    expect(() => parseBootOptions(raw)).toThrow(message);
  });

  it('accepts all and hex seeds', () => {
    expect(parseBootOptions({ preAccept: 'all', seed: '0xdeadbeef' })).toMatchObject({ preAccept: 'all', seed: 0xdeadbeefn });
  });
});
