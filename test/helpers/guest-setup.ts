// Builds what a tiny guest needs before its first instruction: page tables, a GDT with a
// 64-bit code segment, an IDT, a stack. Tests compose these; nothing here runs guest code.
import { Machine, type MachineOptions } from '../../src/cpu/machine.js';
import { CR0_PG, CR0_WP, CR4_PAE } from '../../src/cpu/registers.js';
import { assemble } from './assemble.js';

export const CODE_BASE = 0x1000n;
export const GDT_BASE = 0x10000n;
export const IDT_BASE = 0x11000n;
export const STACK_TOP = 0x80000n;
export const PT_BASE = 0x100000n;  // page tables are built from here up
export const KERNEL_CS = 0x08n;
/**
 * Assembly that IRETQs to CPL 3 (user code selector 0x1b, user data 0x23, stack 0x70000,
 * RFLAGS 2) and goes on at the line after it; the GDT must hold those two user descriptors.
 */
export const IRETQ_TO_CPL3 = `
      push 0x23
      push 0x70000
      push 0x2
      push 0x1b
      lea rax, [rip + user]
      push rax
      iretq
    user:`;

/** Where loadTss puts the 64-bit TSS: in the page the CPL > 0 helpers build their GDT descriptor in (0x30000). */
export const TSS_BASE = 0x30100n;

/**
 * Asm: a 64-bit TSS at TSS_BASE with RSP0 = `rsp0` (an operand: a register or an immediate) and
 * IST1 = `ist1`, its 16-byte available-TSS descriptor in GDT slot 0x28 (limit `limit`), loaded
 * into TR. A guest that runs below CPL 0 needs it: an exception there switches to RSP0 (Intel
 * SDM Vol. 3 §6.14.4). Run it after an LGDT whose limit covers slot 0x28 (55). Clobbers RAX.
 */
export function loadTss(rsp0: string, options: { limit?: number; ist1?: bigint } = {}): string {
  const limit = BigInt(options.limit ?? 0x67);
  const low = limit | ((TSS_BASE & 0xffffn) << 16n) | (((TSS_BASE >> 16n) & 0xffn) << 32n) | (0x89n << 40n);
  return `
      mov rax, 0x${low.toString(16)}
      mov [0x10028], rax
      mov qword ptr [0x10030], 0
      mov rax, ${rsp0}
      mov [0x${(TSS_BASE + 4n).toString(16)}], rax
      mov rax, 0x${(options.ist1 ?? 0n).toString(16)}
      mov [0x${(TSS_BASE + 0x24n).toString(16)}], rax
      mov ax, 0x28
      ltr ax`;
}

/** Makes [0, bytes) accessible for private reads and writes. */
export function acceptAll(vm: Machine, bytes = vm.memoryBytes): void {
  vm.gate.set('private', 0n, bytes, 'readwrite');
}

/** Loads code at `origin` and points RIP at it, with a stack. */
export function loadCode(vm: Machine, source: string, origin = CODE_BASE): Uint8Array {
  const bin = assemble(source, origin);
  vm.memory.write(origin, bin);
  vm.vcpu.regs.rip = origin;
  vm.vcpu.regs.rsp = STACK_TOP;
  return bin;
}

/** A flat GDT: null, 64-bit code at 0x08, data at 0x10. */
export function installGdt(vm: Machine): void {
  const gdt = Buffer.alloc(24);
  gdt.writeBigUInt64LE(0x00af9b000000ffffn, 8);  // present, code, L=1
  gdt.writeBigUInt64LE(0x00cf93000000ffffn, 16); // present, data, writable
  vm.memory.write(GDT_BASE, gdt);
  vm.vcpu.writeSpecial('gdtrBase', GDT_BASE);
  vm.vcpu.writeSpecial('gdtrLimit', 23n);
  vm.vcpu.writeSpecial('cs', KERNEL_CS);
  vm.vcpu.writeSpecial('ss', 0x10n);
}

