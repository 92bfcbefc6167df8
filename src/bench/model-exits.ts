// Exits through the whole stack (issue 11): a guest loop of acceptances of PENDING 4K pages,
// each one a vCPU exit handled by the real hardware model (TDX module: TDG.MEM.PAGE.ACCEPT; SNP:
// PVALIDATE) inside the real run loop with the honest VMM and the trace on, as in a boot. Timed
// with tinybench in batches (error margins for free); the host makes the next batch of pages
// PENDING before each batch, outside the timed window. Beside the wall time, the benchmark thread's
// own CPU time and its wait for a CPU over the same batches (thread-time.ts): on a shared machine
// the wall time is mostly the latter.
import { Bench } from 'tinybench';
import { Machine } from '../cpu/machine.js';
import { gpaLevel } from '../platform/tdx/seamcall.js';
import { SnpPlatform } from '../platform/snp/snp-cpu.js';
import type { RunOutcome } from '../shared/outcome.js';
import { Trace } from '../shared/trace.js';
import { HonestSnpVmm } from '../vmm/snp/honest-vmm.js';
import { runSnp } from '../vmm/snp/run-snp.js';
import { ensureSeptLevels } from '../vmm/tdx/honest-vmm.js';
import { createTd, runTd } from '../vmm/tdx/run-td.js';
import { ThreadTimeMeter } from './thread-time.js';

const PAGE = 0x1000n;
const CODE = 0x1000n, GDT = 0x2000n, PML4 = 0x3000n, PDPT = 0x4000n, STACK_TOP = 0x8000n;
/** Pages [0, BOOT_BYTES) hold code, GDT, page tables and stack; acceptance starts above 2 MiB. */
const BOOT_BYTES = 0x8000n;
const FIRST_PENDING = 0x200000n;
const MEMORY = 64n << 30n;

// The loops, from GNU as (rbx = first GPA, r8 = end; r9 ORs every status, so 0 means all succeeded).
// TDX: 1: mov rcx, rbx; mov eax, 6; tdcall; or r9, rax; add rbx, 0x1000; cmp rbx, r8; jb 1b;
// then TDG.VP.VMCALL<Instruction.HLT>: xor eax, eax; mov ecx, 0x1c00; xor r10d, r10d;
// mov r11d, 12; xor r12d, r12d; tdcall
const TDX_ACCEPT_LOOP = [
  0x48, 0x89, 0xd9, 0xb8, 0x06, 0, 0, 0, 0x66, 0x0f, 0x01, 0xcc, 0x49, 0x09, 0xc1,
  0x48, 0x81, 0xc3, 0x00, 0x10, 0, 0, 0x4c, 0x39, 0xc3, 0x72, 0xe5,
  0x31, 0xc0, 0xb9, 0x00, 0x1c, 0, 0, 0x45, 0x31, 0xd2, 0x41, 0xbb, 0x0c, 0, 0, 0, 0x45, 0x31, 0xe4,
  0x66, 0x0f, 0x01, 0xcc, 0xf4,
];
// SNP: 1: mov rax, rbx; xor ecx, ecx; mov edx, 1; pvalidate; or r9, rax; add rbx, 0x1000; cmp rbx, r8; jb 1b; hlt
const SNP_PVALIDATE_LOOP = [
  0x48, 0x89, 0xd8, 0x31, 0xc9, 0xba, 0x01, 0, 0, 0, 0xf2, 0x0f, 0x01, 0xff, 0x49, 0x09, 0xc1,
  0x48, 0x81, 0xc3, 0x00, 0x10, 0, 0, 0x4c, 0x39, 0xc3, 0x72, 0xe3, 0xf4,
];

/**
 * Code, a flat GDT (64-bit code at 0x08) and 1 GiB identity pages over all of RAM with `leafBits`
 * ORed into each leaf (SNP: the C-bit), paging on. Returns nothing: the machine is ready at CODE.
 */
function layOut(vm: Machine, code: number[], leafBits: bigint): void {
  vm.memory.write(CODE, Uint8Array.from(code));
  const gdt = Buffer.alloc(24);
  gdt.writeBigUInt64LE(0x00af9b000000ffffn, 8);  // present, code, L=1
  gdt.writeBigUInt64LE(0x00cf93000000ffffn, 16); // present, data, writable
  vm.memory.write(GDT, gdt);
  vm.memory.writeU64(PML4, PDPT | 3n);
  for (let i = 0n; i < vm.memoryBytes >> 30n; i++) vm.memory.writeU64(PDPT + i * 8n, (i << 30n) | 0x83n | leafBits);
  const v = vm.vcpu;
  v.writeSpecial('gdtrBase', GDT);
  v.writeSpecial('gdtrLimit', 23n);
  v.writeSpecial('cs', 0x08n);
  v.writeSpecial('ss', 0x10n);
  v.writeSpecial('cr4', v.readSpecial('cr4') | (1n << 5n));        // PAE
  v.writeSpecial('cr3', PML4);
  v.writeSpecial('cr0', v.readSpecial('cr0') | (1n << 31n) | (1n << 16n));  // PG, WP
  v.regs.rsp = STACK_TOP;
}

/** One platform's accept loop: `prepare(first, count)` makes pages PENDING, `run()` accepts them. */
interface AcceptRig {
  prepare(first: bigint, count: number): void;
  run(first: bigint, count: number): void;
  machine: Machine;
}

