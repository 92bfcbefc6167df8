// What DRAM holds for a page encrypted with the guest's key: its ciphertext. A C=0 (shared)
// read of such a page, by the guest or by the host, returns these bytes rather than the
// plaintext (AMD APM Vol. 2 §15.34.1: SEV memory is encrypted with AES-128 keyed per VM, with a
// tweak from the system-physical address, so equal plaintext at two addresses differs; §15.36:
// C=0 accesses use no guest key). Modelled as AES-128-XTS over each 4 KiB page, data-unit
// tweak = the page's system-physical address, under a per-VM key only the hardware model holds:
// deterministic for a given VM identity (runs stay a function of their config and seed), keyed,
// and not invertible without the key. node:crypto provides XTS; nothing is hand-written.
//
// This is the one ciphertext function of the model: the guest's shared reads (the native
// ciphertext shadow, snp-cpu.ts), the host's reads of guest-assigned pages, and the ownership
// changes (RMPUPDATE, snp-cpu.ts) use it alike: a validated page taken from the guest keeps its
// ciphertext in DRAM, and DRAM the host wrote is decrypted when a page goes to the guest, so
// ciphertext moved to another address, or bytes the host wrote, read as garbage, while the
// ciphertext put back at its own address decrypts to the old plaintext (a replay that only the
// cleared Validated bit stops).
import { digestOf, nodeCrypto } from '../../shared/digest.js';
import { PAGE_4K } from './rmp.js';

// node:crypto is loaded at the first page this model encrypts or decrypts, not with the module:
// a boot that never reads ciphertext does not pay for it (src/shared/digest.ts says why).

const PAGE_BYTES = Number(PAGE_4K);
/**
 * Pages whose last encryption or decryption is remembered (MemoryEncryption.#known), the least
 * recently used forgotten first; at most 8 KiB each (a zero plaintext is shared). A fuzz execution
 * that gives a validated 2 MiB region back to the hypervisor encrypts its 512 pages, and a
 * campaign's executions touch ~1,600 pages in all (the first 6,000 of a kernel-stage campaign).
 */
const KNOWN_PAGES_LIMIT = 2048;
/** The plaintext most pages have (validated, never written): one copy for all of them. */
const ZERO_PAGE = Buffer.alloc(PAGE_BYTES);

/** A page's plaintext and the ciphertext DRAM holds for it, neither the caller's own bytes (nobody changes them). */
interface KnownPage {
  plaintext: Buffer;
  ciphertext: Buffer;
}

export class MemoryEncryption {
  /** Two AES-128 keys (XTS). Private: nothing outside the hardware model can read it. */
  readonly #key: Buffer;
  /**
   * The last plaintext/ciphertext pair of each page, by page number: a page encrypted or decrypted
   * again with the same bytes gets the same answer without a cipher. Fuzz executions start from one
   * snapshot, so each converts or reads the same pages with the same contents as the last, and
   * making a cipher and running it over 4 KiB (~25 us) was most of an SNP page conversion (issue 10).
   * The answer is the cipher's either way: a pure function of the key, the page and its bytes.
   */
  readonly #known = new Map<number, KnownPage>();

  /** `vmIdentity` names the VM (e.g. its ASID and seed): equal identities give equal keys. */
  constructor(vmIdentity: string) {
    this.#key = digestOf('sha256', Buffer.from('minivisor SEV-SNP VM encryption key\0'), Buffer.from(vmIdentity));
  }

  /**
   * The ciphertext DRAM holds for `plaintext` (one 4 KiB page) at system-physical `spa`. Read
   * only: the memo keeps it (the callers copy it into memory or a host read's answer, and a copy
   * per answer, a new 4 KiB ArrayBuffer, cost as much as the cipher).
   */
  encryptPage(spa: bigint, plaintext: Uint8Array): Readonly<Uint8Array> {
    if (plaintext.length !== PAGE_BYTES) throw new RangeError(`a page is ${PAGE_BYTES} bytes, got ${plaintext.length}`);
    const page = pageNumber(spa);
    const known = this.#known.get(page);
    if (known !== undefined && known.plaintext.equals(plaintext)) return this.#recall(page, known).ciphertext;
    const cipher = nodeCrypto().createCipheriv('aes-128-xts', this.#key, tweakOf(spa));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    this.#remember(page, copyOf(plaintext), ciphertext);
    return ciphertext;
  }

  /** What a guest (C=1) read of `spa` returns when DRAM holds `ciphertext` there: the inverse of encryptPage. Read only, likewise. */
  decryptPage(spa: bigint, ciphertext: Uint8Array): Readonly<Uint8Array> {
    if (ciphertext.length !== PAGE_BYTES) throw new RangeError(`a page is ${PAGE_BYTES} bytes, got ${ciphertext.length}`);
    const page = pageNumber(spa);
    const known = this.#known.get(page);
    if (known !== undefined && known.ciphertext.equals(ciphertext)) return this.#recall(page, known).plaintext;
    const decipher = nodeCrypto().createDecipheriv('aes-128-xts', this.#key, tweakOf(spa));
    const plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    const kept = plaintext.equals(ZERO_PAGE) ? ZERO_PAGE : plaintext;
    this.#remember(page, kept, Buffer.from(ciphertext));
    return kept;
  }

  /** `known`, the pair of `page`, which becomes the most recently used page. */
  #recall(page: number, known: KnownPage): KnownPage {
    this.#known.delete(page);
    this.#known.set(page, known);
    return known;
  }

  #remember(page: number, plaintext: Buffer, ciphertext: Buffer): void {
    if (page < 0) return;
    this.#known.delete(page);
    // A Map iterates in insertion order: its first key is the page used least recently.
    if (this.#known.size >= KNOWN_PAGES_LIMIT) this.#known.delete(this.#known.keys().next().value!);
    this.#known.set(page, { plaintext, ciphertext });
  }
}

/** A copy of `bytes` only the memo holds (the shared zero page for zeros). */
function copyOf(bytes: Uint8Array): Buffer {
  return ZERO_PAGE.equals(bytes) ? ZERO_PAGE : Buffer.from(bytes);
}

/** The memo's key of `spa`: its 4 KiB page number, or -1 (not remembered) where a number is not exact. */
function pageNumber(spa: bigint): number {
  return spa >= 0n && spa <= MAX_EXACT ? Math.floor(Number(spa) / PAGE_BYTES) : -1;
}
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/** The XTS data-unit tweak: the page's system-physical address. */
function tweakOf(spa: bigint): Buffer {
  const tweak = Buffer.alloc(16);
  tweak.writeBigUInt64LE(spa & ~(PAGE_4K - 1n));
  return tweak;
}
