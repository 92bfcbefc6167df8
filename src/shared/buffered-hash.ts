// A hash fed through a 64 KiB buffer that callers write into directly: one native update per
// 64 KiB instead of one per small piece, which dominated the trace hash and the TDX measurement
// (issue 11). The digest is the same as hashing every piece in order.
import { createDigest, type Digest, type DigestAlgorithm } from './digest.js';
import type { Snapshottable } from './snapshottable.js';

const BUFFER_BYTES = 1 << 16;

/** A saved hash position; undefined once the digest was taken (nothing can be added after that). */
export type BufferedHashState = Digest | undefined;

/**
 * What went into a hash since it was created, as a HashStepMemo knows it (src/shared/hash-step-memo.ts):
 * an object that two hashes share only when the same memoized steps, in the same order, were all
 * that fed them. Each algorithm's new hashes start at its own.
 */
export type HashLineage = object;
const NEW_HASH_LINEAGE: Record<DigestAlgorithm, HashLineage> = { sha256: {}, sha384: {} };

export class BufferedHash implements Snapshottable<BufferedHashState> {
  static readonly capacity = BUFFER_BYTES;
  readonly buf = Buffer.allocUnsafe(BUFFER_BYTES);
  readonly view = new DataView(this.buf.buffer, this.buf.byteOffset, BUFFER_BYTES);
  /** Next free byte of `buf`; advance it after writing there. */
  pos = 0;
  readonly #algorithm: DigestAlgorithm;
  /**
   * The hash in progress; undefined while it is still the loaded state, copied only once something
   * is added, or before anything was: the digest is made when the first bytes go in, so one made
   * before the native addon loads still gets the addon's (src/shared/digest.ts).
   */
  #hash: Digest | undefined;
  /** The state last loaded: saved states are never changed, so it can be handed out again as it is. */
  #loaded: Digest | undefined;
  #digested = false;
  /**
   * Known while nothing but HashStepMemo steps fed this hash; forgotten (undefined) by anything
   * else that can change it: room() (every writer into `buf` makes room first), update(),
   * loadState() and digest().
   */
  lineage: HashLineage | undefined;

  constructor(algorithm: DigestAlgorithm) {
    this.#algorithm = algorithm;
    this.lineage = NEW_HASH_LINEAGE[algorithm];
  }

  #live(): Digest {
    // Restoring a snapshot does not copy the saved hash until something is added (most restores add nothing).
    return (this.#hash ??= this.#loaded ? this.#loaded.copy() : createDigest(this.#algorithm));
  }

  saveState(): BufferedHashState {
    if (this.#digested) return undefined;
    if (this.pos === 0 && this.#hash === undefined && this.#loaded !== undefined) return this.#loaded;
    this.flush();
    return this.#live().copy();
  }

  loadState(state: BufferedHashState): void {
    this.lineage = undefined;
    this.pos = 0;
    if (state === undefined) {
      // Nothing can be added after a digest: a fresh hash only if this one can still take data.
      if (!this.#digested || this.#hash === undefined) this.#hash = createDigest(this.#algorithm);
      this.#digested = true;
      return;
    }
    this.#digested = false;
    this.#loaded = state;
    this.#hash = undefined;
  }

  /** Makes room for `bytes` (at most `capacity`) at `pos`. */
  room(bytes: number): void {
    this.lineage = undefined;
    if (this.pos + bytes > BUFFER_BYTES) this.flush();
  }

  flush(): void {
    if (this.pos === 0) return;
    this.#live().update(this.buf.subarray(0, this.pos));
    this.pos = 0;
  }

  update(data: Uint8Array): void {
    if (data.byteLength > BUFFER_BYTES) {
      this.lineage = undefined;
      this.flush();
      this.#live().update(data);
      return;
    }
    this.room(data.byteLength);
    this.buf.set(data, this.pos);
    this.pos += data.byteLength;
  }

  /** The digest so far; hashing can go on. */
  peek(encoding: 'hex'): string {
    return (this.#hash ?? this.#loaded ?? this.#live()).copy().update(this.buf.subarray(0, this.pos)).digest().toString(encoding);
  }

  digest(): Buffer {
    this.lineage = undefined;
    this.flush();
    this.#digested = true;
    return this.#live().digest();
  }
}
