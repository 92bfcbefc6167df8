// The VMM's own copy of the initial guest image, page by page, in host memory. The measured
// launch copies each page into the guest (TDX TDH.MEM.PAGE.ADD's source page, SNP
// SNP_LAUNCH_UPDATE's source); nothing is written into guest RAM before that.
import type { LoadTarget } from './elf.js';
import type { SparsePages } from '../shared/sparse-pages.js';

const PAGE = 0x1000n;

export class StagedImage implements LoadTarget {
  readonly #pages = new Map<bigint, Uint8Array>();
  /** A sealed image whose pages this one shows where it has none of its own (derive()). */
  readonly #under: StagedImage | undefined;
  #sealed = false;

  constructor(under?: StagedImage) {
    if (under && !under.#sealed) throw new Error('an image can only be staged over a sealed one');
    this.#under = under;
  }

  /**
   * A new image with this sealed one's pages, to be written further (a fuzz launch's image is the
   * campaign's with another firmware config page): pages it does not write are read from this one,
   * without copying them again.
   */
  derive(): StagedImage {
    return new StagedImage(this);
  }

  /** No more writes: from here on the image can be launched into any number of VMs (every read copies). */
  seal(): this {
    this.#sealed = true;
    return this;
  }

  #stagedPage(base: bigint): Uint8Array | undefined {
    const own = this.#pages.get(base);
    if (own || !this.#under) return own;
    return this.#under.#stagedPage(base);
  }

  #page(base: bigint): Uint8Array {
    if (this.#sealed) throw new Error('a sealed staged image cannot be written');
    let page = this.#pages.get(base);
    if (!page) {
      page = this.#stagedPage(base)?.slice() ?? new Uint8Array(Number(PAGE));
      this.#pages.set(base, page);
    }
    return page;
  }

  write(gpa: bigint, data: Uint8Array): void {
    let done = 0;
    while (done < data.byteLength) {
      const at = gpa + BigInt(done);
      const base = at & ~(PAGE - 1n);
      const offset = Number(at - base);
      const n = Math.min(Number(PAGE) - offset, data.byteLength - done);
      this.#page(base).set(data.subarray(done, done + n), offset);
      done += n;
    }
  }

  fill(gpa: bigint, length: bigint, byte = 0): void {
    this.write(gpa, new Uint8Array(Number(length)).fill(byte));
  }

  /** A copy of the 4 KiB page at `base` (zeros where nothing was staged). */
  page(base: bigint): Uint8Array {
    return this.#stagedPage(base)?.slice() ?? new Uint8Array(Number(PAGE));
  }

  /** The pages of [base, base+bytes) back to back (zeros where nothing was staged); `base` and `bytes` page-aligned. */
  range(base: bigint, bytes: bigint): Uint8Array {
    const out = new Uint8Array(Number(bytes));
    for (let offset = 0n; offset < bytes; offset += PAGE) {
      const page = this.#stagedPage(base + offset);
      if (page) out.set(page, Number(offset));
    }
    return out;
  }

  /**
   * range() given by its staged pages (copies; an image's own before the one's below): the pages
   * nothing was staged in are zeros, and a launch need not read them (src/shared/sparse-pages.ts).
   */
  sparseRange(base: bigint, bytes: bigint): SparsePages {
    const pages = new Map<number, Uint8Array>();
    for (let image: StagedImage | undefined = this; image; image = image.#under) {
      for (const [at, page] of image.#pages) {
        const offset = Number(at - base);
        if (at >= base && at < base + bytes && !pages.has(offset)) pages.set(offset, page.slice());
      }
    }
    return { byteLength: Number(bytes), pages };
  }

  /** Staged pages outside [gpa, gpa+bytes) of every given range: bytes the launch would drop. */
  pagesOutside(ranges: ReadonlyArray<{ gpa: bigint; bytes: bigint }>): bigint[] {
    const under = this.#under?.pagesOutside(ranges) ?? [];
    const own = [...this.#pages.keys()].filter((p) => !under.includes(p) && !ranges.some((r) => p >= r.gpa && p < r.gpa + r.bytes));
    return [...under, ...own];
  }
}
