import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ABI, ACCEPT_MODE, E820_TYPE, PLATFORM, PRE_ACCEPTED, STAGES, TEMP_RAM, INITIAL_IMAGE, FW_CONFIG_PAGE, INITIAL_IMAGE_PAST_CONFIG } from '../../../src/boot/layout.js';
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

  // These views are literals of their own, not read from ABI: a slip in one (E820 type 14 for
  // UNACCEPTED) survived every unit test, since the test helpers build their records from them too.
  it('names the header\'s E820 types, platform hints, accept modes and stages by their header values', () => {
    expect(E820_TYPE).toEqual({ ram: Number(ABI.MV_E820_RAM), reserved: Number(ABI.MV_E820_RESERVED), unaccepted: Number(ABI.MV_E820_UNACCEPTED) });
    expect(PLATFORM).toEqual({ none: Number(ABI.MV_PLATFORM_NONE), tdx: Number(ABI.MV_PLATFORM_TDX), snp: Number(ABI.MV_PLATFORM_SNP) });
    expect(ACCEPT_MODE).toEqual({ lazy: Number(ABI.MV_ACCEPT_MODE_LAZY), eager: Number(ABI.MV_ACCEPT_MODE_EAGER) });
    expect(STAGES.map((s) => ABI[`MV_STAGE_${s.toUpperCase()}` as keyof typeof ABI])).toEqual([0n, 1n, 2n]);
    expect(BigInt(STAGES.length)).toBe(ABI.MV_STAGE_COUNT);
  });

  it('keeps the pre-accepted ranges contiguous and 2 MiB aligned', () => {
    expect(TEMP_RAM.gpa + TEMP_RAM.bytes).toBe(INITIAL_IMAGE.gpa);
    expect(PRE_ACCEPTED.gpa % ABI.MV_SIZE_2M).toBe(0n);
    expect((PRE_ACCEPTED.gpa + PRE_ACCEPTED.bytes) % ABI.MV_SIZE_2M).toBe(0n);
    expect(PRE_ACCEPTED.gpa + PRE_ACCEPTED.bytes).toBe(ABI.MV_FIRMWARE_RESERVED_END);
  });

  it('splits the initial image into the config page and the rest, which the VMM measures apart', () => {
    expect(FW_CONFIG_PAGE).toEqual({ gpa: INITIAL_IMAGE.gpa, bytes: 0x1000n });
    expect(INITIAL_IMAGE_PAST_CONFIG.gpa).toBe(FW_CONFIG_PAGE.gpa + FW_CONFIG_PAGE.bytes);
    expect(INITIAL_IMAGE_PAST_CONFIG.gpa + INITIAL_IMAGE_PAST_CONFIG.bytes).toBe(INITIAL_IMAGE.gpa + INITIAL_IMAGE.bytes);
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

  // The boot params are guest memory: whatever the guest wrote there, the host reads at most the
  // table's room and never past the bytes it was given.
  describe('guest-written boot params', () => {
    const params = (count: number, entries: number, bytes = Number(ABI.MV_BOOT_PARAMS_BYTES)) => {
      const b = Buffer.alloc(bytes);
      b.writeUInt32LE(Number(ABI.MV_BOOT_PARAMS_MAGIC), 0);
      b.writeUInt32LE(count, Number(ABI.MV_BOOT_PARAMS_OFF_E820_COUNT));
      for (let i = 0; i < entries; i++) {
        const o = Number(ABI.MV_BOOT_PARAMS_OFF_E820) + i * Number(ABI.MV_E820_ENTRY_SIZE);
        if (o + 24 > bytes) break;
        b.writeBigUInt64LE(BigInt(i) << 21n, o); b.writeBigUInt64LE(0x200000n, o + 8); b.writeUInt32LE(0x10001 + i, o + 16);
      }
      return b;
    };
    const max = Number(ABI.MV_E820_MAX_ENTRIES);

    it('reads at most MV_E820_MAX_ENTRIES entries, whatever count the guest wrote', () => {
      expect(decodeBootParams(params(0xffffffff, max)).e820).toHaveLength(max);
      expect(decodeBootParams(params(max + 1, max)).e820).toHaveLength(max);
    });

    it('reads an entry ending at the end of the bytes, and none past them', () => {
      const end = (n: number) => Number(ABI.MV_BOOT_PARAMS_OFF_E820) + n * Number(ABI.MV_E820_ENTRY_SIZE) - Number(ABI.MV_E820_ENTRY_SIZE) + 24;
      expect(decodeBootParams(params(3, 3, end(2))).e820).toHaveLength(2);
      expect(decodeBootParams(params(3, 3, end(2) - 1)).e820).toHaveLength(1);
    });

    it('reads the 32-bit type whole', () => {
      expect(decodeBootParams(params(1, 1)).e820).toEqual([{ addr: 0n, size: 0x200000n, type: 0x10001 }]);
    });

    it('says whether the magic is there', () => {
      const b = params(0, 0);
      expect(decodeBootParams(b).magicOk).toBe(true);
      b[0]! ^= 1;
      expect(decodeBootParams(b).magicOk).toBe(false);
    });
  });

  it('writes the CPU table after the config for several vCPUs, and the Linux flag', () => {
    const config = { memoryBytes: 1n << 30n, preAccept: 0n, acceptMode: 'lazy', acceptUnit: 0x200000, workloadBytes: 0n, seed: 1n, guestImageEntry: 0n } as const;
    const one = Buffer.from(encodeFirmwareConfig(config));
    expect(one.byteLength).toBe(Number(ABI.MV_FW_CONFIG_SIZE));
    expect(one.readUInt32LE(Number(ABI.MV_FW_CONFIG_OFF_FLAGS))).toBe(0);
    const four = Buffer.from(encodeFirmwareConfig({ ...config, cpus: 4, linux: true }));
    expect(four.byteLength).toBe(Number(ABI.MV_CPU_TABLE_OFFSET) + 8);
    expect(four.readUInt32LE(Number(ABI.MV_CPU_TABLE_OFFSET))).toBe(Number(ABI.MV_CPU_TABLE_MAGIC));
    expect(four.readUInt32LE(Number(ABI.MV_CPU_TABLE_OFFSET) + 4)).toBe(4);
    expect(four.readUInt32LE(Number(ABI.MV_FW_CONFIG_OFF_FLAGS))).toBe(Number(ABI.MV_FW_CONFIG_FLAG_LINUX));
    // The one-vCPU page is the several-vCPU page's start, byte for byte, but for the flag.
    four.writeUInt32LE(0, Number(ABI.MV_FW_CONFIG_OFF_FLAGS));
    expect(four.subarray(0, one.byteLength)).toEqual(one);
    // Two vCPUs already need the table.
    const two = Buffer.from(encodeFirmwareConfig({ ...config, cpus: 2 }));
    expect([two.byteLength, two.readUInt32LE(Number(ABI.MV_CPU_TABLE_OFFSET) + 4)]).toEqual([Number(ABI.MV_CPU_TABLE_OFFSET) + 8, 2]);
  });
});
