// Guest memory as the untrusted host sees it. A real hypervisor reaches guest RAM through its own
// mappings of host-physical memory; the hardware decides what such an access may do to a page
// that belongs to the guest:
// - SEV-SNP: a host write to a page the RMP assigns to a guest (or to the firmware) is an
//   RMP-protected write and faults (APM Vol. 2 §15.36.10 "RMP and VMPL Access Checks": the RMP
//   check on hypervisor accesses); a host read returns what DRAM holds, the ciphertext.
// - TDX: private memory is encrypted and integrity-protected with the TD's key; the host may only
//   use shared memory (TDX Module Base Spec, "Private vs. shared memory").
// This view asks a per-platform `HostMemoryGuard` about every page a host access touches.
import type { GuestMemory } from '../memory/guest-memory.js';
import { TypedAccess } from '../memory/typed-access.js';
import { u64ToNumber } from '../shared/u64.js';

const PAGE = 0x1000n;
const PAGE_BYTES = 0x1000;
/** Clears a GPA's page offset (a constant: `~(PAGE - 1n)` in place made two BigInts per use). */
const PAGE_BASE = ~(PAGE - 1n);

/** A host access the hardware refuses (SNP: RMP-protected write; TDX: access to private memory). */
export class HostAccessRefused extends Error {
  override name = 'HostAccessRefused';
  readonly gpa: bigint;
  constructor(gpa: bigint, why: string) {
    super(refusalMessage(gpa, why));
    this.gpa = gpa;
  }
}

function refusalMessage(gpa: bigint, why: string): string {
  return `host ${why} at 0x${gpa.toString(16)}`;
}

/** How the hardware treats a host access to one 4 KiB page. */
export interface HostMemoryGuard {
  /** undefined: the host may write the page; a string: why the hardware refuses it. */
  refuseWrite(page: bigint): string | undefined;
  /**
   * What a host read of `page` returns: 'plain' for host-owned memory, the page's ciphertext
   * (4 KiB) for protected memory, or a refusal reason (string).
   */
  read(page: bigint): 'plain' | Uint8Array | string;
  /** A host write reached `page` (after the guard allowed it). */
  wrote?(page: bigint): void;
}

export class HostMemory extends TypedAccess {
  readonly #memory: GuestMemory;
  readonly #guard: HostMemoryGuard;

  constructor(memory: GuestMemory, guard: HostMemoryGuard) {
    super();
    this.#memory = memory;
    this.#guard = guard;
  }

  get size(): bigint {
    return this.#memory.size;
  }

  read(gpa: bigint, length: number): Uint8Array {
    return this.#guarded(gpa, length, this.#memory.read(gpa, length));
  }

  override readTransient(gpa: bigint, length: 1 | 2 | 4 | 8): Uint8Array {
    return this.#guarded(gpa, length, this.#memory.readTransient(gpa, length));
  }

  /**
   * `out`, the bytes of [gpa, gpa+length) in RAM, as the guard lets the host see them (or a
   * refusal thrown). The range is in RAM (the read succeeded), so its offsets are exact numbers:
   * one BigInt per page, where bounds and offsets in BigInts made five for the one page of a
   * VMM's field read (several per exit, issue 10).
   */
  #guarded(gpa: bigint, length: number, out: Uint8Array): Uint8Array {
    const offset = u64ToNumber(gpa) % PAGE_BYTES;
    const pages = Math.ceil((offset + length) / PAGE_BYTES);
    const first = gpa & PAGE_BASE;
    for (let i = 0; i < pages; i++) {
      const page = i === 0 ? first : first + BigInt(i * PAGE_BYTES);
      const seen = this.#guard.read(page);
      if (seen === 'plain') continue;
      if (typeof seen === 'string') throw new HostAccessRefused(gpa, `read refused: ${seen}`);
      // Overlay the ciphertext of this page onto the part of `out` that lies in it.
      const from = i === 0 ? offset : 0;
      const to = Math.min(PAGE_BYTES, offset + length - i * PAGE_BYTES);
      out.set(seen.subarray(from, to), i * PAGE_BYTES + from - offset);
    }
    return out;
  }

  write(gpa: bigint, data: Uint8Array): void {
    this.#checkWrite(gpa, BigInt(data.byteLength));
    this.#memory.write(gpa, data);
    this.#wrote(gpa, BigInt(data.byteLength));
  }

  /**
   * write() for a caller that expects refusals: undefined once written, else the message the
   * HostAccessRefused would carry, with nothing written. The fuzzer's adversary writes wherever
   * its program says, mostly into private pages, and building the Error (its stack trace) was ~2%
   * of a TDX campaign's CPU time (issue 10). A range outside RAM still throws (a RangeError).
   */
  tryWrite(gpa: bigint, data: Uint8Array): string | undefined {
    const refused = this.#writeRefusal(gpa, BigInt(data.byteLength));
    if (refused) return refusalMessage(refused.gpa, refused.why);
    this.#memory.write(gpa, data);
    this.#wrote(gpa, BigInt(data.byteLength));
    return undefined;
  }

  fill(gpa: bigint, length: bigint, byte = 0): void {
    this.#checkWrite(gpa, length);
    this.#memory.fill(gpa, length, byte);
    this.#wrote(gpa, length);
  }

  #wrote(gpa: bigint, length: bigint): void {
    const wrote = this.#guard.wrote;
    if (!wrote || length === 0n) return;
    const end = gpa + length;
    for (let page = gpa & PAGE_BASE; page < end; page += PAGE) wrote(page);
  }

  #checkWrite(gpa: bigint, length: bigint): void {
    const refused = this.#writeRefusal(gpa, length);
    if (refused) throw new HostAccessRefused(refused.gpa, refused.why);
  }

  /** The first page of [gpa, gpa+length) the hardware refuses to let the host write, if any. */
  #writeRefusal(gpa: bigint, length: bigint): { gpa: bigint; why: string } | undefined {
    if (gpa < 0n || length < 0n || gpa + length > this.#memory.size) {
      throw new RangeError(`guest-physical range 0x${gpa.toString(16)}+0x${length.toString(16)} is outside guest RAM`);
    }
    const end = gpa + length;
    for (let page = gpa & PAGE_BASE; page < end; page += PAGE) {
      const why = this.#guard.refuseWrite(page);
      if (why !== undefined) return { gpa: page > gpa ? page : gpa, why: `write refused: ${why}` };
    }
    return undefined;
  }
}
