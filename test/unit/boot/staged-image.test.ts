// StagedImage: the VMM's copy of the initial image, and one staged over it (a fuzz launch's image
// with another firmware config page) that shows the pages it does not write from the one below.
import { describe, expect, it } from 'vitest';
import { StagedImage } from '../../../src/boot/staged-image.js';
import { denseBytes } from '../../../src/shared/sparse-pages.js';

const PAGE = 0x1000n;

function base(): StagedImage {
  const image = new StagedImage();
  image.write(0x1000n, new Uint8Array([1, 2, 3]));
  image.write(0x2ffen, new Uint8Array([4, 5, 6, 7])); // across two pages
  return image.seal();
}

describe('StagedImage', () => {
  it('a range is the staged pages back to back, zeros between; a sealed image gives the same bytes every time', () => {
    const image = base();
    const range = image.range(0n, 4n * PAGE);
    expect([...range.subarray(0x1000, 0x1003)]).toEqual([1, 2, 3]);
    expect([...range.subarray(0x2ffe, 0x3002)]).toEqual([4, 5, 6, 7]);
    expect(range.subarray(0, 0x1000).every((b) => b === 0)).toBe(true);
    expect(image.range(0n, 4n * PAGE)).toEqual(range);
    expect(() => image.write(0n, new Uint8Array(1))).toThrow(/sealed/);
  });

  it('an image staged over a sealed one: its writes on top, the rest from below, the one below unchanged', () => {
    const below = base();
    const before = Buffer.from(below.range(0n, 4n * PAGE));
    const above = below.derive();
    above.write(0x1001n, new Uint8Array([9]));
    above.write(0x3800n, new Uint8Array([8]));
    above.seal();
    const range = above.range(0n, 4n * PAGE);
    expect([...range.subarray(0x1000, 0x1003)]).toEqual([1, 9, 3]);
    expect([...range.subarray(0x2ffe, 0x3002)]).toEqual([4, 5, 6, 7]);
    expect(range[0x3800]).toBe(8);
    expect([...above.page(0x1000n).subarray(0, 3)]).toEqual([1, 9, 3]);
    expect([...above.page(0x2000n).subarray(0xffe)]).toEqual([4, 5]);
    // A range with none of its own pages is the one below's.
    expect(above.range(0x2000n, PAGE)).toEqual(below.range(0x2000n, PAGE));
    expect(Buffer.from(below.range(0n, 4n * PAGE)).equals(before)).toBe(true);
    expect(() => new StagedImage(new StagedImage())).toThrow(/sealed/);
  });

  it('pages outside the launch ranges are found in either image, each once', () => {
    const below = base();
    const above = below.derive();
    above.write(0x1000n, new Uint8Array([1]));
    above.write(0x9000n, new Uint8Array([1]));
    expect(above.pagesOutside([{ gpa: 0x2000n, bytes: PAGE }])).toEqual([0x1000n, 0x3000n, 0x9000n]);
    expect(above.pagesOutside([{ gpa: 0n, bytes: 0x10000n }])).toEqual([]);
  });

  it('page() is a copy: writing into it leaves the sealed image as it was', () => {
    const image = base();
    image.page(0x1000n)[0] = 0xee;
    expect(image.page(0x1000n)[0]).toBe(1);
    expect(image.range(0x1000n, PAGE)[0]).toBe(1);
  });

  it('fill() writes the byte it is given over the range, across pages (a LoadTarget, as guest memory)', () => {
    const image = new StagedImage();
    image.fill(0x1ffen, 4n, 0xa5);
    expect([...image.seal().range(0x1000n, 2n * PAGE).subarray(0xffd, 0x1003)]).toEqual([0, 0xa5, 0xa5, 0xa5, 0xa5, 0]);
  });
});

describe('StagedImage.sparseRange', () => {
  it('holds the staged pages inside the range (copies, at their offsets) and spans the same bytes as range()', () => {
    const image = new StagedImage();
    image.write(0x1ff0n, Uint8Array.from({ length: 0x20 }, (_, i) => i + 1));  // straddles two pages
    image.write(0x5000n, Uint8Array.of(9));
    image.write(0x9000n, Uint8Array.of(7));  // outside the range below
    image.seal();
    const sparse = image.sparseRange(0x1000n, 0x6000n);
    expect(sparse.byteLength).toBe(0x6000);
    expect([...sparse.pages.keys()].sort((a, b) => a - b)).toEqual([0, 0x1000, 0x4000]);
    expect(Buffer.from(denseBytes(sparse)).equals(Buffer.from(image.range(0x1000n, 0x6000n)))).toBe(true);
    sparse.pages.get(0)![0xff0] ^= 0xff;  // a copy: the image is unchanged
    expect(image.page(0x1000n)[0xff0]).toBe(1);
    expect(image.sparseRange(0xa000n, 0x2000n).pages.size).toBe(0);
    // [base, base + bytes): the page at the end of the range is the next range's, not this one's.
    expect([...image.sparseRange(0x1000n, 0x4000n).pages.keys()].sort((a, b) => a - b)).toEqual([0, 0x1000]);
  });

  it('of an image staged over another: its own pages over the ones below, the rest from below', () => {
    const above = base().derive();
    above.write(0x1001n, new Uint8Array([9]));
    above.write(0x3800n, new Uint8Array([8]));
    above.seal();
    const sparse = above.sparseRange(0n, 4n * PAGE);
    expect([...sparse.pages.keys()].sort((a, b) => a - b)).toEqual([0x1000, 0x2000, 0x3000]);
    expect(Buffer.from(denseBytes(sparse)).equals(Buffer.from(above.range(0n, 4n * PAGE)))).toBe(true);
  });
});
