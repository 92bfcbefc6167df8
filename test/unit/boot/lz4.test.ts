// The kernel payload compression: guest/tools/mkpayload.py (greedy LZ4 block compressor), the
// host decoder src/boot/lz4.ts, and the guest decoder guest/decompressor/lz4.c compiled for the
// host with a small harness (under ASan/UBSan when the compiler has them).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32, decodeLz4Block, Lz4Error, LZ4_C_ERROR, type Lz4DecodeOptions, type Lz4ErrorCode } from '../../../src/boot/lz4.js';

const root = join(import.meta.dirname, '../../..');
const MKPAYLOAD = join(root, 'guest/tools/mkpayload.py');
const KERNEL_ELF = join(root, 'guest/build/kernel.elf');
const KERNEL_BIN = join(root, 'guest/build/kernel.bin');
const BOOT_ABI = join(root, 'guest/include/minivisor/boot_abi.h');
const OLD_ZLIB_MAGIC = 0x5a4b564d; // "MVKZ"

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'minivisor-lz4-')); });
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  corruptedCache = undefined;
});

/** mulberry32: a fixed-seed byte stream for the test inputs and the mutations. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function randomBytes(n: number, seed: number): Buffer {
  const r = prng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

function python(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('python3', args, { encoding: 'utf8', cwd: root });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs `mkpayload.py --raw-block` on data and returns the LZ4 block it wrote. */
function compress(name: string, data: Uint8Array): Buffer {
  const input = join(dir, `${name}.bin`), output = join(dir, `${name}.lz4`);
  writeFileSync(input, data);
  const r = python([MKPAYLOAD, '--raw-block', input, output]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return readFileSync(output);
}

function abiDefine(name: string): number {
  const m = new RegExp(`^#define\\s+${name}\\s+(0x[0-9a-f]+)\\s*$`, 'm').exec(readFileSync(BOOT_ABI, 'utf8'));
  if (!m) throw new Error(`${name} not in boot_abi.h`);
  return Number(m[1]);
}

function decodeError(block: Uint8Array, capacity: number, options?: Lz4DecodeOptions): Lz4ErrorCode | undefined {
  try {
    decodeLz4Block(block, capacity, options);
    return undefined;
  } catch (err) {
    if (err instanceof Lz4Error) return err.code;
    throw err;
  }
}

const textish = Buffer.from(Array.from({ length: 4000 }, (_, i) => `line ${i % 97}: the quick brown fox ${i * 7919 % 1000}\n`).join(''));
const farRepeat = (() => {
  // A repeat 70 000 bytes back is outside the 64 KiB window: it must come out as literals.
  const head = randomBytes(70_000, 7);
  return Buffer.concat([head, head.subarray(0, 5000), randomBytes(100, 8)]);
})();
const INPUTS: Array<[string, Buffer]> = [
  ['empty', Buffer.alloc(0)],
  ['one-byte', Buffer.from('x')],
  ['twelve-bytes', Buffer.from('aaaaaaaaaaaa')],
  ['thirteen-bytes', Buffer.from('aaaaaaaaaaaaa')],
  ['zeros-256k', Buffer.alloc(256 * 1024)],
  ['pattern-300k', Buffer.from('abc'.repeat(100_000))],
  ['random-100k', randomBytes(100_000, 1)],
  ['text', textish],
  ['far-repeat', farRepeat],
];
const blocks: Array<[string, Buffer, Buffer]> = []; // name, input, block

// Malformed blocks: [name, bytes, capacity, expected error].
const a = 0x61;
const MALFORMED: Array<[string, number[], number, Lz4ErrorCode]> = [
  ['empty input', [], 16, 'truncated-token'],
  ['block ends after a match', [0x10, a, 1, 0], 16, 'truncated-token'],
  ['literal length extension missing', [0xf0], 64, 'truncated-literal-length'],
  ['literal length extension cut after 255', [0xf0, 255], 512, 'truncated-literal-length'],
  ['fewer literals than announced', [0x30, a, a], 16, 'truncated-literals'],
  ['extended literal count past the input', [0xf0, 0, ...Array(14).fill(a)], 64, 'truncated-literals'],
  ['one offset byte', [0x10, a, 1], 16, 'truncated-offset'],
  ['offset zero', [0x10, a, 0, 0, 0x00], 16, 'offset-zero'],
  ['offset before the output start', [0x10, a, 2, 0, 0x00], 16, 'offset-beyond-output'],
  ['offset 0xffff with one byte of output', [0x10, a, 0xff, 0xff, 0x00], 16, 'offset-beyond-output'],
  ['match length extension missing', [0x1f, a, 1, 0], 64, 'truncated-match-length'],
  ['match length extension cut after 255', [0x1f, a, 1, 0, 255], 1024, 'truncated-match-length'],
  ['literals past the output buffer', [0x50, a, a, a, a, a], 4, 'literals-overflow'],
  ['match past the output buffer', [0x14, a, 1, 0, 0x00], 8, 'match-overflow'],
  ['long match past the output buffer', [0x1f, a, 1, 0, 255, 255, 0, 0x00], 500, 'match-overflow'],
];

describe('LZ4 block decoder (host)', () => {
  it('decodes hand-made blocks, overlapping matches and length extensions included', () => {
    expect(decodeLz4Block(Uint8Array.of(0x00), 0)).toEqual(new Uint8Array(0));
    // "a", then offset 1 match of 4 + 15 + 255 + 1 = 275: 276 'a's, then 5 literals.
    const block = Uint8Array.of(0x1f, a, 1, 0, 255, 1, 0x50, ...Buffer.from('tail!'));
    const out = decodeLz4Block(block, 1000);
    expect(Buffer.from(out).toString()).toBe('a'.repeat(276) + 'tail!');
    // Offset 3 over "abc": a period-3 overlap.
    expect(Buffer.from(decodeLz4Block(Uint8Array.of(0x35, a, a + 1, a + 2, 3, 0, 0x00), 64)).toString()).toBe('abc'.repeat(4));
    // Exactly full output is fine.
    expect(decodeLz4Block(Uint8Array.of(0x14, a, 1, 0, 0x00), 9)).toHaveLength(9);
  });

  it('strict: the last match must end at least 5 bytes before the end of the block (lz4_Block_format.md, "the last 5 bytes are always literals")', () => {
    // "a", a match of 12 at offset 1 (starting 16 bytes before the end, so the 12-byte rule holds), then 4 or 5 literals.
    const withTail = (n: number) => Uint8Array.of(0x18, a, 1, 0, n << 4, ...Array(n).fill(a + 1));
    expect(decodeLz4Block(withTail(4), 64)).toHaveLength(17);
    expect(decodeError(withTail(4), 64, { strict: true })).toBe('end-of-block-rules');
    expect(decodeLz4Block(withTail(5), 64, { strict: true })).toHaveLength(18);
  });

  it.each(MALFORMED)('rejects %s', (_name, bytes, capacity, code) => {
    expect(decodeError(Uint8Array.from(bytes), capacity)).toBe(code);
  });

  it('computes the IEEE CRC-32', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    const data = randomBytes(10_000, 3);
    expect(crc32(data.subarray(5000), crc32(data.subarray(0, 5000)))).toBe(crc32(data));
    if (typeof (zlib as { crc32?: unknown }).crc32 === 'function') expect(crc32(data)).toBe(zlib.crc32(data));
  });
});