/** Runs the loop over [first, first + count pages) to its end; every acceptance must succeed. */
function runLoop(what: string, machine: Machine, first: bigint, count: number, run: () => RunOutcome): void {
  const regs = machine.vcpu.regs;
  regs.rip = CODE;
  regs.rbx = first;
  regs.r8 = first + BigInt(count) * PAGE;
  regs.r9 = 0n;
  const outcome = run();
  if (outcome.outcome !== 'done' || regs.r9 !== 0n) throw new Error(`model exits (${what}): ${outcome.outcome} ${outcome.reason}, statuses 0x${regs.r9.toString(16)}`);
}

function tdxRig(): AcceptRig {
  const td = createTd({ memoryBytes: MEMORY, gpaWidth: 48, trace: new Trace({ keep: false }) });
  const machine = td.platform.machine;
  const host = td.platform.handle;
  layOut(machine, TDX_ACCEPT_LOOP, 0n);
  ensureSeptLevels(host, 0n, 0);
  for (let gpa = 0n; gpa < BOOT_BYTES; gpa += PAGE) {
    if (host.memPageAdd(gpaLevel(gpa, 0), machine.memory.read(gpa, 4096)).status !== 0n) throw new Error('model exits: PAGE.ADD failed');
  }
  if (host.mrFinalize().status !== 0n) throw new Error('model exits: MR.FINALIZE failed');
  return {
    machine,
    prepare(first, count) {
      for (let i = 0; i < count; i++) {
        const gpa = first + BigInt(i) * PAGE;
        ensureSeptLevels(host, gpa, 0);
        if (host.memPageAug(gpaLevel(gpa, 0)).status !== 0n) throw new Error('model exits: PAGE.AUG failed');
      }
    },
    run: (first, count) => runLoop('TDX', machine, first, count, () => runTd(td)),
  };
}

function snpRig(): AcceptRig {
  const cBit = 51;
  const machine = new Machine({ memoryBytes: MEMORY, marker: { kind: 'snp-c-bit', position: cBit } });
  const platform = new SnpPlatform(machine, { trace: new Trace({ keep: false }), cBit });
  layOut(machine, SNP_PVALIDATE_LOOP, 1n << BigInt(cBit));
  platform.launchUpdateRange(0n, BOOT_BYTES);
  platform.launchFinish();
  const vmm = new HonestSnpVmm();
  return {
    machine,
    prepare(first, count) {
      for (let i = 0; i < count; i++) {
        const gpa = first + BigInt(i) * PAGE;
        if (platform.rmpUpdate(gpa, { assigned: true, pageSize: '4k', gpa, asid: platform.asid }).rc !== 0) throw new Error('model exits: RMPUPDATE failed');
      }
    },
    run: (first, count) => runLoop('SNP', machine, first, count, () => runSnp(platform, vmm)),
  };
}

export interface ModelExitRate {
  /** From the mean wall time per sample. */
  exitsPerSecond: number;
  microsecondsPerExit: number;
  rmePercent: number;
  samples: number;
  /**
   * Over the same samples: the thread's time on a CPU and its time runnable but waiting for one,
   * per exit (undefined where the kernel does not report them). On an idle machine the wall time
   * is the first; what is left is other processes' load.
   */
  cpuMicrosecondsPerExit: number | undefined;
  waitMicrosecondsPerExit: number | undefined;
}
export interface ModelExitBench { tdx: ModelExitRate; snp: ModelExitRate; targetMicroseconds: number }

/** Accepts `batch` PENDING 4K pages per timed sample, on TDX and on SNP. */
export function benchModelExits(batch = 500, timeMs = 1500): ModelExitBench {
  const rigs = { tdx: tdxRig(), snp: snpRig() };
  const next = { tdx: FIRST_PENDING, snp: FIRST_PENDING };
  const bench = new Bench({ time: timeMs, warmupTime: 200, iterations: 8 });
  const meters = { tdx: new ThreadTimeMeter(), snp: new ThreadTimeMeter() };
  const measuredExits = { tdx: 0, snp: 0 };
  for (const p of ['tdx', 'snp'] as const) {
    bench.add(p, () => {
      meters[p].measure(() => rigs[p].run(next[p], batch));
      measuredExits[p] += batch;
      next[p] += BigInt(batch) * PAGE;
    }, {
      beforeEach: () => rigs[p].prepare(next[p], batch),
      // Thread times cover the timed samples only, not the warm-up.
      beforeAll: (mode) => {
        if (mode !== 'run') return;
        meters[p] = new ThreadTimeMeter();
        measuredExits[p] = 0;
      },
    });
  }
  bench.runSync();
  rigs.tdx.machine.close();
  rigs.snp.machine.close();
  const rate = (name: 'tdx' | 'snp'): ModelExitRate => {
    const r = bench.getTask(name)?.result;
    if (r && 'error' in r && r.error) throw r.error;
    if (!r || !('latency' in r)) throw new Error(`model exits: no result for ${name}`);
    const perExitMs = r.latency.mean / batch;
    const meter = meters[name], exits = measuredExits[name];
    const perExitUs = (ns: number) => (meter.supported && exits > 0 ? ns / exits / 1000 : undefined);
    return {
      exitsPerSecond: 1000 / perExitMs, microsecondsPerExit: perExitMs * 1000, rmePercent: r.latency.rme, samples: r.latency.samplesCount,
      cpuMicrosecondsPerExit: perExitUs(meter.runNs), waitMicrosecondsPerExit: perExitUs(meter.waitNs),
    };
  };
  return { tdx: rate('tdx'), snp: rate('snp'), targetMicroseconds: 5 };
}
