// A strict ELF64 x86-64 parser and loader for the guest images (firmware.elf, guest-image.elf).
// Everything about the file is checked before a byte reaches guest memory; malformed input
// throws an ElfError with a stable `code` and a message naming the field, never a crash.

export type ElfErrorCode =
  | 'too-small'
  | 'bad-magic'
  | 'bad-class'
  | 'bad-endianness'
  | 'bad-version'
  | 'bad-type'
  | 'bad-machine'
  | 'bad-header-size'
  | 'bad-phdr-count'
  | 'phdrs-outside-file'
  | 'segment-outside-file'
  | 'segment-filesz-exceeds-memsz'
  | 'segment-bad-alignment'
  | 'segment-outside-ram'
  | 'segment-outside-window'
  | 'segments-overlap'
  | 'no-load-segments'
  | 'entry-not-executable';

export class ElfError extends Error {
  readonly code: ElfErrorCode;
  constructor(code: ElfErrorCode, message: string) {
    super(`invalid ELF image: ${message}`);
    this.name = 'ElfError';
    this.code = code;
  }
}

export interface ElfSegment {
  /** Guest-physical load address (p_paddr; our images are identity-linked, p_vaddr == p_paddr). */
  gpa: bigint;
  vaddr: bigint;
  /** Bytes copied from the file; the rest of memSize is zero-filled (bss). */
  data: Uint8Array;
  memSize: bigint;
  readable: boolean;
  writable: boolean;
  executable: boolean;
}

export interface ElfImage {
  entry: bigint;
  segments: ElfSegment[];
}

export interface ElfLimits {
  /** The guest-physical space the machine backs: every segment must end at or below it. */
  physicalBytes: bigint;
  /** Optional ABI windows [start, end): each segment must lie inside one (e.g. layout.FIRMWARE_LOAD). */
  windows?: ReadonlyArray<{ start: bigint; end: bigint }>;
}

