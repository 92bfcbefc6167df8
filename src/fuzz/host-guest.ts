// The host-robustness fuzzer's guest: arbitrary bytes run as 64-bit code on TDX or SNP, with the
// honest VMM, under a small budget. One VM per platform is created once; each execution restores
// its pristine snapshot (CPU, RAM, gate) and builds fresh platform and VMM models over it, then
// launches a handful of pages (tables, stack, the code) the way a VMM would. Exception vectors 0-31
// point into the code itself, so random bytes also reach injection, #VE/#VC and handler loops.
import { flatGuestRam } from '../vmm/guest-ram.js';
import { SNP_C_BIT, TDX_GPA_WIDTH } from '../boot/platforms.js';
import { Machine, type Snapshot } from '../cpu/machine.js';
import { EMULATOR_ABORTED } from '../cpu/exits.js';
import { CR0_PG, CR0_WP, CR4_PAE } from '../cpu/registers.js';
import { SnpPlatform } from '../platform/snp/snp-cpu.js';
import { gpaLevel } from '../platform/tdx/seamcall.js';
import { TdxPlatform } from '../platform/tdx/tdx-platform.js';
import type { PlatformKind } from '../platform/platform.js';
import type { RunOutcome } from '../shared/outcome.js';
import { Trace } from '../shared/trace.js';
import { Console } from '../vmm/console.js';
import { HonestSnpVmm } from '../vmm/snp/honest-vmm.js';
import { runSnp } from '../vmm/snp/run-snp.js';
import { TdxVmm, honestTdxPolicy } from '../vmm/tdx/honest-vmm.js';
import { Vm, runToEnd } from '../vmm/run-vm.js';

const PAGE = 0x1000n;
const MEMORY_BYTES = 8n << 20n;
export const CODE_GPA = 0x1000n;
/** Longest input: the code pages between CODE_GPA and the tables. */
export const MAX_CODE_BYTES = 0x1000;
const GDT_GPA = 0x10000n;
const IDT_GPA = 0x11000n;
const STACK_TOP = 0x80000n;
const PML4_GPA = 0x100000n;

export interface HostExecution {
  outcome: RunOutcome;
  traceSha256: string;
  instructions: bigint;
  exits: number;
}

/** The pages every execution launches besides the code: GDT, IDT, stack, page tables. */
function fixedPages(privateBit: bigint): Map<bigint, Uint8Array> {
  const pages = new Map<bigint, Uint8Array>();
  const page = (gpa: bigint) => { const p = new Uint8Array(Number(PAGE)); pages.set(gpa, p); return new DataView(p.buffer); };
  // GDT: null, 64-bit code at 0x08, data at 0x10 (Intel SDM Vol. 3 §3.4.5).
  const gdt = page(GDT_GPA);
  gdt.setBigUint64(8, 0x00af9b000000ffffn, true);
  gdt.setBigUint64(16, 0x00cf93000000ffffn, true);
  // IDT: 64-bit interrupt gates (SDM Vol. 3 §6.14.1) for vectors 0-31 into the code region.
  const idt = page(IDT_GPA);
  for (let v = 0; v < 32; v++) {
    const handler = CODE_GPA + BigInt((v * 0x3c0) % MAX_CODE_BYTES);
    idt.setUint16(v * 16, Number(handler & 0xffffn), true);
    idt.setUint16(v * 16 + 2, 0x08, true);
    idt.setUint8(v * 16 + 5, 0x8e);
    idt.setUint16(v * 16 + 6, Number((handler >> 16n) & 0xffffn), true);
  }
  page(STACK_TOP - PAGE);
  // Identity map of all RAM with 2 MiB pages, private (SNP: C-bit set; TDX: shared bit clear).
  const pml4 = page(PML4_GPA);
  const pdpt = page(PML4_GPA + PAGE);
  const pd = page(PML4_GPA + 2n * PAGE);
  pml4.setBigUint64(0, (PML4_GPA + PAGE) | privateBit | 3n, true);
  pdpt.setBigUint64(0, (PML4_GPA + 2n * PAGE) | privateBit | 3n, true);
  for (let i = 0n; i < MEMORY_BYTES >> 21n; i++) pd.setBigUint64(Number(i) * 8, (i << 21n) | privateBit | 0x83n, true);
  return pages;
}

const totalExits = (m: Machine) => Object.values(m.vcpu.exitCounts).reduce((a, b) => a + (b ?? 0), 0);

export class HostFuzzGuest {
  readonly platform: PlatformKind;
  readonly #budget: bigint;
  #machine!: Machine;
  #pristine!: Snapshot;
  readonly #fixed: Map<bigint, Uint8Array>;

  /** `budget`: instructions plus host-work charges per execution (native/src/budget.h). */
  constructor(platform: PlatformKind, budget: bigint) {
    this.platform = platform;
    this.#budget = budget;
    this.#fixed = fixedPages(platform === 'snp' ? 1n << BigInt(SNP_C_BIT) : 0n);
    this.#createMachine();
  }

