// Guest code for the host-robustness fuzzer: random bytes, and mutations of code that does
// something (the instructions that exit to the hardware model or the VMM, jumps, self-writes).
// Everything comes from the seeded Prng, so execution `i` of a campaign is a pure function of the
// campaign seed and `i`.
import type { PlatformKind } from '../platform/platform.js';
import { Prng, deriveSeed } from '../shared/prng.js';

/** Byte sequences that reach the host's interesting paths. */
const SNIPPETS: readonly number[][] = [
  [0x66, 0x0f, 0x01, 0xcc],        // TDCALL
  [0xf2, 0x0f, 0x01, 0xff],        // PVALIDATE
  [0xf3, 0x0f, 0x01, 0xd9],        // VMGEXIT
  [0xf3, 0x0f, 0x01, 0xfe],        // RMPADJUST
  [0x0f, 0x0b],                    // UD2
  [0x0f, 0xa2],                    // CPUID
  [0x0f, 0x32], [0x0f, 0x30],      // RDMSR, WRMSR
  [0xe6, 0x80], [0xe4, 0x80], [0xee], [0xf3, 0x6e],  // OUT, IN, OUT DX, REP OUTSB
  [0xf4], [0xcc], [0xcd, 0x1d], [0x48, 0xcf],        // HLT, INT3, INT 0x1d, IRETQ
  [0x0f, 0x22, 0xd8], [0x0f, 0x22, 0xc0], [0x0f, 0x01, 0x18],  // MOV CR3/CR0, LIDT [rax]
  [0x88, 0x05, 0xf8, 0xff, 0xff, 0xff],  // MOV [rip-8], al: rewrites code just behind
  [0x88, 0x05, 0x08, 0x00, 0x00, 0x00],  // MOV [rip+8], al: rewrites code 8 bytes ahead
  [0xf3, 0xaa], [0xf3, 0xa4],      // REP STOSB, REP MOVSB
  [0xeb, 0xfe], [0xe8, 0x00, 0x00, 0x00, 0x00],  // JMP $, CALL next
  [0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0x08, 0x00],    // MOV RAX, high address
];

export type InputKind = 'random' | 'mutated';

/** The code of execution `index` of a campaign seeded with `seed`. */
export function hostFuzzInput(seed: bigint, index: number, maxBytes: number): { kind: InputKind; code: Uint8Array } {
  const rng = new Prng(deriveSeed(seed, index));
  const length = 1 + rng.below(Math.min(maxBytes, 256));
  if (rng.chance(1, 3)) {
    const code = new Uint8Array(length);
    for (let i = 0; i < length; i++) code[i] = rng.below(256);
    return { kind: 'random', code };
  }
  // Mutated: snippets and random filler, then byte flips, jumps and self-writes spliced in.
  const out: number[] = [];
  while (out.length < length) {
    if (rng.chance(1, 2)) out.push(...rng.pick(SNIPPETS));
    else out.push(rng.below(256));
  }
  const rounds = rng.below(8);
  for (let r = 0; r < rounds; r++) {
    const at = rng.below(out.length);
    switch (rng.below(4)) {
      case 0: out[at] = out[at]! ^ (1 << rng.below(8)); break;
      case 1: out.splice(at, 0, 0xeb, (256 - rng.below(64)) & 0xff); break;          // short jump back
      case 2: out.splice(at, 0, 0xe9, ...le32(rng.below(0x1000) - 0x800)); break;      // near jump
      default: out[at] = rng.below(256);
    }
  }
  return { kind: 'mutated', code: Uint8Array.from(out.slice(0, maxBytes)) };
}

function le32(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
}

/** Execution `index` alternates platforms so both see every kind of input. */
export function platformOf(index: number): PlatformKind {
  return index % 2 === 0 ? 'tdx' : 'snp';
}
