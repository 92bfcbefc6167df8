// SNP_LAUNCH_UPDATE measurement: the launch digest is a SHA-384 chain over PAGE_INFO
// structures (SEV-SNP Firmware ABI §8.17, "PAGE_INFO": DIGEST_CUR[48] CONTENTS[48] LENGTH u16
// PAGE_TYPE u8 IMI_PAGE u8 RSVD u8 VMPL1..3_PERMS u8 GPA u64 = 0x70 bytes).
import { chainDigest, digestOf } from '../../shared/digest.js';
import { HashStepMemo } from '../../shared/hash-step-memo.js';
import type { Snapshottable } from '../../shared/snapshottable.js';
import { ZERO_PAGE, isZeroPage } from '../../memory/zero-page.js';
import { pageAt, type SparsePages } from '../../shared/sparse-pages.js';

const sha384 = (data: Uint8Array): Buffer => digestOf('sha384', data);
const ZERO_CONTENTS = new Uint8Array(48);
let zeroPageSha384: Buffer | undefined;
/**
 * SHA-384 of a 4 KiB page; an all-zero page (most of an initial image: 243 of the stubs' 256)
 * gets the one digest of zeros, computed once: a compare instead of hashing 4 KiB.
 */
const pageSha384 = (page: Uint8Array): Buffer => {
  if (!isZeroPage(page)) return sha384(page);
  zeroPageSha384 ??= sha384(ZERO_PAGE);
  return zeroPageSha384;
};

/**
 * Launch digests after a range, kept from one guest to the next (in this process): a fuzz
 * campaign's launches mostly launch the same image into a new guest (src/shared/hash-step-memo.ts).
 * A range is taken from here only from the same digest (its bytes: the chain's whole state) with
 * the same page type, GPA, size, VMPL permissions and (NORMAL) bytes. A few guests' worth: a
 * launch has five to ten ranges.
 */
const RANGE_STEPS = new HashStepMemo<string, Uint8Array>(32);
const NO_BYTES = new Uint8Array(0);

export const LAUNCH_PAGE_TYPE = { NORMAL: 1, VMSA: 2, ZERO: 3, UNMEASURED: 4, SECRETS: 5, CPUID: 6 } as const;
export type LaunchPageType = keyof typeof LAUNCH_PAGE_TYPE;
export const DIGEST_BYTES = 48;
const PAGE_BYTES = 0x1000;
const PAGE_INFO_BYTES = 0x70;

/** VMPL1..3 permissions a launched page gets (SNP_LAUNCH_UPDATE VMPLn_PERMS; VMPL0 gets all). */
export type LaunchVmplPerms = readonly [number, number, number];
export const NO_LOWER_VMPL_PERMS: LaunchVmplPerms = [0, 0, 0];

export function pageInfo(digestCur: Uint8Array, contents: Uint8Array, type: LaunchPageType, gpa: bigint, vmplPerms: LaunchVmplPerms = NO_LOWER_VMPL_PERMS, into?: Buffer): Buffer {
  // Plain byte stores: a launch builds ~500 of these in a cold process, where Buffer's checked
  // writers were a visible share of an SNP boot's VM setup (issue 11). A range reuses `into`.
  const b = into ?? Buffer.alloc(PAGE_INFO_BYTES);
  b.set(digestCur, 0);
  b.set(contents, 48);
  b[96] = PAGE_INFO_BYTES;  // LENGTH, little-endian u16
  b[98] = LAUNCH_PAGE_TYPE[type];
  b[101] = vmplPerms[0];
  b[102] = vmplPerms[1];
  b[103] = vmplPerms[2];
  new DataView(b.buffer, b.byteOffset, PAGE_INFO_BYTES).setBigUint64(104, gpa, true);
  return b;
}

/** The running launch digest (starts as 48 zero bytes). */
export class LaunchDigest implements Snapshottable<{ digest: Uint8Array; finished: boolean }> {
  #digest: Uint8Array = new Uint8Array(DIGEST_BYTES);
  #finished = false;

