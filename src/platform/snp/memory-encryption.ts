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

export class MemoryEncryption {
  /** Two AES-128 keys (XTS). Private: nothing outside the hardware model can read it. */
  readonly #key: Buffer;

  /** `vmIdentity` names the VM (e.g. its ASID and seed): equal identities give equal keys. */
  constructor(vmIdentity: string) {
    this.#key = digestOf('sha256', Buffer.from('minivisor SEV-SNP VM encryption key\0'), Buffer.from(vmIdentity));
  }

  /** The ciphertext DRAM holds for `plaintext` (one 4 KiB page) at system-physical `spa`. */
  encryptPage(spa: bigint, plaintext: Uint8Array): Buffer {
    if (plaintext.length !== PAGE_BYTES) throw new RangeError(`a page is ${PAGE_BYTES} bytes, got ${plaintext.length}`);
    const cipher = nodeCrypto().createCipheriv('aes-128-xts', this.#key, tweakOf(spa));
    return Buffer.concat([cipher.update(plaintext), cipher.final()]);
  }

  /** What a guest (C=1) read of `spa` returns when DRAM holds `ciphertext` there: the inverse of encryptPage. */
  decryptPage(spa: bigint, ciphertext: Uint8Array): Buffer {
    if (ciphertext.length !== PAGE_BYTES) throw new RangeError(`a page is ${PAGE_BYTES} bytes, got ${ciphertext.length}`);
    const decipher = nodeCrypto().createDecipheriv('aes-128-xts', this.#key, tweakOf(spa));
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  }
}

/** The XTS data-unit tweak: the page's system-physical address. */
function tweakOf(spa: bigint): Buffer {
  const tweak = Buffer.alloc(16);
  tweak.writeBigUInt64LE(spa & ~(PAGE_4K - 1n));
  return tweak;
}
