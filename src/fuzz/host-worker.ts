// A child process of the host-robustness fuzzer (host-campaign.ts). It keeps one guest per
// platform and runs what the parent asks, reporting over IPC. Running in a child is the point:
// if the emulator kills the process with a signal or never returns, the parent observes it.
import { fileURLToPath } from 'node:url';
import { HostFuzzGuest, MAX_CODE_BYTES, type HostExecution } from './host-guest.js';
import { hostFuzzInput, platformOf } from './host-inputs.js';
import type { PlatformKind } from '../platform/platform.js';

/** What the parent asks. */
export type WorkerRequest =
  /** Executions from..from+count-1 of the campaign; every `recheckEvery`-th runs twice. */
  | { type: 'batch'; seed: string; from: number; count: number; budget: string; recheckEvery: number }
  /** One given input, run `times` times (replay, minimisation). */
  | { type: 'one'; platform: PlatformKind; codeHex: string; budget: string; times: number };

export type FindingKind = 'signal' | 'hang' | 'exception' | 'nondeterministic';

export interface WorkerFinding { index: number; platform: PlatformKind; kind: FindingKind; detail: string; codeHex: string }

/** What the child reports. */
export type WorkerReply =
  | { type: 'started'; from: number }
  | { type: 'batch-done'; from: number; count: number; outcomes: Record<string, number>; findings: WorkerFinding[] }
  | { type: 'one-done'; kind: FindingKind | 'ok'; detail: string; outcome: string };

const guests = new Map<string, HostFuzzGuest>();
function guest(platform: PlatformKind, budget: bigint): HostFuzzGuest {
  const key = `${platform}:${budget}`;
  let g = guests.get(key);
  if (!g) { g = new HostFuzzGuest(platform, budget); guests.set(key, g); }
  return g;
}

/** Runs `code` `times` times; judges exceptions, internal errors and differing traces. */
function judge(platform: PlatformKind, code: Uint8Array, budget: bigint, times: number): { kind: FindingKind | 'ok'; detail: string; outcome: string } {
  let first: HostExecution | undefined;
  for (let t = 0; t < times; t++) {
    let run: HostExecution;
    try {
      run = guest(platform, budget).exec(code);
    } catch (err) {
      return { kind: 'exception', detail: err instanceof Error ? `${err.name}: ${err.message}` : String(err), outcome: 'exception' };
    }
    // runVm turns a bug of ours into a vmm-error "internal error: …": for this fuzzer, a finding.
    if (run.outcome.reason.startsWith('internal error')) return { kind: 'exception', detail: run.outcome.reason, outcome: run.outcome.outcome };
    if (first && (first.traceSha256 !== run.traceSha256 || first.outcome.outcome !== run.outcome.outcome)) {
      return { kind: 'nondeterministic', detail: `${first.outcome.outcome} ${first.traceSha256.slice(0, 16)} then ${run.outcome.outcome} ${run.traceSha256.slice(0, 16)}`, outcome: run.outcome.outcome };
    }
    first ??= run;
  }
  return { kind: 'ok', detail: first!.outcome.reason, outcome: first!.outcome.outcome };
}

function handle(req: WorkerRequest): WorkerReply {
  if (req.type === 'one') {
    return { type: 'one-done', ...judge(req.platform, Uint8Array.from(Buffer.from(req.codeHex, 'hex')), BigInt(req.budget), req.times) };
  }
  const outcomes: Record<string, number> = {};
  const findings: WorkerFinding[] = [];
  for (let i = req.from; i < req.from + req.count; i++) {
    const platform = platformOf(i);
    const { code } = hostFuzzInput(BigInt(req.seed), i, MAX_CODE_BYTES);
    const verdict = judge(platform, code, BigInt(req.budget), i % req.recheckEvery === 0 ? 2 : 1);
    outcomes[verdict.outcome] = (outcomes[verdict.outcome] ?? 0) + 1;
    if (verdict.kind !== 'ok') findings.push({ index: i, platform, kind: verdict.kind, detail: verdict.detail, codeHex: Buffer.from(code).toString('hex') });
  }
  return { type: 'batch-done', from: req.from, count: req.count, outcomes, findings };
}

// Only as the forked entry point: importing this module for its types must not take over the
// importing process's IPC channel.
if (process.send && process.argv[1] === fileURLToPath(import.meta.url)) {
  process.on('disconnect', () => process.exit(0));  // the parent is gone: nothing left to do
  process.on('message', (req: WorkerRequest) => {
    if (req.type === 'batch') process.send!({ type: 'started', from: req.from } satisfies WorkerReply);
    process.send!(handle(req));
  });
}