describe('mkpayload.py LZ4 compressor', () => {
  const kernelInputs = existsSync(KERNEL_BIN) ? [['kernel.bin', readFileSync(KERNEL_BIN)] as [string, Buffer]] : [];

  it.each([...INPUTS, ...kernelInputs])('round-trips %s and obeys the end-of-block rules', (name, data) => {
    const block = compress(name, data);
    blocks.push([name, data, block]);
    const back = decodeLz4Block(block, data.length, { strict: true });
    expect(Buffer.compare(Buffer.from(back), data)).toBe(0);
    // Worst case (incompressible): one token and 1 + n/255 length bytes beyond the data.
    expect(block.length).toBeLessThanOrEqual(data.length + Math.ceil(data.length / 255) + 16);
    if (name === 'zeros-256k' || name === 'pattern-300k') expect(block.length).toBeLessThan(data.length / 100);
    if (data.length < 13) expect(block[0]! & 15).toBe(0); // literals only
  });

  it('writes the kernel payload: "MVL4" header with sizes and CRC-32, then the block', () => {
    if (!existsSync(KERNEL_ELF) || !existsSync(KERNEL_BIN)) {
      console.warn('skipped: guest/build/kernel.elf not built (make -C guest)');
      return;
    }
    const out = join(dir, 'kernel.mvkz');
    const r = python([MKPAYLOAD, KERNEL_ELF, KERNEL_BIN, out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const p = readFileSync(out), image = readFileSync(KERNEL_BIN);
    const headerSize = abiDefine('MV_PAYLOAD_HEADER_SIZE');
    expect(headerSize).toBe(0x28);
    expect(p.subarray(0, 4).toString('latin1')).toBe('MVL4');
    expect(p.readUInt32LE(0)).toBe(abiDefine('MV_PAYLOAD_MAGIC'));
    expect(p.readUInt32LE(0)).not.toBe(OLD_ZLIB_MAGIC); // a stale zlib payload is rejected
    const compressed = p.readUInt32LE(4);
    expect(p.length).toBe(headerSize + compressed);
    expect(p.readUInt32LE(8)).toBe(image.length);
    expect(p.readUInt32LE(12)).toBeGreaterThanOrEqual(image.length);
    expect(p.readBigUInt64LE(16)).toBe(0x1000000n);
    expect(p.readUInt32LE(32)).toBe(crc32(image));
    expect(p.readUInt32LE(36)).toBe(0);
    const back = decodeLz4Block(p.subarray(headerSize), p.readUInt32LE(8), { strict: true });
    expect(Buffer.compare(Buffer.from(back), image)).toBe(0);
    // Deterministic: same input, same bytes.
    expect(python([MKPAYLOAD, KERNEL_ELF, KERNEL_BIN, out + '.2']).status).toBe(0);
    expect(readFileSync(out + '.2').equals(p)).toBe(true);
  });

  it('fails the build when its own output does not decode back to the input', () => {
    const tools = join(root, 'guest/tools');
    const sabotage = (patch: string, data = 'b"abcdabcd" * 8 + b"0123456789"') => python(['-c', [
      'import sys', `sys.path.insert(0, ${JSON.stringify(tools)})`, 'import mkpayload as m',
      'real = m.lz4_compress', patch, `m.compress_checked(${data})`,
    ].join('\n')]);
    // One flipped literal in the last sequence: decodes, but to different bytes.
    const flipped = sabotage('m.lz4_compress = lambda d: real(d)[:-1] + bytes([real(d)[-1] ^ 1])');
    expect(flipped.status).not.toBe(0);
    expect(flipped.stderr).toMatch(/self-check failed: output does not round-trip/);
    // Truncated block.
    const cut = sabotage('m.lz4_compress = lambda d: real(d)[:-3]');
    expect(cut.status).not.toBe(0);
    expect(cut.stderr).toMatch(/self-check failed: truncated literals/);
    // "abcd" + (offset 4, length 4) + empty last sequence: round-trips, but the match ends the
    // block, against the end-of-block rules.
    const rules = sabotage('m.lz4_compress = lambda d: bytes([0x40]) + b"abcd" + bytes([4, 0, 0x00])', 'b"abcdabcd"');
    expect(rules.status).not.toBe(0);
    expect(rules.stderr).toMatch(/self-check failed: match \[4, 8\) breaks the end-of-block rules/);
    // The unsabotaged compressor passes on the same inputs.
    expect(sabotage('pass').status).toBe(0);
    expect(sabotage('pass', 'b"abcdabcd"').status).toBe(0);
  });
});

/** Blocks derived from the good ones: truncated, a byte changed, a byte inserted. */
function mutations(count: number): Array<[Buffer, number]> {
  const r = prng(42);
  const pick = (n: number) => Math.floor(r() * n);
  const sources = blocks.filter(([, data]) => data.length <= 300_000);
  const out: Array<[Buffer, number]> = [];
  for (let i = 0; i < count; i++) {
    const [, data, block] = sources[i % sources.length]!;
    const b = Buffer.from(block);
    let m: Buffer;
    switch (i % 4) {
      case 0: m = b.subarray(0, pick(b.length + 1)); break;
      case 1: if (b.length) b[pick(b.length)] = pick(256); m = b; break;
      case 2: { const at = pick(b.length + 1); m = Buffer.concat([b.subarray(0, at), Buffer.of(pick(256)), b.subarray(at)]); break; }
      default: if (b.length) b[pick(Math.min(b.length, 8))] = 0xff; m = b; break; // tokens near the start
    }
    // Capacity: exact, a little short, or generous.
    const capacity = [data.length, Math.max(0, data.length - 1 - pick(16)), data.length + 1024][i % 3]!;
    out.push([m, capacity]);
  }
  return out;
}

/** What the host decoder made of a block: the output's length and CRC-32, or what it threw. */
interface Decoded { block: Buffer; capacity: number; length?: number; crc?: number; error?: unknown }
let corruptedCache: Decoded[] | undefined;
/**
 * mutations(3000), each decoded once by the host decoder: both the host check and the comparison
 * with lz4.c read this, instead of decoding the 3000 blocks twice.
 */
function corrupted(): Decoded[] {
  corruptedCache ??= mutations(3000).map(([block, capacity]) => decode(block, capacity));
  return corruptedCache;
}

function decode(block: Buffer, capacity: number): Decoded {
  try {
    const out = decodeLz4Block(block, capacity);
    return { block, capacity, length: out.length, crc: crc32(out) };
  } catch (error) {
    return { block, capacity, error };
  }
}

describe('LZ4 block decoder on corrupted blocks (host)', () => {
  it('either decodes within capacity or throws an Lz4Error, never anything else', () => {
    expect(blocks.length).toBeGreaterThan(5);
    let rejected = 0;
    for (const { capacity, length, error } of corrupted()) {
      if (length !== undefined) expect(length).toBeLessThanOrEqual(capacity);
      else {
        expect(error).toBeInstanceOf(Lz4Error);
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(100);
  });
});

const HARNESS = String.raw`
/* Host harness for guest/decompressor/lz4.c. Reads records (u32 in_len, u32 out_cap, bytes)
 * from argv[1]; each input and output lives in its own exactly-sized heap block so ASan sees
 * any access outside. Prints "rc out_len crc32" per record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lz4.h"

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	FILE *f = fopen(argv[1], "rb");
	if (!f)
		return 2;
	u32 hdr[2];
	while (fread(hdr, sizeof(hdr), 1, f) == 1) {
		u8 *in = malloc(hdr[0] ? hdr[0] : 1), *out = malloc(hdr[1] ? hdr[1] : 1);
		if (!in || !out || (hdr[0] && fread(in, hdr[0], 1, f) != 1))
			return 2;
		u64 got = 12345;
		int rc = lz4_decompress_block(in, hdr[0], out, hdr[1], &got);
		if (got > hdr[1])
			return 3;
		printf("%d %llu %08x\n", rc, (unsigned long long)got, mv_crc32(0, out, got));
		free(in);
		free(out);
	}
	printf("crc %08x\n", mv_crc32(0, (const u8 *)"123456789", 9));
	printf("null %d\n", lz4_decompress_block(NULL, 1, NULL, 0, NULL));
	return 0;
}
`;

function gccHarness(): string | undefined {
  if (spawnSync('gcc', ['--version']).status !== 0) return undefined;
  const src = join(dir, 'harness.c'), exe = join(dir, 'harness');
  writeFileSync(src, HARNESS);
  const base = ['-std=gnu11', '-O1', '-g', '-Wall', '-Wextra', '-Werror', `-I${join(root, 'guest/include')}`,
    `-I${join(root, 'guest/decompressor')}`, src, join(root, 'guest/decompressor/lz4.c'), '-o', exe];
  const sanitized = spawnSync('gcc', ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', ...base], { encoding: 'utf8' });
  if (sanitized.status === 0) return exe;
  const plain = spawnSync('gcc', base, { encoding: 'utf8' });
  if (plain.status !== 0) throw new Error(`gcc could not build the lz4.c harness:\n${plain.stderr}`);
  console.warn('lz4.c harness built without ASan/UBSan (the compiler lacks them)');
  return exe;
}

/**
 * Good blocks at the edges of lz4.c's fixed-size copies, each in an exactly sized buffer so that
 * ASan sees a copy one byte too long: a match of offset >= 8 whose 8-byte steps would end past the
 * output (9 bytes, 5 before its end: the slow path must take it), and 1 literal with exactly 15
 * input bytes after the token (the 16-byte literal copy would read one past the input).
 */
const EDGE_BLOCKS: Array<[string, number[], number]> = [
  ['match near the end', [0xa5, ...Buffer.from('ABCDEFGHIJ'), 8, 0, 0x50, ...Buffer.from('KLMNO')], 24],
  ['literal near the end of the input', [0x14, a, 1, 0, 0xb0, ...Buffer.from('KLMNOPQRSTU')], 20],
];

const hasGcc = spawnSync('gcc', ['--version']).status === 0;
describe.skipIf(!hasGcc)('guest/decompressor/lz4.c on the host (gcc harness)', () => {
  if (!hasGcc) console.warn('skipped: gcc not found, guest/decompressor/lz4.c not run on the host');

  it('agrees with the host decoder on good, malformed and corrupted blocks', () => {
    const exe = gccHarness()!;
    const cases: Array<[Buffer, number]> = [
      ...blocks.map(([, data, block]) => [block, data.length] as [Buffer, number]),
      ...MALFORMED.map(([, bytes, capacity]) => [Buffer.from(bytes), capacity] as [Buffer, number]),
      [Buffer.of(0x00), 0],
      ...EDGE_BLOCKS.map(([, bytes, capacity]) => [Buffer.from(bytes), capacity] as [Buffer, number]),
    ];
    const decoded = corrupted();
    cases.push(...decoded.map(({ block, capacity }) => [block, capacity] as [Buffer, number]));
    const records = cases.map(([b, cap]) => {
      const h = Buffer.alloc(8);
      h.writeUInt32LE(b.length, 0);
      h.writeUInt32LE(cap, 4);
      return Buffer.concat([h, b]);
    });
    const file = join(dir, 'cases.bin');
    writeFileSync(file, Buffer.concat(records));
    const run = spawnSync(exe, [file], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines.slice(-2)).toEqual(['crc cbf43926', 'null -11']);
    expect(lines).toHaveLength(cases.length + 2);
    const seen = new Set<number>();
    const firstCorrupted = cases.length - decoded.length;
    cases.forEach(([block, capacity], i) => {
      const [rc, len, crc] = lines[i]!.split(' ');
      const { length, crc: wantCrc, error } = i >= firstCorrupted ? decoded[i - firstCorrupted]! : decode(block, capacity);
      let want: string;
      if (length !== undefined) want = `0 ${length} ${wantCrc!.toString(16).padStart(8, '0')}`;
      else {
        if (!(error instanceof Lz4Error) || error.code === 'end-of-block-rules') throw error;
        want = String(LZ4_C_ERROR[error.code]);
      }
      seen.add(Number(rc));
      expect(rc === '0' ? `${rc} ${len} ${crc}` : rc, `case ${i}`).toBe(want);
    });
    // Every error code but length overflow (needs more than 2^56 input bytes) was produced.
    expect([...seen].sort((x, y) => y - x)).toEqual([0, -1, -2, -3, -4, -5, -6, -7, -8, -9]);
    // The good blocks decode to their inputs in C too.
    blocks.forEach(([, data], i) => expect(lines[i]).toBe(`0 ${data.length} ${crc32(data).toString(16).padStart(8, '0')}`));
  });
});
