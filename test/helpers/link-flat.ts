// Links an assembled snippet's ELF object in process: its .text placed at `origin`, with the
// relocations GNU as leaves against .text itself applied. This is what `ld -N -Ttext=ORIGIN` then
// `objcopy -O binary -j .text` give for such an object, without the two processes a snippet cost
// (most of a TDX or SNP guest test's time in a clean checkout, whose assembly cache is empty).
// Anything else (another section with bytes, a symbol outside .text, an unknown relocation type,
// a value that does not fit) returns undefined and the caller runs ld, so ld stays the reference.
//
// ELF-64 layouts: System V gABI ch. 4 (header, section headers, symbols, Elf64_Rela); relocation
// types and their calculations: System V AMD64 psABI §4.4 (S + A, S + A - P).

const SHT_SYMTAB = 2, SHT_RELA = 4, SHT_NOTE = 7, SHT_NOBITS = 8, SHT_REL = 9;
const SHF_ALLOC = 0x2n;
const SHN_ABS = 0xfff1;

interface Section { name: string; type: number; flags: bigint; offset: number; size: number; link: number; info: number }

/** [width in bytes, PC-relative, signed range check (else unsigned)] per psABI relocation type. */
const RELOCATIONS: Record<number, [number, boolean, boolean]> = {
  1: [8, false, false], // R_X86_64_64
  2: [4, true, true], // R_X86_64_PC32
  4: [4, true, true], // R_X86_64_PLT32: S + A - P when the symbol is in this object
  10: [4, false, false], // R_X86_64_32
  11: [4, false, true], // R_X86_64_32S
  12: [2, false, false], // R_X86_64_16
  13: [2, true, true], // R_X86_64_PC16
  14: [1, false, false], // R_X86_64_8
  15: [1, true, true], // R_X86_64_PC8
  24: [8, true, true], // R_X86_64_PC64
};

export function linkFlatText(object: Uint8Array, origin: bigint): Uint8Array | undefined {
  const elf = Buffer.from(object.buffer, object.byteOffset, object.byteLength);
  // ELFCLASS64, little-endian, ET_REL, EM_X86_64.
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1 || elf.readUInt16LE(16) !== 1 || elf.readUInt16LE(18) !== 62) return undefined;
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a), shnum = elf.readUInt16LE(0x3c), shstrndx = elf.readUInt16LE(0x3e);
  const raw = Array.from({ length: shnum }, (_, i) => {
    const at = shoff + i * shentsize;
    return {
      nameAt: elf.readUInt32LE(at), type: elf.readUInt32LE(at + 4), flags: elf.readBigUInt64LE(at + 8),
      offset: Number(elf.readBigUInt64LE(at + 0x18)), size: Number(elf.readBigUInt64LE(at + 0x20)),
      link: elf.readUInt32LE(at + 0x28), info: elf.readUInt32LE(at + 0x2c),
    };
  });
  const names = raw[shstrndx]!;
  const cString = (at: number) => elf.toString('latin1', at, elf.indexOf(0, at));
  const sections: Section[] = raw.map((s) => ({ ...s, name: cString(names.offset + s.nameAt) }));
  const textIndex = sections.findIndex((s) => s.name === '.text');
  if (textIndex < 0) return undefined;
  for (const [i, s] of sections.entries()) {
    // ld would lay out (and objcopy drop) any other loaded section; only empty ones and notes are
    // sure not to matter. Relocations of any section but .text would need ld too.
    if (i !== textIndex && (s.flags & SHF_ALLOC) !== 0n && s.type !== SHT_NOTE && s.size > 0 && s.type !== SHT_NOBITS) return undefined;
    if (s.type === SHT_REL || (s.type === SHT_RELA && s.info !== textIndex)) return undefined;
  }
  const text = sections[textIndex]!;
  const out = Buffer.from(elf.subarray(text.offset, text.offset + text.size));
  const rela = sections.find((s) => s.type === SHT_RELA && s.info === textIndex);
  if (!rela) return new Uint8Array(out);
  const symtab = sections[rela.link]!;
  if (symtab.type !== SHT_SYMTAB) return undefined;
  for (let at = rela.offset; at < rela.offset + rela.size; at += 24) {
    const place = Number(elf.readBigUInt64LE(at));
    const info = elf.readBigUInt64LE(at + 8);
    const addend = elf.readBigInt64LE(at + 16);
    const kind = RELOCATIONS[Number(info & 0xffffffffn)];
    if (!kind) return undefined;
    const sym = symtab.offset + Number(info >> 32n) * 24;
    const shndx = elf.readUInt16LE(sym + 6);
    const value = elf.readBigUInt64LE(sym + 8);
    let s: bigint;
    if (shndx === textIndex) s = origin + value;
    else if (shndx === SHN_ABS) s = value;
    else return undefined; // undefined (SHN_UNDEF), common, or in another section: ld's business
    const [width, pcRelative, signed] = kind;
    const result = s + addend - (pcRelative ? origin + BigInt(place) : 0n);
    const bits = BigInt(width * 8);
    if (width < 8) {
      const fits = signed ? result >= -(1n << (bits - 1n)) && result < 1n << (bits - 1n) : result >= 0n && result < 1n << bits;
      if (!fits) return undefined; // ld reports "relocation truncated to fit"
    }
    if (place + width > out.length) return undefined;
    let v = BigInt.asUintN(width * 8, result);
    for (let i = 0; i < width; i++, v >>= 8n) out[place + i] = Number(v & 0xffn);
  }
  return new Uint8Array(out);
}
