#!/usr/bin/env python3
"""Compresses the flat kernel image into the payload the decompressor links in.

Layout (struct mv_payload_header in guest/include/minivisor/boot_abi.h, little endian):
  u32 magic "MVL4", u32 compressed_bytes, u32 image_bytes, u32 memory_bytes,
  u64 load_gpa, u64 entry_gpa, u32 image_crc32, u32 reserved (0),
  then one LZ4 block (lz4_Block_format.md) of the image.
image_crc32 is the CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320) of the flat image.

Usage: mkpayload.py KERNEL_ELF KERNEL_BIN OUT
       mkpayload.py --raw-block IN OUT     (just the LZ4 block of IN; used by the tests)

The compressor is greedy (one candidate per 4-byte hash, 64 KiB window) and deterministic.
Before anything is written its output is decoded again here and compared with the input.
"""
import os
import struct
import sys
import zlib

MAGIC = 0x344C564D  # "MVL4"; the zlib payload was "MVKZ"
HEADER = '<IIIIQQII'
HEADER_SIZE = 0x28

MIN_MATCH = 4
LAST_LITERALS = 5   # the last 5 bytes of a block are always literals
MF_LIMIT = 12       # no match starts within the last 12 bytes
MAX_OFFSET = 0xFFFF


def _put_length(out, length):
    """The 15 + 255 + 255 + ... + (<255) extension of a token nibble that was set to 15."""
    length -= 15
    while length >= 255:
        out.append(255)
        length -= 255
    out.append(length)


def _sequence(out, literals, offset=0, match_len=0):
    lit = len(literals)
    ml = match_len - MIN_MATCH if match_len else 0
    out.append((min(lit, 15) << 4) | min(ml, 15))
    if lit >= 15:
        _put_length(out, lit)
    out += literals
    if not match_len:
        return
    out += struct.pack('<H', offset)
    if ml >= 15:
        _put_length(out, ml)


def lz4_compress(data):
    """One LZ4 block: greedy matching through a table of the last position of each 4-byte
    sequence; positions inside matches are entered too."""
    data = bytes(data)
    n = len(data)
    out = bytearray()
    last_start = n - MF_LIMIT      # a match may start at p <= n - 12 ...
    match_end_limit = n - LAST_LITERALS  # ... and must end at or before n - 5
    table = {}
    anchor = 0  # first byte not yet emitted
    p = 0
    while p <= last_start:
        key = data[p:p + 4]
        cand = table.get(key)
        table[key] = p
        if cand is None or p - cand > MAX_OFFSET:
            p += 1
            continue
        # data[cand:cand+4] == key by construction of the table: extend forward.
        length = MIN_MATCH
        limit = match_end_limit - p
        while length < limit and data[cand + length] == data[p + length]:
            length += 1
        _sequence(out, data[anchor:p], p - cand, length)
        end = p + length
        for q in range(p + 1, min(end, last_start + 1)):
            table[data[q:q + 4]] = q
        p = anchor = end
    _sequence(out, data[anchor:])
    return bytes(out)


class Lz4Error(Exception):
    pass


def lz4_decompress(block, strict=True):
    """Decodes one LZ4 block. strict also checks the end-of-block rules a compressor must obey
    (last 5 bytes literals, no match starting within the last 12 bytes)."""
    out = bytearray()
    i, n = 0, len(block)
    matches = []  # (start, end) in the output

    def length(nibble):
        nonlocal i
        if nibble != 15:
            return nibble
        total = 15
        while True:
            if i >= n:
                raise Lz4Error('truncated length')
            b = block[i]
            i += 1
            total += b
            if b != 255:
                return total

    while True:
        if i >= n:
            raise Lz4Error('truncated token')
        token = block[i]
        i += 1
        lit = length(token >> 4)
        if i + lit > n:
            raise Lz4Error('truncated literals')
        out += block[i:i + lit]
        i += lit
        if i == n:
            break
        if i + 2 > n:
            raise Lz4Error('truncated offset')
        offset = block[i] | block[i + 1] << 8
        i += 2
        if offset == 0 or offset > len(out):
            raise Lz4Error(f'bad offset {offset} at output {len(out)}')
        ml = length(token & 15) + MIN_MATCH
        start = len(out)
        for _ in range(ml):
            out.append(out[-offset])
        matches.append((start, len(out)))
    if strict:
        total = len(out)
        for start, end in matches:
            if start > total - MF_LIMIT or end > total - LAST_LITERALS:
                raise Lz4Error(f'match [{start}, {end}) breaks the end-of-block rules ({total} bytes)')
    return bytes(out)


def compress_checked(data):
    block = lz4_compress(data)
    try:
        back = lz4_decompress(block)
    except Lz4Error as e:
        sys.exit(f'mkpayload: LZ4 self-check failed: {e}')
    if back != data or zlib.crc32(back) != zlib.crc32(data):
        sys.exit('mkpayload: LZ4 self-check failed: output does not round-trip')
    return block


def elf_info(path):
    """Entry point and the [lowest vaddr, highest vaddr+memsz) of the PT_LOAD segments."""
    data = open(path, 'rb').read()
    if data[:4] != b'\x7fELF' or data[4] != 2:
        sys.exit(f'mkpayload: {path} is not an ELF64 file')
    entry, phoff = struct.unpack_from('<QQ', data, 0x18)
    phentsize, phnum = struct.unpack_from('<HH', data, 0x36)
    lo, hi = None, None
    for i in range(phnum):
        p_type, _flags, _off, vaddr, _paddr, _filesz, memsz = struct.unpack_from('<IIQQQQQ', data, phoff + i * phentsize)
        if p_type == 1 and memsz:
            lo = vaddr if lo is None else min(lo, vaddr)
            hi = vaddr + memsz if hi is None else max(hi, vaddr + memsz)
    if lo is None:
        sys.exit(f'mkpayload: {path} has no PT_LOAD segment')
    return entry, lo, hi


def write_atomically(path, data):
    with open(path + '.tmp', 'wb') as f:
        f.write(data)
    os.replace(path + '.tmp', path)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == '--raw-block':
        write_atomically(sys.argv[3], compress_checked(open(sys.argv[2], 'rb').read()))
        return
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    elf, flat, out = sys.argv[1:]
    entry, lo, hi = elf_info(elf)
    image = open(flat, 'rb').read()
    if len(image) > hi - lo:
        sys.exit('mkpayload: flat image larger than its segments')
    block = compress_checked(image)
    if len(block) > 0xFFFFFFFF or len(image) > 0xFFFFFFFF or hi - lo > 0xFFFFFFFF:
        sys.exit('mkpayload: kernel too large for the 32-bit header fields')
    header = struct.pack(HEADER, MAGIC, len(block), len(image), hi - lo, lo, entry, zlib.crc32(image), 0)
    assert len(header) == HEADER_SIZE
    write_atomically(out, header + block)


if __name__ == '__main__':
    main()
