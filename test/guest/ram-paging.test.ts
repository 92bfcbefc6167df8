// How the host backs guest RAM (MachineOptions.ramPaging) is never visible to the guest: with
// fault-around the first write the guest may make to a page populates the 64 KiB around it, and a
// zero fill large enough to hand its pages back to the kernel must leave that range to be
// populated again, not taken for populated. The same program gives the same RAM in every mode.
import { describe, expect, it } from 'vitest';
import type { RamPaging } from '../../src/cpu/machine.js';
import { CODE_BASE, runToHlt, simpleGuest } from '../helpers/guest-setup.js';

const BASE = 0x400000n;
// More written pages than a zero fill clears in place (native Fill: 512), so it discards them.
const PAGES = 700;

/** Writes rax, rax + 1, ... to the first qword of rcx pages from rdi, `stride` bytes apart. */
const WRITE_PAGES = `
  again:
    mov [rdi], rax
    add rdi, r8
    inc rax
    dec rcx
    jnz again
    hlt`;

function guestWrites(vm: ReturnType<typeof simpleGuest>, from: bigint, count: number, stride: bigint, first: bigint): void {
  Object.assign(vm.vcpu.regs, { rip: CODE_BASE, rdi: from, rcx: BigInt(count), r8: stride, rax: first });
  runToHlt(vm);
}

function run(ramPaging: RamPaging): Uint8Array[] {
  const vm = simpleGuest(WRITE_PAGES, { ramPaging, memoryBytes: 8n << 20n });
  const bytes = PAGES * 4096;
  try {
    const seen: Uint8Array[] = [];
    guestWrites(vm, BASE + 8n, PAGES, 4096n, 1n);
    seen.push(vm.memory.read(BASE, bytes));
    vm.memory.fill(BASE, BigInt(bytes), 0);
    seen.push(vm.memory.read(BASE, bytes));
    guestWrites(vm, BASE + 0x3000n, PAGES / 4, 0x4000n, 0x100n);
    seen.push(vm.memory.read(BASE, bytes));
    return seen;
  } finally {
    vm.close();
  }
}

describe('guest RAM paging', () => {
  it('fault-around, on-touch and huge pages give the guest the same RAM, through a discarding zero fill', () => {
    const onTouch = run('on-touch');
    const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
    // What the program wrote, and nothing else.
    expect(view(onTouch[0]!).getBigUint64(8, true)).toBe(1n);
    expect(view(onTouch[0]!).getBigUint64((PAGES - 1) * 4096 + 8, true)).toBe(BigInt(PAGES));
    expect(onTouch[1]!.every((b) => b === 0)).toBe(true);
    expect(view(onTouch[2]!).getBigUint64(0x3000, true)).toBe(0x100n);
    expect(view(onTouch[2]!).getBigUint64(0x7000, true)).toBe(0x101n);
    expect(onTouch[2]!.reduce((n, b) => n + (b !== 0 ? 1 : 0), 0)).toBeLessThanOrEqual((PAGES / 4) * 8);
    for (const mode of ['fault-around', 'huge-pages'] as const) {
      const got = run(mode);
      got.forEach((b, i) => expect(Buffer.from(b).equals(Buffer.from(onTouch[i]!)), `${mode}, step ${i}`).toBe(true));
    }
  });
});
