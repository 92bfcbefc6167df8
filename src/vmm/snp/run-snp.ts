// The SNP run loop: vCPU -> hardware model -> VMM, until a RunOutcome.
import { InjectionError } from '../../cpu/errors.js';
import type { RunOutcome } from '../../shared/outcome.js';
import type { SnpPlatform, SnpVmExit } from '../../platform/snp/snp-cpu.js';
import type { SnpVmmPolicy, VmmAnswer } from './policy.js';

export interface RunSnpOptions {
  /** Give up after this many exits (a guard, not a budget). Default 1,000,000. */
  maxExits?: number;
  /** The same NPF (rip, gpa) this many times in a row is a livelock. Default 64. */
  npfRepeatLimit?: number;
}

export function runSnp(platform: SnpPlatform, vmm: SnpVmmPolicy, options: RunSnpOptions = {}): RunOutcome {
  const maxExits = options.maxExits ?? 1_000_000;
  const npfRepeatLimit = options.npfRepeatLimit ?? 64;
  let lastNpf = '';
  let npfRepeats = 0;
  for (let n = 0; n < maxExits; n++) {
    const exit = platform.machine.vcpu.run();
    let step;
    try {
      step = platform.handleExit(exit);
    } catch (e) {
      // The model must turn guest input into architecture; anything else is our bug, reported.
      if (e instanceof InjectionError || e instanceof RangeError) return { outcome: 'fault', reason: `hardware model: ${e.message}` };
      throw e;
    }
    if (step.kind === 'resume') continue;
    if (step.kind === 'outcome') {
      platform.trace.record('hw', 'outcome', { ...step.outcome });
      return step.outcome;
    }
    const vmexit: SnpVmExit = step.exit;
    if (vmexit.kind === 'npf') {
      const key = `${vmexit.rip}:${vmexit.gpa}`;
      npfRepeats = key === lastNpf ? npfRepeats + 1 : 1;
      lastNpf = key;
      if (npfRepeats > npfRepeatLimit) {
        const outcome: RunOutcome = { outcome: 'vmm-error', reason: `NPF livelock at rip 0x${vmexit.rip.toString(16)} gpa 0x${vmexit.gpa.toString(16)} (${vmexit.reason})` };
        platform.trace.record('vmm', 'outcome', { ...outcome });
        return outcome;
      }
    } else {
      lastNpf = '';
    }
    let answer: VmmAnswer;
    try {
      answer = vmexit.kind === 'npf' ? vmm.onNpf(platform, vmexit)
        : vmexit.kind === 'vmgexit' ? vmm.onVmgexit(platform, vmexit)
        : vmm.onHlt(platform, vmexit);
    } catch (e) {
      // Guest-controlled data (GHCB contents) must never crash the host.
      if (e instanceof RangeError) answer = { outcome: 'vmm-error', reason: `VMM: ${e.message}` };
      else throw e;
    }
    if (answer !== 'resume') {
      platform.trace.record('vmm', 'outcome', { ...answer });
      return answer;
    }
  }
  return { outcome: 'vmm-error', reason: `more than ${maxExits} exits` };
}
