// Hash states after steps of input that recur from one VM to the next: a fuzz campaign launches a
// fresh VM for every program that changes the launch, and most launches measure the same initial
// image (the same bytes at the same addresses, after the same steps) into a fresh TDX MRTD or SNP
// launch digest. Hashing it again was ~12% of a TDX launch's CPU (SHA-384 over ~1.6 MB of MRTD
// blocks; issue 10). A step's result is taken from the memo only when the state before it is the
// same (`from`: a value, or the identity of a hash's lineage) and the step's own input is the
// same: `label` (what, besides `bytes`, decides what it feeds the hash) and `bytes`, compared byte
// for byte.
import { Buffer } from 'node:buffer';
import type { BufferedHash, BufferedHashState, HashLineage } from './buffered-hash.js';
import { pageAt, SPARSE_PAGE_BYTES, type SparsePages } from './sparse-pages.js';

interface Step<From, Result> {
  from: From;
  label: string;
  /** A copy of the step's bytes (the caller's may change after the step). */
  bytes: SparseCopy;
  result: Result;
}

const CHUNK = SPARSE_PAGE_BYTES;
const ZERO_CHUNK = Buffer.alloc(CHUNK);

/**
 * A copy of bytes that holds only their 4 KiB chunks with something other than zeros: a launched
 * range is mostly zero pages (the stubs' initial image: 2 MiB around a few dozen KiB), and copying
 * it whole made a boot fault in a fresh page of host memory for each of them (~260 page faults of
 * a default TDX boot, which launches one VM and never looks the step up; issue 11).
 */
class SparseCopy {
  readonly length: number;
  /** Offsets of the chunks kept, ascending, and their copies. */
  readonly #offsets: number[] = [];
  readonly #chunks: Buffer[] = [];
  /** Bytes held in copies. */
  readonly heldBytes: number;

  constructor(bytes: Uint8Array | SparsePages) {
    this.length = bytes.byteLength;
    let held = 0;
    for (let at = 0; at < bytes.byteLength; at += CHUNK) {
      const chunk = pageAt(bytes, at);  // the last one may be short
      if (chunk === undefined || isZero(chunk)) continue;
      this.#offsets.push(at);
      this.#chunks.push(Buffer.from(chunk));
      held += chunk.byteLength;
    }
    this.heldBytes = held;
  }

  /** Whether `bytes` are the bytes this was copied from. */
  equals(bytes: Uint8Array | SparsePages): boolean {
    if (bytes.byteLength !== this.length) return false;
    let kept = 0;
    for (let at = 0; at < bytes.byteLength; at += CHUNK) {
      const chunk = pageAt(bytes, at);  // the last one may be short
      if (this.#offsets[kept] === at) {
        if (chunk === undefined || !this.#chunks[kept]!.equals(chunk)) return false;
        kept++;
      } else if (chunk !== undefined && !isZero(chunk)) {
        return false;
      }
    }
    return true;
  }
}

function isZero(chunk: Uint8Array): boolean {
  return (chunk.byteLength === CHUNK ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, chunk.byteLength)).equals(chunk);
}

/**
 * Results of hash steps by the state before them and their input; keeps the `capacity` steps used
 * last, no step whose bytes are more than `maxBytes`, and no more than `maxBytes` of copies of
 * their bytes (a Linux kernel's launched range is megabytes; zero chunks are not copied).
 */
export class HashStepMemo<From, Result> {
  /** Most recently used last. */
  readonly #steps: Step<From, Result>[] = [];
  readonly #capacity: number;
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(capacity: number, maxBytes = 32 << 20) {
    this.#capacity = capacity;
    this.#maxBytes = maxBytes;
  }

  /** The result of the step from `from` with input `label` and `bytes`, if remembered. */
  find(from: From, label: string, bytes: Uint8Array | SparsePages): Result | undefined {
    const index = this.#steps.findIndex((s) => s.from === from && s.label === label && s.bytes.equals(bytes));
    if (index < 0) return undefined;
    const step = this.#steps[index]!;
    this.#steps.splice(index, 1);
    this.#steps.push(step);
    return step.result;
  }

  /** Remembers `result` (which must never change afterwards: callers share it) for that step. */
  remember(from: From, label: string, bytes: Uint8Array | SparsePages, result: Result): void {
    if (bytes.byteLength > this.#maxBytes) return;
    const copy = new SparseCopy(bytes);
    this.#steps.push({ from, label, bytes: copy, result });
    this.#bytes += copy.heldBytes;
    while (this.#steps.length > this.#capacity || this.#bytes > this.#maxBytes) this.#bytes -= this.#steps.shift()!.bytes.heldBytes;
  }
}

/** A BufferedHash's state after a step, and the lineage it then has. */
export interface BufferedHashStep {
  state: BufferedHashState;
  lineage: HashLineage;
}

/**
 * Feeds `hash` what `feed` feeds it: by running `feed`, or, when `memo` holds that step from the
 * hash's lineage (the same memoized steps from a new hash: BufferedHash.lineage), by loading the
 * state it gave. `feed` must feed only bytes decided by `label` and `bytes`, and must not read
 * the hash. A hash fed anything else has forgotten its lineage and takes nothing from the memo.
 */
export function feedMemoized(memo: HashStepMemo<HashLineage, BufferedHashStep>, hash: BufferedHash, label: string, bytes: Uint8Array | SparsePages, feed: () => void): void {
  const from = hash.lineage;
  const known = from === undefined ? undefined : memo.find(from, label, bytes);
  if (known) {
    hash.loadState(known.state);
    hash.lineage = known.lineage;
    return;
  }
  feed();
  if (from === undefined) return;
  // A saved state is never changed (BufferedHash copies it before adding to it): hashes can share it.
  const step: BufferedHashStep = { state: hash.saveState(), lineage: {} };
  memo.remember(from, label, bytes, step);
  hash.lineage = step.lineage;
}
