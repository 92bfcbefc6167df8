import { describe, expect, it } from 'vitest';
import { ElfError, loadElf, parseElf, type ElfErrorCode } from '../../../src/boot/elf.js';

interface Seg { type?: number; flags?: number; offset?: bigint; vaddr: bigint; paddr?: bigint; filesz: bigint; memsz: bigint; align?: bigint }

/** A minimal ELF64 x86-64 executable: header, program headers, then segment bytes. */
function buildElf(segs: Seg[], patch: (b: Buffer) => void = () => {}, entry = segs[0]?.vaddr ?? 0n): Buffer {
  const dataStart = 0x1000;
  const size = dataStart + segs.reduce((n, s) => n + Number(s.filesz), 0);
  const b = Buffer.alloc(size);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2; b[5] = 1; b[6] = 1;
  b.writeUInt16LE(2, 16);
  b.writeUInt16LE(62, 18);
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(entry, 24);
  b.writeBigUInt64LE(64n, 32);
  b.writeUInt16LE(64, 52);
  b.writeUInt16LE(56, 54);
  b.writeUInt16LE(segs.length, 56);
  let fileOff = dataStart;
  segs.forEach((s, i) => {
    const o = 64 + i * 56;
    const offset = s.offset ?? BigInt(fileOff);
    b.writeUInt32LE(s.type ?? 1, o);
    b.writeUInt32LE(s.flags ?? 5, o + 4);
    b.writeBigUInt64LE(offset, o + 8);
    b.writeBigUInt64LE(s.vaddr, o + 16);
    b.writeBigUInt64LE(s.paddr ?? s.vaddr, o + 24);
    b.writeBigUInt64LE(s.filesz, o + 32);
    b.writeBigUInt64LE(s.memsz, o + 40);
    b.writeBigUInt64LE(s.align ?? 0x1000n, o + 48);
    for (let k = 0; k < Number(s.filesz) && fileOff + k < size; k++) b[fileOff + k] = (i + 1) & 0xff;
    fileOff += Number(s.filesz);
  });
  patch(b);
  return b;
}

const RAM = 16n << 20n;
const text: Seg = { vaddr: 0x301000n, filesz: 0x100n, memsz: 0x100n, flags: 5 };
const data: Seg = { vaddr: 0x302000n, filesz: 0x10n, memsz: 0x300n, flags: 6, align: 0x10n };

function expectElfError(bytes: Uint8Array, code: ElfErrorCode, limits: Parameters<typeof parseElf>[1] = { physicalBytes: RAM }) {
  let caught: unknown;
  try { parseElf(bytes, limits); } catch (e) { caught = e; }
  expect(caught).toBeInstanceOf(ElfError);
  expect((caught as ElfError).code).toBe(code);
  expect((caught as ElfError).message).toMatch(/^invalid ELF image: /);
}

