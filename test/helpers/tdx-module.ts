// The TDX module without a guest run: a TDCALL handed to it directly, as the module's dispatcher
// takes one (intel/tdx-module TDX_1.5.01 tdx_td_dispatcher.c td_call()), so a test sets the
// registers, calls, and reads the leaf's outputs.
import type { VmExit } from '../../src/cpu/exits.js';
import type { Gpr } from '../../src/cpu/registers.js';
import { createTd, type TdOptions } from '../../src/vmm/tdx/run-td.js';

/** The module of a new 8 MiB TD: nothing added, not finalized. */
export function tdxModule(options: Partial<TdOptions> = {}) {
  return createTd({ memoryBytes: 8n << 20n, ...options }).platform.module;
}
export type TdxModule = ReturnType<typeof tdxModule>;

/** One TDCALL with `regs` set; returns the module's step and the vCPU's registers after it. CS 0x08 (CPL 0) unless told. */
export function tdcall(m: TdxModule, regs: Partial<Record<Gpr, bigint>>, cs = 0x08) {
  const r = m.machine.vcpu.regs;
  for (const [name, value] of Object.entries(regs) as [Gpr, bigint][]) r.set(name, value);
  const exit: VmExit = { kind: 'tdcall', rip: r.rip, length: 4, leaf: r.rax, codeBits: 64, cs };
  const step = m.handleExit(exit);
  return { step, regs: r };
}