  /**
   * Extends the digest with one 4 KiB page. NORMAL and VMSA pages hash their bytes (`page`, which
   * only they need); the others (ZERO, UNMEASURED, SECRETS, CPUID) put zeros in CONTENTS. Every
   * page type extends the digest: UNMEASURED only leaves the contents out ("Unconditionally
   * update GCTX.LD", amd/AMD-ASPFW sev_mcmd.c snp_mcmd_launch_update, which digests the
   * PAGE_INFO of every page and hashes the data of NORMAL and VMSA pages only).
   */
  extend(type: LaunchPageType, gpa: bigint, page: Uint8Array | undefined, vmplPerms: LaunchVmplPerms = NO_LOWER_VMPL_PERMS): void {
    if (this.#finished) throw new Error('launch already finished');
    const hashesContents = type === 'NORMAL' || type === 'VMSA';
    if (hashesContents && page === undefined) throw new Error(`a ${type} page is measured by its contents`);
    const contents = hashesContents ? pageSha384(page!) : ZERO_CONTENTS;
    this.#digest = sha384(pageInfo(this.#digest, contents, type, gpa, vmplPerms));
  }

  /**
   * extend() of `pages` consecutive 4 KiB pages from `gpa` on, all of page type `type`, in
   * address order: what as many SNP_LAUNCH_UPDATEs give, the same digest, with one PAGE_INFO
   * buffer for all of them. `contents` holds the pages' bytes back to back, or gives its non-zero
   * pages (NORMAL needs them).
   */
  extendRange(type: 'NORMAL' | 'ZERO' | 'UNMEASURED', gpa: bigint, pages: number, contents: Uint8Array | SparsePages | undefined, vmplPerms: LaunchVmplPerms = NO_LOWER_VMPL_PERMS): void {
    if (this.#finished) throw new Error('launch already finished');
    if (type === 'NORMAL' && (contents === undefined || contents.byteLength !== pages * PAGE_BYTES)) throw new Error('NORMAL pages are measured by their contents');
    const from = Buffer.from(this.#digest).toString('hex');
    const label = `${type} 0x${gpa.toString(16)} ${pages} ${vmplPerms.join(',')}`;
    const bytes = type === 'NORMAL' ? contents! : NO_BYTES;
    const known = RANGE_STEPS.find(from, label, bytes);
    if (known) {
      this.#digest = known;
      return;
    }
    // Every page's PAGE_INFO but its DIGEST_CUR, which the chain fills in as it goes: one call
    // for the range instead of a digest object and three calls per page (an SNP default boot:
    // 974.6M -> 971.1M instructions, cachegrind; issue 11).
    const infos = Buffer.alloc(pages * PAGE_INFO_BYTES);
    for (let i = 0; i < pages; i++) {
      const page = type === 'NORMAL' ? pageSha384(pageAt(contents!, i * PAGE_BYTES) ?? ZERO_PAGE) : ZERO_CONTENTS;
      pageInfo(ZERO_CONTENTS, page, type, gpa + BigInt(i * PAGE_BYTES), vmplPerms, infos.subarray(i * PAGE_INFO_BYTES, (i + 1) * PAGE_INFO_BYTES));
    }
    const digest = chainDigest('sha384', this.#digest, infos, PAGE_INFO_BYTES);
    RANGE_STEPS.remember(from, label, bytes, digest);
    this.#digest = digest;
  }

  saveState(): { digest: Uint8Array; finished: boolean } {
    return { digest: this.#digest, finished: this.#finished };
  }

  loadState(state: { digest: Uint8Array; finished: boolean }): void {
    this.#digest = state.digest;
    this.#finished = state.finished;
  }

  finish(): string {
    this.#finished = true;
    return this.hex;
  }

  get finished(): boolean {
    return this.#finished;
  }

  /** The digest's bytes (a copy). */
  get digest(): Uint8Array {
    return Uint8Array.from(this.#digest);
  }

  get hex(): string {
    return Buffer.from(this.#digest).toString('hex');
  }
}
