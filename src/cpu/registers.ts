// Register names. General-purpose registers, RIP and RFLAGS live in the shared run area;
// the rest are read and written through the native machine by id.

/** General-purpose registers, RIP and RFLAGS, in x86 encoding order (run-area order). */
export const GPRS = [
  'rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags',
] as const;
export type Gpr = (typeof GPRS)[number];
export const GPR_INDEX: Readonly<Record<Gpr, number>> = Object.fromEntries(GPRS.map((r, i) => [r, i])) as Record<Gpr, number>;

/** Control, segment and descriptor-table registers, numbered as native/src/machine.cc kSpecialRegs. */
export const SPECIAL_REGISTERS = [
  'cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer',
  'cs', 'ss', 'ds', 'es', 'fs', 'gs', 'fsBase', 'gsBase',
  'gdtrBase', 'gdtrLimit', 'idtrBase', 'idtrLimit', 'trSelector', 'trBase', 'trLimit',
] as const;
export type SpecialRegister = (typeof SPECIAL_REGISTERS)[number];
export const SPECIAL_INDEX: Readonly<Record<SpecialRegister, number>> =
  Object.fromEntries(SPECIAL_REGISTERS.map((r, i) => [r, i])) as Record<SpecialRegister, number>;

export const RFLAGS = {
  CF: 1n << 0n,
  PF: 1n << 2n,
  AF: 1n << 4n,
  ZF: 1n << 6n,
  SF: 1n << 7n,
  TF: 1n << 8n,
  IF: 1n << 9n,
  OF: 1n << 11n,
} as const;

export const CR0_PG = 1n << 31n;
export const CR0_WP = 1n << 16n;
export const CR4_PAE = 1n << 5n;
/** CR4.DE (bit 3): debug extensions; DR4/DR5 are then reserved, not aliases of DR6/DR7 (SDM Vol. 3A §2.5). */
export const CR4_DE = 1n << 3n;
/** CR4.PCE (bit 8): RDPMC allowed at any CPL (SDM Vol. 3A §2.5). */
export const CR4_PCE = 1n << 8n;
/** CR4.OSXSAVE (bit 18): XSETBV/XGETBV enabled (SDM Vol. 3A §2.5). */
export const CR4_OSXSAVE = 1n << 18n;
export const EFER_NXE = 1n << 11n;
