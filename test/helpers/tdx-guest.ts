// Tiny TD guests for TDX tests: the helper lays out code, GDT, IDT, stack and identity page tables
// in [0, 2 MiB), brings them in with TDH.MEM.PAGE.ADD (code measured with MR.EXTEND), finalizes,
// and leaves everything above 2 MiB FREE for the guest to accept. Guest code is wrapped with fixed
// exception handlers (overridable) so tests can assert on what the guest saw.
import { createTd, runTd, type Td, type TdOptions } from '../../src/vmm/tdx/run-td.js';
import type { RunOutcome } from '../../src/shared/outcome.js';
import { gpaLevel } from '../../src/platform/tdx/seamcall.js';
import type { SeptLevel } from '../../src/platform/tdx/sept-states.js';
import { CODE_BASE, STACK_TOP, enablePaging, installGdt, installIdt, loadCode, loadTss } from './guest-setup.js';

export const TDCALL = '.byte 0x66, 0x0f, 0x01, 0xcc';
/**
 * Ends a test guest: TDG.VP.VMCALL<Instruction.HLT>, which the honest VMM answers by stopping
 * with `done`. A plain HLT raises #VE in a TD (tdx_td_dispatcher.c). Clobbers RAX, RCX, R10, R11.
 */
export const HALT = `xor eax, eax\n mov ecx, 0xc00\n xor r10d, r10d\n mov r11d, 12\n ${TDCALL}`;

/** Far-returns into a 32-bit code segment (GDT slot 0x18, added with a larger GDT limit). */
export const TO_COMPAT_MODE = `
      mov rax, 0x00cf9b000000ffff
      mov [0x10018], rax
      mov rax, 0x3f
      mov word ptr [0x30000], ax
      mov qword ptr [0x30002], 0x10000
      lgdt [0x30000]
      push 0x18
      lea rax, [rip + compat]
      push rax
      retfq
    compat:`;

/**
 * IRETQs to CPL 1, 2 or 3 and goes on at the line after it: 64-bit code (or 32-bit, `codeBits: 32`:
 * compatibility mode; write the next lines with .code32) of that DPL in GDT slot 0x18
 * (CS 0x18 | CPL), data in slot 0x20 (SS 0x20 | CPL), same stack (supervisor pages stay
 * accessible below CPL 3; at CPL 3 the code and stack must be on user pages), and a TSS whose
 * RSP0 is that stack too (loadTss: an exception below CPL 0 runs its CPL 0 handler there). The
 * GDT descriptor is built at 0x30000. Clobbers RAX, RCX.
 */
export function toCpl(cpl: 1 | 2 | 3, options: { codeBits?: 32 | 64 } = {}): string {
  // Flags nibble: L = 1 for 64-bit code, D = 1 for 32-bit (compatibility mode), G = 1 either way.
  const flags = options.codeBits === 32 ? 'c' : 'a';
  return `
      mov rax, 0x00${flags}f${(0x9b | (cpl << 5)).toString(16)}000000ffff
      mov [0x10018], rax
      mov rax, 0x00cf${(0x93 | (cpl << 5)).toString(16)}000000ffff
      mov [0x10020], rax
      mov word ptr [0x30000], 55
      mov qword ptr [0x30002], 0x10000
      lgdt [0x30000]
      ${loadTss('rsp')}
      mov rcx, rsp
      push ${0x20 | cpl}
      push rcx
      push 0x2
      push ${0x18 | cpl}
      lea rax, [rip + 1f]
      push rax
      iretq
    1:`;
}

/** Guest-virtual alias of GPA 0 through the shared bit (GPAW 48), mapped 2M pages over the whole RAM. */
export const SHARED_VA = 0x4000000000n;
export const IRQ_VECTOR = 0x30;
export const BOOT_BYTES = 0x200000n;
export const HANDLER = { ve: CODE_BASE + 0x100n, df: CODE_BASE + 0x200n, gp: CODE_BASE + 0x300n, ud: CODE_BASE + 0x400n, irq: CODE_BASE + 0x500n };

export interface TdGuestOptions extends Partial<TdOptions> {
  /** Replace a default handler body (defaults: #VE/#DF/#GP/#UD put the vector in R15 and HALT; IRQ increments R14 and IRETQ). */
  ve?: string; df?: string; gp?: string; ud?: string; irq?: string;
  /** Extra assembly placed after the handlers and before `main` (data, subroutines). */
  extra?: string;
  /** More IDT entries (vector → handler address, e.g. a label placed in `extra` with `.org`). */
  idt?: Record<number, bigint>;
  /** Skip the boot sequence (no PAGE.ADD / finalize): the test drives the host itself. */
  noBoot?: boolean;
}

