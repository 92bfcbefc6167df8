// Writes an ElfImage back out as an ELF64 x86-64 executable (header, one PT_LOAD per segment,
// then the segments' bytes page-aligned), so a test can give `--firmware` an image it made from
// ours: more segments, other addresses.
import type { ElfImage } from '../../src/boot/elf.js';

const EHDR = 64;
const PHDR = 56;
const PAGE = 0x1000;

export function writeElf(image: ElfImage): Buffer {
  const offsets: number[] = [];
  let at = PAGE;
  for (const s of image.segments) {
    // p_offset and p_vaddr congruent modulo the page (parseElf checks it against p_align).
    at += (Number(s.gpa % BigInt(PAGE)) - (at % PAGE) + PAGE) % PAGE;
    offsets.push(at);
    at += s.data.byteLength;
  }
  const b = Buffer.alloc(at);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2; b[5] = 1; b[6] = 1;  // ELFCLASS64, little-endian, EV_CURRENT
  b.writeUInt16LE(2, 16);        // ET_EXEC
  b.writeUInt16LE(62, 18);       // EM_X86_64
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(image.entry, 24);
  b.writeBigUInt64LE(BigInt(EHDR), 32);
  b.writeUInt16LE(EHDR, 52);
  b.writeUInt16LE(PHDR, 54);
  b.writeUInt16LE(image.segments.length, 56);
  image.segments.forEach((s, i) => {
    const o = EHDR + i * PHDR;
    b.writeUInt32LE(1, o);  // PT_LOAD
    b.writeUInt32LE((s.readable ? 4 : 0) | (s.writable ? 2 : 0) | (s.executable ? 1 : 0), o + 4);
    b.writeBigUInt64LE(BigInt(offsets[i]!), o + 8);
    b.writeBigUInt64LE(s.vaddr, o + 16);
    b.writeBigUInt64LE(s.gpa, o + 24);
    b.writeBigUInt64LE(BigInt(s.data.byteLength), o + 32);
    b.writeBigUInt64LE(s.memSize, o + 40);
    b.writeBigUInt64LE(BigInt(PAGE), o + 48);
    b.set(s.data, offsets[i]!);
  });
  return b;
}
