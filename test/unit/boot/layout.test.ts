import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ABI, PRE_ACCEPTED, TEMP_RAM, INITIAL_IMAGE } from '../../../src/boot/layout.js';
import { decodeBootParams, encodeFirmwareConfig } from '../../../src/boot/fw-config.js';

const HEADER = join(import.meta.dirname, '../../../guest/include/minivisor/boot_abi.h');

/** Every `#define MV_NAME 0x...` line of the C header. */
function headerDefines(): Map<string, bigint> {
  const text = readFileSync(HEADER, 'utf8');
  const defs = new Map<string, bigint>();
  for (const m of text.matchAll(/^#define\s+(MV_[A-Z0-9_]+)\s+(0x[0-9a-fA-F]+)\s*$/gm)) defs.set(m[1]!, BigInt(m[2]!));
  return defs;
}

describe('boot ABI layout', () => {
  it('matches boot_abi.h number for number, in both directions', () => {
    const defs = headerDefines();
    expect(defs.size).toBeGreaterThan(50);
    expect(Object.fromEntries(defs)).toEqual({ ...ABI });
  });

  it('has only plain hex defines for numbers (so the parser above sees all of them)', () => {
    const text = readFileSync(HEADER, 'utf8');
    const odd = [...text.matchAll(/^#define\s+(MV_[A-Z0-9_]+)\s+(.*)$/gm)]
      .filter((m) => !/^0x[0-9a-f]+$/.test(m[2]!.trim()) && m[1] !== 'MV_ABI_CHECK');
    expect(odd.map((m) => m[1])).toEqual([]);
  });

  it('keeps the pre-accepted ranges contiguous and 2 MiB aligned', () => {
    expect(TEMP_RAM.gpa + TEMP_RAM.bytes).toBe(INITIAL_IMAGE.gpa);
    expect(PRE_ACCEPTED.gpa % ABI.MV_SIZE_2M).toBe(0n);
    expect((PRE_ACCEPTED.gpa + PRE_ACCEPTED.bytes) % ABI.MV_SIZE_2M).toBe(0n);
    expect(PRE_ACCEPTED.gpa + PRE_ACCEPTED.bytes).toBe(ABI.MV_FIRMWARE_RESERVED_END);
  });
});

describe('firmware config encoding', () => {
  it('writes every field at the header offsets', () => {
    const bytes = Buffer.from(encodeFirmwareConfig({
      memoryBytes: 1n << 40n, preAccept: 'all', acceptMode: 'eager', acceptUnit: 4096,
      workloadBytes: 64n << 20n, seed: -1n, platformHint: 'snp', guestImageEntry: 0x340000n,
    }));
    expect(bytes.byteLength).toBe(Number(ABI.MV_FW_CONFIG_SIZE));
    expect(bytes.readUInt32LE(0)).toBe(Number(ABI.MV_FW_CONFIG_MAGIC));
    expect(bytes.toString('latin1', 0, 4)).toBe('MVFC');
    expect(bytes.readBigUInt64LE(Number(ABI.MV_FW_CONFIG_OFF_MEMORY_BYTES))).toBe(1n << 40n);
    expect(bytes.readBigUInt64LE(Number(ABI.MV_FW_CONFIG_OFF_PRE_ACCEPT_BYTES))).toBe(ABI.MV_PRE_ACCEPT_ALL);
    expect(bytes.readBigUInt64LE(Number(ABI.MV_FW_CONFIG_OFF_SEED))).toBe((1n << 64n) - 1n);
    expect(bytes.readUInt32LE(Number(ABI.MV_FW_CONFIG_OFF_ACCEPT_MODE))).toBe(Number(ABI.MV_ACCEPT_MODE_EAGER));
    expect(bytes.readUInt32LE(Number(ABI.MV_FW_CONFIG_OFF_ACCEPT_UNIT))).toBe(4096);
    expect(bytes.readUInt32LE(Number(ABI.MV_FW_CONFIG_OFF_PLATFORM_HINT))).toBe(Number(ABI.MV_PLATFORM_SNP));
    expect(bytes.readBigUInt64LE(Number(ABI.MV_FW_CONFIG_OFF_GUEST_IMAGE_ENTRY))).toBe(0x340000n);
  });

  it('decodes a boot-params E820 table', () => {
    const b = Buffer.alloc(Number(ABI.MV_BOOT_PARAMS_BYTES));
    b.writeUInt32LE(Number(ABI.MV_BOOT_PARAMS_MAGIC), 0);
    b.writeUInt32LE(2, Number(ABI.MV_BOOT_PARAMS_OFF_E820_COUNT));
    const e = Number(ABI.MV_BOOT_PARAMS_OFF_E820);
    b.writeBigUInt64LE(0n, e); b.writeBigUInt64LE(0x200000n, e + 8); b.writeUInt32LE(1, e + 16);
    b.writeBigUInt64LE(0x200000n, e + 24); b.writeBigUInt64LE(0x200000n, e + 32); b.writeUInt32LE(15, e + 40);
    const v = decodeBootParams(b);
    expect(v.magicOk).toBe(true);
    expect(v.e820).toEqual([{ addr: 0n, size: 0x200000n, type: 1 }, { addr: 0x200000n, size: 0x200000n, type: 15 }]);
  });
});