describe('ELF loader', () => {
  it('parses a valid image and loads it with a zero-filled bss', () => {
    const elf = buildElf([text, data], () => {}, 0x301010n);
    const image = parseElf(elf, { physicalBytes: RAM, windows: [{ start: 0x301000n, end: 0x340000n }] });
    expect(image.entry).toBe(0x301010n);
    expect(image.segments.map((s) => [s.gpa, s.data.byteLength, s.memSize, s.executable, s.writable]))
      .toEqual([[0x301000n, 0x100, 0x100n, true, false], [0x302000n, 0x10, 0x300n, false, true]]);
    const writes: [bigint, number][] = [];
    const fills: [bigint, bigint][] = [];
    loadElf({ write: (gpa, d) => writes.push([gpa, d.byteLength]), fill: (gpa, len) => fills.push([gpa, len]) }, image);
    expect(writes).toEqual([[0x301000n, 0x100], [0x302000n, 0x10]]);
    expect(fills).toEqual([[0x302010n, 0x2f0n]]);
  });

  it('ignores non-LOAD program headers', () => {
    const image = parseElf(buildElf([text, { type: 4, vaddr: 0n, filesz: 0n, memsz: 0n }]), { physicalBytes: RAM });
    expect(image.segments).toHaveLength(1);
  });

  it.each<[string, Buffer, ElfErrorCode]>([
    ['an empty file', Buffer.alloc(0), 'too-small'],
    ['a truncated header', buildElf([text]).subarray(0, 40), 'too-small'],
    ['a bad magic', buildElf([text], (b) => { b[1] = 0x45 + 1; }), 'bad-magic'],
    ['ELFCLASS32', buildElf([text], (b) => { b[4] = 1; }), 'bad-class'],
    ['big endian', buildElf([text], (b) => { b[5] = 2; }), 'bad-endianness'],
    ['a bad version', buildElf([text], (b) => { b[6] = 0; }), 'bad-version'],
    ['ET_DYN', buildElf([text], (b) => b.writeUInt16LE(3, 16)), 'bad-type'],
    ['EM_386', buildElf([text], (b) => b.writeUInt16LE(3, 18)), 'bad-machine'],
    ['a wrong phentsize', buildElf([text], (b) => b.writeUInt16LE(32, 54)), 'bad-header-size'],
    ['no program headers', buildElf([text], (b) => b.writeUInt16LE(0, 56)), 'bad-phdr-count'],
    ['program headers past the end', buildElf([text], (b) => b.writeBigUInt64LE(0xffff_ffffn, 32)), 'phdrs-outside-file'],
    ['a huge phoff', buildElf([text], (b) => b.writeBigUInt64LE(0xffff_ffff_ffff_fff0n, 32)), 'phdrs-outside-file'],
    ['file data past the end', buildElf([{ ...text, offset: 0x10000n }]), 'segment-outside-file'],
    ['filesz > memsz', buildElf([{ ...text, filesz: 0x200n, memsz: 0x100n }]), 'segment-filesz-exceeds-memsz'],
    ['a non-power-of-two alignment', buildElf([{ ...text, align: 0x3000n }]), 'segment-bad-alignment'],
    ['a segment beyond RAM', buildElf([{ ...text, vaddr: RAM - 0x80n, offset: 0x1000n, align: 0n }], () => {}, RAM - 0x80n), 'segment-outside-ram'],
    ['a segment wrapping past 2^64', buildElf([{ ...text, vaddr: 0xffff_ffff_ffff_f000n }], () => {}, 0xffff_ffff_ffff_f000n), 'segment-outside-ram'],
    ['overlapping segments', buildElf([text, { ...data, vaddr: 0x301080n, offset: 0x1080n, align: 0n }]), 'segments-overlap'],
    ['only empty segments', buildElf([{ ...text, filesz: 0n, memsz: 0n }]), 'no-load-segments'],
    ['an entry outside the segments', buildElf([text], () => {}, 0x500000n), 'entry-not-executable'],
    ['an entry in a data segment', buildElf([text, data], () => {}, 0x302004n), 'entry-not-executable'],
  ])('rejects %s', (_, bytes, code) => expectElfError(bytes, code));

  // Each bound at its edge: the last accepted value and the first rejected one (ELF-64 Object File
  // Format 1.5: e_ehsize 64, e_phentsize 56, p_filesz <= p_memsz, p_vaddr = p_offset modulo p_align).
  describe('at the edges of each bound', () => {
    const accepts = (bytes: Uint8Array, limits: Parameters<typeof parseElf>[1] = { physicalBytes: RAM }) => parseElf(bytes, limits);

    it('a 63-byte file is too small for the header', () => {
      expectElfError(buildElf([text]).subarray(0, 63), 'too-small');
      expectElfError(buildElf([text]).subarray(0, 64), 'phdrs-outside-file');
    });

    it('e_version and e_ehsize are checked on their own', () => {
      expectElfError(buildElf([text], (b) => b.writeUInt32LE(2, 20)), 'bad-version');
      expectElfError(buildElf([text], (b) => b.writeUInt16LE(52, 52)), 'bad-header-size');
    });

    it('takes 64 program headers and refuses 65', () => {
      const notes = (n: number): Seg[] => Array.from({ length: n }, () => ({ type: 4, vaddr: 0n, filesz: 0n, memsz: 0n }));
      expect(accepts(buildElf([text, ...notes(63)])).segments).toHaveLength(1);
      expectElfError(buildElf([text, ...notes(64)]), 'bad-phdr-count');
    });

    it('program headers may end at the last byte of the file, not one past it', () => {
      const moved = (shift: number) => {
        const b = buildElf([text]);
        const at = b.length - 56 + shift;
        const out = Buffer.alloc(Math.max(b.length, at + 56));
        b.copy(out);
        b.copy(out, at, 64, 64 + 56);
        out.writeBigUInt64LE(BigInt(at), 32);
        return out.subarray(0, b.length);
      };
      expect(accepts(moved(0)).segments).toHaveLength(1);
      expectElfError(moved(1), 'phdrs-outside-file');
    });

    it('p_filesz may equal p_memsz, not exceed it by one', () => {
      expect(accepts(buildElf([{ ...text, filesz: 0x100n, memsz: 0x100n }])).segments).toHaveLength(1);
      expectElfError(buildElf([{ ...text, filesz: 0x101n, memsz: 0x100n }]), 'segment-filesz-exceeds-memsz');
    });

    it('segment bytes may end at the end of the file, not one past it', () => {
      expect(accepts(buildElf([text])).segments[0]!.data.byteLength).toBe(0x100);
      expectElfError(buildElf([text], (b) => b.writeBigUInt64LE(0x1001n, 64 + 8)), 'segment-outside-file');
    });

    it('p_vaddr must be congruent with p_offset modulo p_align, whatever the power of two', () => {
      expectElfError(buildElf([{ ...text, vaddr: 0x301010n }], () => {}, 0x301010n), 'segment-bad-alignment');
      expectElfError(buildElf([{ ...text, vaddr: 0x301001n, align: 2n }], () => {}, 0x301001n), 'segment-bad-alignment');
      expect(accepts(buildElf([{ ...text, vaddr: 0x301001n, align: 1n }], () => {}, 0x301001n)).segments).toHaveLength(1);
    });

    it('a segment may end at the end of guest memory, not one byte past it', () => {
      const at = (vaddr: bigint) => buildElf([{ ...text, vaddr, align: 0n }], () => {}, vaddr);
      expect(accepts(at(RAM - 0x100n)).segments[0]!.gpa).toBe(RAM - 0x100n);
      expectElfError(at(RAM - 0xffn), 'segment-outside-ram');
    });

    it('a segment must end inside the ABI window too', () => {
      const window = { physicalBytes: RAM, windows: [{ start: 0x301000n, end: 0x301100n }] };
      expect(accepts(buildElf([text]), window).segments).toHaveLength(1);
      expectElfError(buildElf([{ ...text, memsz: 0x101n }]), 'segment-outside-window', window);
    });

    it('reports each permission bit as it is', () => {
      const [seg] = accepts(buildElf([{ ...text, flags: 1 }])).segments;
      expect([seg!.readable, seg!.writable, seg!.executable]).toEqual([false, false, true]);
    });

    it('segments may touch, not overlap by a byte, in whatever order they are listed', () => {
      const next = { ...data, vaddr: 0x301100n, offset: 0x1100n, align: 0n };
      expect(accepts(buildElf([next, { ...text, offset: 0x1000n }], () => {}, 0x301000n)).segments.map((s) => s.gpa)).toEqual([0x301100n, 0x301000n]);
      expectElfError(buildElf([text, { ...next, vaddr: 0x3010ffn }]), 'segments-overlap');
    });

    it('the entry must lie before the end of its segment', () => {
      expect(accepts(buildElf([text], () => {}, 0x3010ffn)).entry).toBe(0x3010ffn);
      expectElfError(buildElf([text], () => {}, 0x301100n), 'entry-not-executable');
    });

    it('zero-fills a one-byte bss', () => {
      const fills: [bigint, bigint][] = [];
      loadElf({ write: () => {}, fill: (gpa, len) => fills.push([gpa, len]) }, accepts(buildElf([{ ...text, memsz: 0x101n }])));
      expect(fills).toEqual([[0x301100n, 1n]]);
    });
  });

  it('enforces the ABI window', () => {
    expectElfError(buildElf([text]), 'segment-outside-window', { physicalBytes: RAM, windows: [{ start: 0x340000n, end: 0x400000n }] });
  });

  it('never throws anything but ElfError on random corruption', () => {
    const good = buildElf([text, data]);
    let seed = 12345;
    for (let i = 0; i < 2000; i++) {
      const bad = Buffer.from(good);
      for (let k = 0; k < 4; k++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        bad[seed % 0x200] = (seed >>> 8) & 0xff;
      }
      try { parseElf(bad, { physicalBytes: RAM }); } catch (e) { expect(e).toBeInstanceOf(ElfError); }
    }
  });
});
