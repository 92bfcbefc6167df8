// The SNP memory-encryption model (src/platform/snp/memory-encryption.ts): AES-128-XTS per 4 KiB
// page with the page's address as the tweak. Its memo of each page's last plaintext/ciphertext pair
// must give exactly what a fresh cipher gives, whatever was asked before.
import { createCipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryEncryption } from '../../../src/platform/snp/memory-encryption.js';

const PAGE = 0x1000;
const page = (byte: number) => Buffer.alloc(PAGE, byte);

describe('MemoryEncryption', () => {
  it('gives a fresh instance\'s answer for every page and content, asked in any order and again', () => {
    const remembering = new MemoryEncryption('asid 1 seed 0');
    const cases: [bigint, Buffer][] = [[0x1000n, page(1)], [0x2000n, page(1)], [0x1000n, page(2)], [0x1000n, page(1)], [0x2000n, page(1)], [0x1234n, page(1)]];
    for (const [spa, plaintext] of [...cases, ...cases]) {
      const expected = Buffer.from(new MemoryEncryption('asid 1 seed 0').encryptPage(spa, plaintext));
      expect(Buffer.from(remembering.encryptPage(spa, plaintext)).equals(expected)).toBe(true);
      expect(Buffer.from(remembering.decryptPage(spa, expected)).equals(plaintext)).toBe(true);
    }
  });

  it('is AES-128-XTS with the page address as the tweak: equal plaintext differs by address, and by VM', () => {
    const e = new MemoryEncryption('asid 1 seed 0');
    const at1 = Buffer.from(e.encryptPage(0x1000n, page(7)));
    expect(at1.equals(e.encryptPage(0x2000n, page(7)) as Uint8Array)).toBe(false);
    expect(at1.equals(new MemoryEncryption('asid 2 seed 0').encryptPage(0x1000n, page(7)) as Uint8Array)).toBe(false);
    // Not the identity and not a keyless transform: a cipher under some other key gives other bytes.
    const tweak = Buffer.alloc(16);
    tweak.writeBigUInt64LE(0x1000n);
    const other = createCipheriv('aes-128-xts', Buffer.alloc(32, 1).fill(2, 16), tweak);
    expect(at1.equals(Buffer.concat([other.update(page(7)), other.final()]))).toBe(false);
    expect(at1.equals(page(7))).toBe(false);
  });

  it('keeps none of the caller\'s buffers: changing one after a call does not change a later answer', () => {
    const e = new MemoryEncryption('asid 1 seed 0');
    const mine = page(4);
    const c = Buffer.from(e.encryptPage(0x4000n, mine));
    mine.fill(5);
    expect(Buffer.from(e.encryptPage(0x4000n, page(4))).equals(c)).toBe(true);
    expect(Buffer.from(e.encryptPage(0x4000n, mine)).equals(c)).toBe(false);
    const theirs = Buffer.from(c);
    expect(Buffer.from(e.decryptPage(0x4000n, theirs)).equals(page(4))).toBe(true);
    theirs.fill(6);
    expect(Buffer.from(e.decryptPage(0x4000n, c)).equals(page(4))).toBe(true);
    // The very buffer of the last call, changed and passed again: the answer for its new bytes.
    const fresh = new MemoryEncryption('asid 1 seed 0');
    const again = page(7);
    e.encryptPage(0x5000n, again);
    again.fill(8);
    expect(Buffer.from(e.encryptPage(0x5000n, again))).toEqual(Buffer.from(fresh.encryptPage(0x5000n, page(8))));
    const cipher = Buffer.from(fresh.encryptPage(0x6000n, page(9)));
    e.decryptPage(0x6000n, cipher);
    cipher.fill(10);
    expect(Buffer.from(e.decryptPage(0x6000n, cipher))).toEqual(Buffer.from(fresh.decryptPage(0x6000n, Buffer.alloc(0x1000, 10))));
  });

  it('answers pages beyond the memo\'s reach, forgotten ones and zero pages alike', () => {
    const e = new MemoryEncryption('asid 1 seed 0');
    const content = (i: bigint) => (i % 2n === 0n ? page(0) : page(3));
    const fresh = (spa: bigint, plaintext: Buffer) => Buffer.from(new MemoryEncryption('asid 1 seed 0').encryptPage(spa, plaintext));
    for (let i = 0n; i < 2100n; i++) e.encryptPage(i << 12n, content(i));
    for (const i of [0n, 5n, 1099n, 2098n, 2099n, 1n << 48n]) {
      expect(fresh(i << 12n, content(i)).equals(e.encryptPage(i << 12n, content(i)) as Uint8Array)).toBe(true);
      expect(fresh(i << 12n, page(8)).equals(e.encryptPage(i << 12n, page(8)) as Uint8Array)).toBe(true);
      expect(page(0).equals(e.decryptPage(i << 12n, fresh(i << 12n, page(0))) as Uint8Array)).toBe(true);
    }
    expect(() => e.encryptPage(0n, Buffer.alloc(16))).toThrow(RangeError);
  });
});
