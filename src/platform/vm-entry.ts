// One VM entry as both platforms model it (TDH.VP.ENTER on TDX, VMRUN on SNP): the vCPUs run until
// the trusted side has an exit for the VMM or the run ends. Exits the hardware handles itself
// (TDCALLs, PVALIDATE, #VE/#VC delivery) resume in place. With several vCPUs, each such exit, the
// end of a quantum and a PAUSE are switch points (src/cpu/vcpu-scheduler.ts). Both platforms share
// this loop so that what happens around every exit (the scheduler, the content watch's reads) is
// written once.
import type { VmExit } from '../cpu/exits.js';
import { executeRandomInstruction } from '../cpu/hardware-random.js';
import { executeRdtsc } from '../cpu/virtual-tsc.js';
import type { Machine } from '../cpu/machine.js';
import type { VcpuScheduler } from '../cpu/vcpu-scheduler.js';
import type { Trace, TraceValue } from '../shared/trace.js';
import { recordForeignReads } from './foreign-content.js';
import type { PlatformStep } from './platform.js';

/** IA32_TSC_AUX, which RDTSCP reads into ECX. */
const MSR_TSC_AUX = 0xc0000103;

/** What the hardware model did with one exit: `undefined` when the guest resumes, else the step for the VMM. */
export type HardwareHandled<Exit> = PlatformStep<Exit> | undefined;

export function enterVm<Exit>(
  machine: Machine,
  scheduler: VcpuScheduler | undefined,
  recordHw: (type: string, fields: Record<string, TraceValue>) => void,
  handleExit: (exit: VmExit) => HardwareHandled<Exit>,
): PlatformStep<Exit> {
  for (;;) {
    const exit = machine.vcpu.run();
    recordForeignReads(machine, recordHw);
    if (scheduler?.takesExit(exit)) continue;
    const step = handleExit(exit);
    if (step) return step;
    scheduler?.switchPoint('exit');
  }
}

/**
 * RDRAND/RDSEED, RDTSC and PAUSE, which neither platform intercepts, completed as the CPU would:
 * the values follow the run's seed (src/cpu/hardware-random.ts, src/cpu/virtual-tsc.ts).
 */
export function runsOnCpu(machine: Machine, trace: Trace, exit: Extract<VmExit, { kind: 'random' | 'rdtsc' | 'pause' }>): { kind: 'resume' } {
  const regs = machine.vcpu.regs;
  if (exit.kind === 'random') {
    const value = executeRandomInstruction(regs, exit, machine.random);
    trace.record('hw', exit.instruction, { rip: exit.rip, value });
  } else if (exit.kind === 'rdtsc') {
    executeRdtsc(regs, exit, machine.tsc, () => machine.vcpu.readMsr(MSR_TSC_AUX));
  } else {
    machine.vcpu.complete(exit);
  }
  return { kind: 'resume' };
}