  /** A fresh VM and its pristine snapshot: once at start, and again after the emulator aborted. */
  #createMachine(): void {
    const platform = this.platform;
    const budget = this.#budget;
    this.#machine = new Machine({
      memoryBytes: MEMORY_BYTES, instructionLimit: budget, wallClockTimeoutMs: 0,
      marker: platform === 'tdx' ? { kind: 'tdx-shared-bit', gpaWidth: TDX_GPA_WIDTH } : { kind: 'snp-c-bit', position: SNP_C_BIT },
    });
    // The vCPU enters at the code in 64-bit mode with paging, as a test harness sets it up; the
    // launched pages below give it its tables.
    const vcpu = this.#machine.vcpu;
    vcpu.writeSpecial('gdtrBase', GDT_GPA);
    vcpu.writeSpecial('gdtrLimit', 23n);
    vcpu.writeSpecial('cs', 0x08n);
    vcpu.writeSpecial('ss', 0x10n);
    vcpu.writeSpecial('idtrBase', IDT_GPA);
    vcpu.writeSpecial('idtrLimit', 32n * 16n - 1n);
    vcpu.writeSpecial('cr4', vcpu.readSpecial('cr4') | CR4_PAE);
    vcpu.writeSpecial('cr3', PML4_GPA);
    vcpu.writeSpecial('cr0', vcpu.readSpecial('cr0') | CR0_PG | CR0_WP);
    vcpu.regs.rip = CODE_GPA;
    vcpu.regs.rsp = STACK_TOP;
    this.#pristine = this.#machine.snapshot();
  }

  /** Runs `code` (at most MAX_CODE_BYTES) from the pristine state to an outcome. */
  exec(code: Uint8Array): HostExecution {
    if (code.length > MAX_CODE_BYTES) throw new RangeError(`code is ${code.length} bytes, at most ${MAX_CODE_BYTES}`);
    const machine = this.#machine;
    machine.restore(this.#pristine);
    const before = totalExits(machine);
    const pages = new Map(this.#fixed);
    for (let off = 0; off < MAX_CODE_BYTES; off += Number(PAGE)) {
      const page = new Uint8Array(Number(PAGE));
      page.set(code.subarray(off, off + Number(PAGE)));
      pages.set(CODE_GPA + BigInt(off), page);
    }
    const trace = new Trace();
    const outcome = this.platform === 'tdx' ? this.#runTdx(pages, trace) : this.#runSnp(pages, trace);
    const result = { outcome, traceSha256: trace.sha256(), instructions: machine.vcpu.instructions, exits: totalExits(machine) - before };
    if (outcome.reason.includes(EMULATOR_ABORTED)) {
      // That emulator refuses to run again: later executions need a new one, or they would all be this fault.
      machine.close();
      this.#createMachine();
    }
    return result;
  }

  #runTdx(pages: Map<bigint, Uint8Array>, trace: Trace): RunOutcome {
    const platform = new TdxPlatform(this.#machine, trace, { gpaWidth: TDX_GPA_WIDTH, attributes: 0n });
    const host = platform.handle;
    for (const level of [3, 2, 1] as const) {
      const r = host.memSeptAdd(gpaLevel(0n, level));
      if (r.status !== 0n) throw new Error(`host fuzz setup: SEPT.ADD level ${level} failed: 0x${r.status.toString(16)}`);
    }
    for (const [gpa, bytes] of pages) {
      const r = host.memPageAdd(gpaLevel(gpa, 0), bytes);
      if (r.status !== 0n) throw new Error(`host fuzz setup: PAGE.ADD 0x${gpa.toString(16)} failed: 0x${r.status.toString(16)}`);
    }
    host.mrFinalize();
    const console = new Console();
    const vmm = new TdxVmm({ host, console, trace, gpaWidth: TDX_GPA_WIDTH, memoryBytes: MEMORY_BYTES, ram: flatGuestRam(MEMORY_BYTES) }, honestTdxPolicy);
    return runToEnd(new Vm({ platform, vmm, trace, console }));
  }

  #runSnp(pages: Map<bigint, Uint8Array>, trace: Trace): RunOutcome {
    const platform = new SnpPlatform(this.#machine, { trace, cBit: SNP_C_BIT });
    const host = platform.handle;
    for (const [gpa, bytes] of pages) {
      const assign = host.rmpUpdate(gpa, { assigned: true, pageSize: '4k', immutable: true, gpa, asid: host.asid });
      const launched = assign.rc === 0 ? host.launchUpdatePage(gpa, 'NORMAL', bytes) : assign;
      if (launched.rc !== 0) throw new Error(`host fuzz setup: launching 0x${gpa.toString(16)} failed: ${launched.result}`);
    }
    host.launchFinish();
    return runSnp(platform, new HonestSnpVmm());
  }

  close(): void {
    this.#machine.close();
  }
}
