// A user's kernel ELF as the payload our decompressor reads (`minivisor boot --kernel ELF`): the
// header of boot_abi.h (struct mv_payload_header) followed by one LZ4 block holding the flat image.
// guest/tools/mkpayload.py makes the same payload for our own kernel at build time, compressed;
// here the block is literals only, which lz4_Block_format.md allows ("the last sequence contains
// only literals") and every LZ4 decoder accepts, so no compressor is needed and the bytes are
// trivially deterministic. The cost is room: the payload takes the image's size plus 1/255.
import { crc32 } from './lz4.js';
import { ABI } from './layout.js';
import type { ElfImage } from './elf.js';

export class KernelPayloadError extends Error {
  override name = 'KernelPayloadError';
}

/** Where a kernel's PT_LOAD segments must lie: from the load GPA, leaving room for its stack. */
export const KERNEL_LOAD_WINDOW = {
  start: ABI.MV_KERNEL_LOAD_GPA,
  end: ABI.MV_KERNEL_LOAD_GPA + ABI.MV_KERNEL_MAX_BYTES - ABI.MV_KERNEL_STACK_BYTES,
} as const;

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** One LZ4 block that is a single literal run (token 0xF0, then 15 + 255 + ... + rest, then the bytes). */
export function literalLz4Block(data: Uint8Array): Uint8Array {
  const n = data.byteLength;
  const lengthBytes: number[] = [];
  if (n >= 15) {
    let rest = n - 15;
    while (rest >= 255) { lengthBytes.push(255); rest -= 255; }
    lengthBytes.push(rest);
  }
  const out = new Uint8Array(1 + lengthBytes.length + n);
  out[0] = Math.min(n, 15) << 4;
  out.set(lengthBytes, 1);
  out.set(data, 1 + lengthBytes.length);
  return out;
}

/**
 * The payload for `kernel` (an ELF parsed with KERNEL_LOAD_WINDOW): the flat image from
 * MV_KERNEL_LOAD_GPA to the end of the last segment's file bytes, bss up to the last segment's
 * memory end, entry inside the image. The decompressor checks all of this again in the guest.
 */
export function kernelPayload(kernel: ElfImage): Uint8Array {
  const load: bigint = ABI.MV_KERNEL_LOAD_GPA;
  const segments = [...kernel.segments].sort((a, b) => (a.gpa < b.gpa ? -1 : 1));
  const lowest = segments[0];
  if (!lowest) throw new KernelPayloadError('has no PT_LOAD segment');
  if (lowest.gpa !== load) {
    throw new KernelPayloadError(`must be linked at ${hex(load)} (MV_KERNEL_LOAD_GPA), its first segment starts at ${hex(lowest.gpa)}`);
  }
  let imageEnd = load;
  let memoryEnd = load;
  for (const s of segments) {
    const fileEnd = s.gpa + BigInt(s.data.byteLength);
    if (s.data.byteLength && fileEnd > imageEnd) imageEnd = fileEnd;
    if (s.gpa + s.memSize > memoryEnd) memoryEnd = s.gpa + s.memSize;
  }
  if (kernel.entry < load || kernel.entry >= imageEnd) {
    throw new KernelPayloadError(`entry point ${hex(kernel.entry)} is not inside its loaded bytes [${hex(load)}, ${hex(imageEnd)})`);
  }
  const image = new Uint8Array(Number(imageEnd - load));
  // A bss-only segment above the last file byte lies past the image (set() refuses that offset even for no bytes).
  for (const s of segments) if (s.data.byteLength) image.set(s.data, Number(s.gpa - load));
  const block = literalLz4Block(image);
  const header = Buffer.alloc(Number(ABI.MV_PAYLOAD_HEADER_SIZE));
  header.writeUInt32LE(Number(ABI.MV_PAYLOAD_MAGIC), 0x00);
  header.writeUInt32LE(block.byteLength, 0x04);
  header.writeUInt32LE(image.byteLength, 0x08);
  header.writeUInt32LE(Number(memoryEnd - load), 0x0c);
  header.writeBigUInt64LE(load, 0x10);
  header.writeBigUInt64LE(kernel.entry, 0x18);
  header.writeUInt32LE(crc32(image), 0x20);
  header.writeUInt32LE(0, 0x24);
  const payload = new Uint8Array(header.byteLength + block.byteLength);
  payload.set(header, 0);
  payload.set(block, header.byteLength);
  return payload;
}