/** IDT entries (64-bit interrupt gates, selector 0x08) for `handlers`: vector -> address. */
export function installIdt(vm: Machine, handlers: Record<number, bigint>, options: { trapGate?: boolean; ist?: number } = {}): void {
  const idt = Buffer.alloc(256 * 16);
  for (const [vec, addr] of Object.entries(handlers)) {
    const o = Number(vec) * 16;
    idt.writeUInt16LE(Number(addr & 0xffffn), o);
    idt.writeUInt16LE(Number(KERNEL_CS), o + 2);
    idt.writeUInt8(options.ist ?? 0, o + 4);
    idt.writeUInt8(options.trapGate ? 0x8f : 0x8e, o + 5);
    idt.writeUInt16LE(Number((addr >> 16n) & 0xffffn), o + 6);
    idt.writeUInt32LE(Number(addr >> 32n), o + 8);
  }
  vm.memory.write(IDT_BASE, idt);
  vm.vcpu.writeSpecial('idtrBase', IDT_BASE);
  vm.vcpu.writeSpecial('idtrLimit', BigInt(256 * 16 - 1));
}

export interface Mapping {
  va: bigint;
  pa: bigint;
  size: bigint;                   // multiple of pageSize
  pageSize: 4096n | 0x200000n | 0x40000000n;
  writable?: boolean;             // default true
  noExecute?: boolean;
  extraBits?: bigint;             // ORed into leaf entries (e.g. a C-bit or shared bit)
  /** U/S = 1 in the leaf and in every table entry above it (a user-mode page: SDM Vol. 3A §4.6.1). */
  user?: boolean;
}

/**
 * Builds 4-level page tables for `mappings` at PT_BASE (or `base`) and turns paging on
 * (CR4.PAE, CR3, CR0.PG|WP). Returns the first address after the tables.
 */
export function enablePaging(vm: Machine, mappings: Mapping[], base = PT_BASE, options: { nxe?: boolean } = {}): bigint {
  let next = base;
  const alloc = (): bigint => { const a = next; next += 0x1000n; vm.memory.fill(a, 0x1000n, 0); return a; };
  const pml4 = alloc();
  const P = 1n, RW = 2n, US = 4n, PS = 0x80n, NX = 1n << 63n;
  let userPath = 0n;  // US while a user mapping is laid out: the tables on its path get it too
  const child = (table: bigint, index: bigint): bigint => {
    const e = vm.memory.readU64(table + index * 8n);
    if (e & P) {
      if (userPath) vm.memory.writeU64(table + index * 8n, e | userPath);
      return e & 0x000ffffffffff000n;
    }
    const t = alloc();
    vm.memory.writeU64(table + index * 8n, t | P | RW | userPath);
    return t;
  };
  for (const m of mappings) {
    userPath = m.user ? US : 0n;
    for (let off = 0n; off < m.size; off += m.pageSize) {
      const va = m.va + off, pa = m.pa + off;
      const leaf = pa | P | (m.writable === false ? 0n : RW) | (m.noExecute ? NX : 0n) | (m.extraBits ?? 0n) | userPath;
      const pdpt = child(pml4, (va >> 39n) & 511n);
      if (m.pageSize === 0x40000000n) { vm.memory.writeU64(pdpt + ((va >> 30n) & 511n) * 8n, leaf | PS); continue; }
      const pd = child(pdpt, (va >> 30n) & 511n);
      if (m.pageSize === 0x200000n) { vm.memory.writeU64(pd + ((va >> 21n) & 511n) * 8n, leaf | PS); continue; }
      const pt = child(pd, (va >> 21n) & 511n);
      vm.memory.writeU64(pt + ((va >> 12n) & 511n) * 8n, leaf);
    }
  }
  if (options.nxe) vm.vcpu.writeSpecial('efer', vm.vcpu.readSpecial('efer') | (1n << 11n));
  vm.vcpu.writeSpecial('cr4', vm.vcpu.readSpecial('cr4') | CR4_PAE);
  vm.vcpu.writeSpecial('cr3', pml4);
  vm.vcpu.writeSpecial('cr0', vm.vcpu.readSpecial('cr0') | CR0_PG | CR0_WP);
  return next;
}

/** A VM (16 MiB unless `options` say otherwise) with all RAM accepted, a GDT and `source` loaded at CODE_BASE. */
export function simpleGuest(source: string, options: Partial<MachineOptions> = {}): Machine {
  const vm = new Machine({ ...options, memoryBytes: options.memoryBytes ?? 16n << 20n });
  acceptAll(vm);
  installGdt(vm);
  loadCode(vm, source);
  return vm;
}

/** Runs until HLT, answering nothing: any other exit fails the caller's expectation. */
export function runToHlt(vm: Machine) {
  const exit = vm.vcpu.run();
  if (exit.kind !== 'hlt') throw new Error(`expected hlt, got ${JSON.stringify(exit, (_, v) => typeof v === 'bigint' ? `0x${v.toString(16)}` : v)}`);
  return exit;
}
