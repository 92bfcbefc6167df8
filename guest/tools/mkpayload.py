#!/usr/bin/env python3
"""Compresses the flat kernel image into the payload the decompressor links in.

Layout (struct mv_payload_header in guest/include/minivisor/boot_abi.h, little endian):
  u32 magic "MVKZ", u32 compressed_bytes, u32 image_bytes, u32 memory_bytes,
  u64 load_gpa, u64 entry_gpa, then a zlib (RFC 1950) stream of the image.
Usage: mkpayload.py KERNEL_ELF KERNEL_BIN OUT
"""
import struct
import sys
import zlib

MAGIC = 0x5A4B564D


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


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    elf, flat, out = sys.argv[1:]
    entry, lo, hi = elf_info(elf)
    image = open(flat, 'rb').read()
    if len(image) > hi - lo:
        sys.exit('mkpayload: flat image larger than its segments')
    # Level 9 and a fixed strategy: the output is deterministic for a given input.
    stream = zlib.compress(image, 9)
    header = struct.pack('<IIIIQQ', MAGIC, len(stream), len(image), hi - lo, lo, entry)
    with open(out + '.tmp', 'wb') as f:
        f.write(header + stream)
    import os
    os.replace(out + '.tmp', out)


if __name__ == '__main__':
    main()