const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const MAX_PHDRS = 64;
const PT_LOAD = 1;
const ET_EXEC = 2;
const EM_X86_64 = 62;
const PF_X = 1, PF_W = 2, PF_R = 4;

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/** Parses and validates `bytes` as an ELF64 little-endian x86-64 executable. */
export function parseElf(bytes: Uint8Array, limits: ElfLimits): ElfImage {
  if (bytes.byteLength < EHDR_SIZE) throw new ElfError('too-small', `${bytes.byteLength} bytes is smaller than the 64-byte ELF header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, false) !== 0x7f454c46) throw new ElfError('bad-magic', 'missing \\x7fELF magic');
  if (bytes[4] !== 2) throw new ElfError('bad-class', `EI_CLASS ${bytes[4]} is not ELFCLASS64 (2)`);
  if (bytes[5] !== 1) throw new ElfError('bad-endianness', `EI_DATA ${bytes[5]} is not little-endian (1)`);
  if (bytes[6] !== 1 || view.getUint32(20, true) !== 1) throw new ElfError('bad-version', 'EI_VERSION/e_version is not 1');
  const type = view.getUint16(16, true);
  if (type !== ET_EXEC) throw new ElfError('bad-type', `e_type ${type} is not ET_EXEC (2): guest images are linked at fixed addresses`);
  const machine = view.getUint16(18, true);
  if (machine !== EM_X86_64) throw new ElfError('bad-machine', `e_machine ${machine} is not EM_X86_64 (62)`);
  const entry = view.getBigUint64(24, true);
  const phoff = view.getBigUint64(32, true);
  const ehsize = view.getUint16(52, true);
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);
  if (ehsize !== EHDR_SIZE || phentsize !== PHDR_SIZE) {
    throw new ElfError('bad-header-size', `e_ehsize ${ehsize} / e_phentsize ${phentsize}, expected 64 / 56`);
  }
  if (phnum === 0 || phnum > MAX_PHDRS) throw new ElfError('bad-phdr-count', `e_phnum ${phnum} is not within 1..${MAX_PHDRS}`);
  if (phoff + BigInt(phnum * PHDR_SIZE) > BigInt(bytes.byteLength)) {
    throw new ElfError('phdrs-outside-file', `program headers at ${hex(phoff)} (${phnum} x ${PHDR_SIZE}) run past the end of the ${bytes.byteLength}-byte file`);
  }

  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = Number(phoff) + i * PHDR_SIZE;
    if (view.getUint32(o, true) !== PT_LOAD) continue;
    const flags = view.getUint32(o + 4, true);
    const offset = view.getBigUint64(o + 8, true);
    const vaddr = view.getBigUint64(o + 16, true);
    const paddr = view.getBigUint64(o + 24, true);
    const fileSize = view.getBigUint64(o + 32, true);
    const memSize = view.getBigUint64(o + 40, true);
    const align = view.getBigUint64(o + 48, true);
    const name = `PT_LOAD #${i} at ${hex(paddr)}`;
    if (fileSize > memSize) throw new ElfError('segment-filesz-exceeds-memsz', `${name}: p_filesz ${hex(fileSize)} > p_memsz ${hex(memSize)}`);
    if (offset + fileSize > BigInt(bytes.byteLength)) {
      throw new ElfError('segment-outside-file', `${name}: file range ${hex(offset)}+${hex(fileSize)} runs past the end of the ${bytes.byteLength}-byte file`);
    }
    if (align > 1n && ((align & (align - 1n)) !== 0n || (vaddr - offset) % align !== 0n)) {
      throw new ElfError('segment-bad-alignment', `${name}: p_align ${hex(align)} is not a power of two congruent with p_offset/p_vaddr`);
    }
    if (memSize === 0n) continue;
    const end = paddr + memSize;
    if (end > limits.physicalBytes) {
      throw new ElfError('segment-outside-ram', `${name}: [${hex(paddr)}, ${hex(end)}) is outside guest memory (${hex(limits.physicalBytes)} bytes)`);
    }
    if (limits.windows && !limits.windows.some((w) => paddr >= w.start && end <= w.end)) {
      const list = limits.windows.map((w) => `[${hex(w.start)}, ${hex(w.end)})`).join(' or ');
      throw new ElfError('segment-outside-window', `${name}: [${hex(paddr)}, ${hex(end)}) is outside the ABI window ${list}`);
    }
    const start = Number(offset); // within the file (checked above), so exact as a number
    segments.push({
      gpa: paddr, vaddr, memSize,
      data: bytes.subarray(start, start + Number(fileSize)),
      readable: (flags & PF_R) !== 0, writable: (flags & PF_W) !== 0, executable: (flags & PF_X) !== 0,
    });
  }
  if (segments.length === 0) throw new ElfError('no-load-segments', 'no PT_LOAD segment with a non-zero size');

  const sorted = [...segments].sort((a, b) => (a.gpa < b.gpa ? -1 : a.gpa > b.gpa ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!, cur = sorted[i]!;
    if (cur.gpa < prev.gpa + prev.memSize) {
      throw new ElfError('segments-overlap', `segments at ${hex(prev.gpa)} (+${hex(prev.memSize)}) and ${hex(cur.gpa)} overlap`);
    }
  }
  const home = segments.find((s) => entry >= s.vaddr && entry < s.vaddr + s.memSize);
  if (!home || !home.executable) throw new ElfError('entry-not-executable', `entry point ${hex(entry)} is not inside an executable PT_LOAD segment`);
  return { entry, segments };
}

/** What loadElf needs from guest memory (GuestMemory satisfies it). */
export interface LoadTarget {
  write(gpa: bigint, data: Uint8Array): void;
  fill(gpa: bigint, length: bigint, byte?: number): void;
}

/** Copies every segment to its GPA and zero-fills its bss. Returns the image for chaining. */
export function loadElf(memory: LoadTarget, image: ElfImage): ElfImage {
  for (const s of image.segments) {
    if (s.data.byteLength) memory.write(s.gpa, s.data);
    const bss = s.memSize - BigInt(s.data.byteLength);
    if (bss > 0n) memory.fill(s.gpa + BigInt(s.data.byteLength), bss, 0);
  }
  return image;
}
