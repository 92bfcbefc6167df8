// The VMM's own copy of the initial guest image, page by page, in host memory. The measured
// launch copies each page into the guest (TDX TDH.MEM.PAGE.ADD's source page, SNP
// SNP_LAUNCH_UPDATE's source); nothing is written into guest RAM before that.
import type { LoadTarget } from './elf.js';

const PAGE = 0x1000n;

export class StagedImage implements LoadTarget {
  readonly #pages = new Map<bigint, Uint8Array>();
  #sealed = false;

  /** No more writes: from here on the image can be launched into any number of VMs (every read copies). */
  seal(): this {
    this.#sealed = true;
    return this;
  }

  #page(base: bigint): Uint8Array {
    if (this.#sealed) throw new Error('a sealed staged image cannot be written');
    let page = this.#pages.get(base);
    if (!page) {
      page = new Uint8Array(Number(PAGE));
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
    return this.#pages.get(base)?.slice() ?? new Uint8Array(Number(PAGE));
  }

  /** The pages of [base, base+bytes) back to back (zeros where nothing was staged); `base` and `bytes` page-aligned. */
  range(base: bigint, bytes: bigint): Uint8Array {
    const out = new Uint8Array(Number(bytes));
    for (let offset = 0n; offset < bytes; offset += PAGE) {
      const page = this.#pages.get(base + offset);
      if (page) out.set(page, Number(offset));
    }
    return out;
  }

  /** Staged pages outside [gpa, gpa+bytes) of every given range: bytes the launch would drop. */
  pagesOutside(ranges: ReadonlyArray<{ gpa: bigint; bytes: bigint }>): bigint[] {
    return [...this.#pages.keys()].filter((p) => !ranges.some((r) => p >= r.gpa && p < r.gpa + r.bytes));
  }
}