/**
 * A 4 GiB TD (GPAW 48) whose firmware volume is one PAGE.ADDed page below 4 GiB with `code` at the
 * reset vector 0xFFFFFFF0, finalized, then run from TDH.VP.INIT's state for `instructions`
 * instructions: the step that ends the run (a budget outcome when the code ran that far).
 */
export function runAtResetVector(code: readonly number[], instructions = 4n, options: Partial<TdOptions> = {}) {
  const td = createTd({ memoryBytes: 4n << 30n, gpaWidth: 48, ...options });
  const host = td.platform.handle;
  host.vpInit(0n);
  for (const [level, mask] of [[3, (1n << 39n) - 1n], [2, (1n << 30n) - 1n], [1, (1n << 21n) - 1n]] as const) {
    const status = host.memSeptAdd(gpaLevel(0xfffff000n & ~mask, level)).status;
    if (status !== 0n) throw new Error(`SEPT.ADD of level ${level} failed: 0x${status.toString(16)}`);
  }
  const page = new Uint8Array(4096);
  page.set(code, 0xff0);
  const added = host.addMeasuredPage(0xfffff000n, page).status;
  const finalized = host.mrFinalize().status;
  if (added !== 0n || finalized !== 0n) throw new Error(`PAGE.ADD 0x${added.toString(16)}, MR.FINALIZE 0x${finalized.toString(16)}`);
  const vcpu = td.platform.machine.vcpu;
  vcpu.instructionLimit = vcpu.instructions + instructions;
  vcpu.budgetLimit = vcpu.budgetLimit + instructions;
  return { td, step: td.platform.step() };
}

export function tdGuest(main: string, options: TdGuestOptions = {}): Td {
  const td = createTd({ memoryBytes: 32n << 20n, ...options });
  const vm = td.platform.machine;
  const source = `
    jmp main
  .org 0x100
    ${options.ve ?? `mov r15, 20\n ${HALT}`}
  .org 0x200
    ${options.df ?? `mov r15, 8\n ${HALT}`}
  .org 0x300
    ${options.gp ?? `mov r15, 13\n ${HALT}`}
  .org 0x400
    ${options.ud ?? `mov r15, 6\n ${HALT}`}
  .org 0x500
    ${options.irq ?? 'inc r14\n iretq'}
  .org 0x600
    ${options.extra ?? ''}
  main:
    ${main}
  `;
  const code = loadCode(vm, source);
  installGdt(vm);
  installIdt(vm, { 20: HANDLER.ve, 8: HANDLER.df, 13: HANDLER.gp, 6: HANDLER.ud, [IRQ_VECTOR]: HANDLER.irq, ...options.idt });
  const sharedBit = 1n << BigInt((options.gpaWidth ?? 48) - 1);
  enablePaging(vm, [
    { va: 0n, pa: 0n, size: vm.memoryBytes, pageSize: 0x200000n },
    { va: SHARED_VA, pa: 0n, size: vm.memoryBytes, pageSize: 0x200000n, extraBits: sharedBit },
  ]);
  vm.vcpu.regs.rsp = STACK_TOP;
  if (!options.noBoot) {
    const host = td.platform.module.host;
    const codeEnd = CODE_BASE + BigInt(code.byteLength + 0xfff) & ~0xfffn;
    for (let level = host.septTopLevel; level >= 1; level = (level - 1) as SeptLevel) {
      const r = host.memSeptAdd(gpaLevel(0n, level));
      if (r.status !== 0n) throw new Error(`SEPT.ADD level ${level} failed: 0x${r.status.toString(16)}`);
    }
    for (let gpa = 0n; gpa < BOOT_BYTES; gpa += 0x1000n) {
      const page = vm.memory.read(gpa, 4096);
      const r = gpa >= CODE_BASE && gpa < codeEnd ? host.addMeasuredPage(gpa, page) : host.memPageAdd(gpaLevel(gpa, 0), page);
      if (r.status !== 0n) throw new Error(`PAGE.ADD 0x${gpa.toString(16)} failed: 0x${r.status.toString(16)}`);
    }
    const f = host.mrFinalize();
    if (f.status !== 0n) throw new Error('finalize failed');
  }
  return td;
}

export function runTdGuest(main: string, options: TdGuestOptions = {}): { td: Td; outcome: RunOutcome } {
  const td = tdGuest(main, options);
  return { td, outcome: runTd(td) };
}

/** Assembly: TDG.MEM.PAGE.ACCEPT of `gpa` at `level`; RAX = status afterwards. */
export function acceptAsm(gpa: bigint, level = 0): string {
  return `mov rax, 6\n mov rcx, 0x${(gpa | BigInt(level)).toString(16)}\n ${TDCALL}`;
}
