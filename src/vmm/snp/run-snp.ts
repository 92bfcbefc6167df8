// The SNP side of the shared run loop: #VMEXITs go to the VMM policy with the VMM's handle.
import type { RunOutcome } from '../../shared/outcome.js';
import type { SnpPlatform, SnpVmExit } from '../../platform/snp/snp-cpu.js';
import type { SnpVmmHandle } from '../../platform/snp/vmm-handle.js';
import { Console } from '../console.js';
import { Vm, runToEnd, savePolicy, type SavedPolicy, type VmmDriver } from '../run-vm.js';
import type { SnpVmmPolicy } from './policy.js';

export interface RunSnpOptions {
  /** Give up after this many exits (a guard, not a budget). Default 1,000,000. */
  maxExits?: number;
  /** The same NPF (rip, gpa) this many times in a row is a livelock. Default 64. */
  npfRepeatLimit?: number;
}

/** Routes #VMEXITs to an SNP VMM policy. */
export class SnpVmm implements VmmDriver<SnpVmExit, SavedPolicy<SnpVmmPolicy>> {
  readonly handle: SnpVmmHandle;
  /** Replaceable between runs (the fuzzer swaps in an adversary after restoring a snapshot). */
  policy: SnpVmmPolicy;

  constructor(handle: SnpVmmHandle, policy: SnpVmmPolicy) {
    this.handle = handle;
    this.policy = policy;
  }

  /**
   * Whatever the policy does about one exit (RMPUPDATEs, PSMASHes, NPT page sizes, from an honest
   * PSC or an adversary's host actions) re-derives the page gate once per 2 MiB region, when it is
   * done (SnpVmmHandle.batch): one wrap here instead of one around each host-operation sequence.
   */
  handleExit(exit: SnpVmExit): 'resume' | RunOutcome {
    return this.handle.batch(() => this.#answer(exit));
  }

  #answer(exit: SnpVmExit): 'resume' | RunOutcome {
    switch (exit.kind) {
      case 'npf': return this.policy.onNpf(this.handle, exit);
      case 'vmgexit': return this.policy.onVmgexit(this.handle, exit);
      case 'hlt': return this.policy.onHlt(this.handle, exit);
    }
  }

  saveState(): SavedPolicy<SnpVmmPolicy> {
    return savePolicy(this.policy);
  }

  loadState(state: SavedPolicy<SnpVmmPolicy>): void {
    this.policy = state.policy;
    state.policy.loadState?.(state.state);
  }

  /** As on TDX: the same NPF (RIP, GPA, reason) over and over, or a HLT with interrupts blocked resumed over and over. */
  sameFault(previous: SnpVmExit, exit: SnpVmExit): boolean {
    if (exit.kind === 'npf') return previous.kind === 'npf' && previous.rip === exit.rip && previous.gpa === exit.gpa && previous.reason === exit.reason;
    if (exit.kind === 'hlt') return exit.interruptsBlocked && previous.kind === 'hlt' && previous.interruptsBlocked && previous.rip === exit.rip;
    return false;
  }

  describeFault(exit: SnpVmExit): string {
    if (exit.kind === 'npf') return `NPF at RIP 0x${exit.rip.toString(16)} GPA 0x${exit.gpa.toString(16)} (${exit.reason})`;
    if (exit.kind === 'hlt') return `HLT with interrupts blocked at RIP 0x${exit.rip.toString(16)}`;
    return `${exit.kind} at RIP 0x${exit.rip.toString(16)}`;
  }
}

/** The VM of an SNP guest: its platform, a VMM driven by `policy`, and the console (the policy's own if it has one). */
export function snpVm(platform: SnpPlatform, policy: SnpVmmPolicy & { console?: Console }): Vm<SnpVmExit> {
  return new Vm({ platform, vmm: new SnpVmm(platform.handle, policy), trace: platform.trace, console: policy.console ?? new Console() });
}

export function runSnp(platform: SnpPlatform, policy: SnpVmmPolicy & { console?: Console }, options: RunSnpOptions = {}): RunOutcome {
  return runToEnd(snpVm(platform, policy), { maxExits: options.maxExits ?? 1_000_000, maxRepeats: options.npfRepeatLimit ?? 64 });
}
