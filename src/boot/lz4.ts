// LZ4 block decoder (lz4_Block_format.md) and CRC-32 for the host: checks the kernel payload
// that guest/tools/mkpayload.py builds and guest/decompressor/lz4.c decodes. Same rules and
// one error code per kind of malformed block as the C decoder (LZ4_ERR_* in lz4.h).

export type Lz4ErrorCode =
  | 'truncated-token'
  | 'truncated-literal-length'
  | 'truncated-literals'
  | 'truncated-offset'
  | 'truncated-match-length'
  | 'offset-zero'
  | 'offset-beyond-output'
  | 'literals-overflow'
  | 'match-overflow'
  | 'length-overflow'
  | 'end-of-block-rules';

/** C LZ4_ERR_* value of each code (end-of-block-rules is host-only: the strict check). */
export const LZ4_C_ERROR: Record<Exclude<Lz4ErrorCode, 'end-of-block-rules'>, number> = {
  'truncated-token': -1,
  'truncated-literal-length': -2,
  'truncated-literals': -3,
  'truncated-offset': -4,
  'truncated-match-length': -5,
  'offset-zero': -6,
  'offset-beyond-output': -7,
  'literals-overflow': -8,
  'match-overflow': -9,
  'length-overflow': -10,
};

export class Lz4Error extends Error {
  readonly code: Lz4ErrorCode;
  constructor(code: Lz4ErrorCode, message: string) {
    super(`invalid LZ4 block: ${message}`);
    this.name = 'Lz4Error';
    this.code = code;
  }
}

const MIN_MATCH = 4;
const LAST_LITERALS = 5;
const MF_LIMIT = 12;

export interface Lz4DecodeOptions {
  /** Also require the end-of-block rules a compressor must follow: the last 5 bytes are
   *  literals and no match starts within the last 12 bytes. */
  strict?: boolean;
}

/** Decodes one LZ4 block into at most `capacity` bytes; throws Lz4Error on malformed input. */
export function decodeLz4Block(block: Uint8Array, capacity: number, options: Lz4DecodeOptions = {}): Uint8Array {
  const out = new Uint8Array(capacity);
  let ip = 0;
  let op = 0;
  let lastMatchStart = -1;
  let lastMatchEnd = -1;
  const extend = (len: number, truncated: Lz4ErrorCode): number => {
    for (;;) {
      if (ip >= block.length) throw new Lz4Error(truncated, `length extension cut off at input ${ip}`);
      const b = block[ip++]!;
      len += b;
      if (len > Number.MAX_SAFE_INTEGER) throw new Lz4Error('length-overflow', `length past 2^53 at input ${ip}`);
      if (b !== 255) return len;
    }
  };
  for (;;) {
    if (ip >= block.length) throw new Lz4Error('truncated-token', `no token at input ${ip}`);
    const token = block[ip++]!;
    let lit = token >> 4;
    if (lit === 15) lit = extend(lit, 'truncated-literal-length');
    if (lit > block.length - ip) throw new Lz4Error('truncated-literals', `${lit} literals at input ${ip}, ${block.length - ip} left`);
    if (lit > capacity - op) throw new Lz4Error('literals-overflow', `${lit} literals at output ${op} exceed ${capacity}`);
    out.set(block.subarray(ip, ip + lit), op);
    ip += lit;
    op += lit;
    if (ip === block.length) break;
    if (block.length - ip < 2) throw new Lz4Error('truncated-offset', `offset cut off at input ${ip}`);
    const offset = block[ip]! | (block[ip + 1]! << 8);
    ip += 2;
    if (offset === 0) throw new Lz4Error('offset-zero', `offset 0 at input ${ip - 2}`);
    if (offset > op) throw new Lz4Error('offset-beyond-output', `offset ${offset} at output ${op}`);
    let len = token & 15;
    if (len === 15) len = extend(len, 'truncated-match-length');
    len += MIN_MATCH;
    if (len > capacity - op) throw new Lz4Error('match-overflow', `match of ${len} at output ${op} exceeds ${capacity}`);
    lastMatchStart = op;
    for (let k = 0; k < len; k++, op++) out[op] = out[op - offset]!;
    lastMatchEnd = op;
  }
  if (options.strict && lastMatchStart >= 0 && (lastMatchStart > op - MF_LIMIT || lastMatchEnd > op - LAST_LITERALS)) {
    throw new Lz4Error('end-of-block-rules', `last match [${lastMatchStart}, ${lastMatchEnd}) too close to the end (${op})`);
  }
  return out.subarray(0, op);
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): zlib.crc32, the header's image_crc32. */
export function crc32(data: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
      crcTable[i] = c >>> 0;
    }
  }
  crc = ~crc >>> 0;
  for (const b of data) crc = (crc >>> 8) ^ crcTable[(crc ^ b) & 0xff]!;
  return ~crc >>> 0;
}
