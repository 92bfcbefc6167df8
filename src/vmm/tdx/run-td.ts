// Builds a TD (machine + TDX module + honest-or-not VMM) and runs it: vCPU → TDX module → VMM,
// until a RunOutcome. Nothing the guest does escapes as an exception: unexpected errors become
// `vmm-error` outcomes.
import { Machine } from '../../cpu/machine.js';
import { TdModule, type TdConfig } from '../../platform/tdx/td-module.js';
import { Console } from '../console.js';
import type { RunOutcome } from '../../shared/outcome.js';
import { Trace } from '../../shared/trace.js';
import { TdxVmm, honestTdxPolicy, type TdxVmmPolicy } from './honest-vmm.js';

export interface TdOptions extends Partial<TdConfig> {
  memoryBytes: bigint;
  countInstructions?: boolean;
  instructionLimit?: bigint;
  trace?: Trace;
  console?: Console;
  policy?: TdxVmmPolicy;
}

export interface Td {
  machine: Machine;
  module: TdModule;
  vmm: TdxVmm;
  trace: Trace;
  console: Console;
}

export function createTd(options: TdOptions): Td {
  const gpaWidth = options.gpaWidth ?? 48;
  const machine = new Machine({
    memoryBytes: options.memoryBytes, countInstructions: options.countInstructions ?? true,
    marker: { kind: 'tdx-shared-bit', gpaWidth },
    ...(options.instructionLimit !== undefined ? { instructionLimit: options.instructionLimit } : {}),
  });
  const trace = options.trace ?? new Trace();
  const console = options.console ?? new Console();
  const config: TdConfig = { gpaWidth, attributes: options.attributes ?? 0n };
  if (options.numVcpus !== undefined) config.numVcpus = options.numVcpus;
  if (options.maxVcpus !== undefined) config.maxVcpus = options.maxVcpus;
  if (options.configFlags !== undefined) config.configFlags = options.configFlags;
  const module = new TdModule(machine, trace, config);
  const vmm = new TdxVmm({ host: module.host, console, trace, gpaWidth, memoryBytes: options.memoryBytes }, options.policy ?? honestTdxPolicy);
  return { machine, module, vmm, trace, console };
}

export interface RunTdOptions {
  /** Stop (vmm-error) after this many TD exits in a row at the same RIP without the guest moving on. */
  maxStalledExits?: number;
}

export function runTd(td: Td, options: RunTdOptions = {}): RunOutcome {
  const maxStalled = options.maxStalledExits ?? 64;
  let stalled = 0;
  let lastExit = '';
  const finish = (outcome: RunOutcome): RunOutcome => {
    td.trace.record('vmm', 'outcome', { outcome: outcome.outcome, reason: outcome.reason });
    td.console.flush();
    return outcome;
  };
  try {
    for (;;) {
      const exit = td.machine.vcpu.run();
      const step = td.module.handleExit(exit);
      if (step.kind === 'resume') continue;
      if (step.kind === 'stop') return finish(step.outcome);
      const tdExit = step.exit;
      // The same EPT violation (RIP and GPA) over and over means the VMM is not resolving it.
      // A loop of ACCEPTs at one RIP over successive GPAs is progress, not a stall.
      const key = tdExit.reason === 'ept-violation' ? `${tdExit.rip}:${tdExit.gpa}` : '';
      stalled = key !== '' && key === lastExit ? stalled + 1 : 0;
      lastExit = key;
      if (stalled > maxStalled) {
        const gpa = tdExit.reason === 'ept-violation' ? ` GPA 0x${tdExit.gpa.toString(16)}` : '';
        return finish({ outcome: 'vmm-error', reason: `no progress: ${stalled} TD exits at RIP 0x${tdExit.rip.toString(16)}${gpa}` });
      }
      const decision = td.vmm.handleTdExit(tdExit);
      if (decision.kind === 'stop') return finish(decision.outcome);
      if (tdExit.reason === 'tdvmcall') td.module.completeVmcall(decision.kind === 'return' ? decision.regs : {});
    }
  } catch (err) {
    return finish({ outcome: 'vmm-error', reason: `internal error: ${err instanceof Error ? err.message : String(err)}` });
  }
}
