// The host-robustness fuzzer (issue 8): random and mutated guest code on TDX and SNP, in a pool
// of child processes (host-worker.ts) under a bounded budget, so that a signal death or a hang is
// observed by this parent rather than suffered. A finding is a signal death, a hang (a wall-clock
// guard here, in the parent only: it decides nothing guest-visible), an uncaught exception or
// internal error, or a trace that differs between two runs of the same input. Each finding is
// written to a file as soon as it is seen, then shrunk with ddmin over its bytes.
//
// The hang guard counts the child's CPU time (/proc/<pid>/stat), not wall time, so a loaded
// machine does not turn a slow batch into a false hang; a child that makes no progress without
// using CPU is caught by a much longer wall-clock bound.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { makeDirectories } from '../shared/make-directories.js';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../shared/package-root.js';
import { MAX_CODE_BYTES } from './host-guest.js';
import { hostFuzzInput, platformOf } from './host-inputs.js';
import type { FindingKind, WorkerFinding, WorkerReply, WorkerRequest } from './host-worker.js';
import type { PlatformKind } from '../platform/platform.js';
import { ddmin } from './shrink.js';
import { counted } from '../shared/counted.js';

// Children run the compiled worker (from src/ under vitest as from dist/), like bin/minivisor.js.
const WORKER = join(PACKAGE_ROOT, 'dist', 'fuzz', 'host-worker.js');

export interface HostFuzzOptions {
  seed: bigint;
  executions: number;
  /** First execution index (to resume or split a campaign); default 0. */
  from?: number;
  children: number;
  /** Instructions plus host-work charges per execution. */
  budget: bigint;
  /** Executions per request to a child. */
  batchSize?: number;
  /** Every n-th execution runs twice and must give the same trace. */
  recheckEvery?: number;
  /** Where findings are written (created when there is one). */
  outDir: string;
  /** Hang guard: child CPU ms per execution (a request gets count × this, plus 30 s). */
  hangMsPerExecution?: number;
  log?: (line: string) => void;
}

export interface HostFinding extends WorkerFinding {
  /** The shrunk input that still shows the same kind of failure, hex. */
  minimisedHex: string;
  file: string;
}

export interface HostFuzzReport {
  executions: number;
  seconds: number;
  outcomes: Record<string, number>;
  findings: HostFinding[];
}

type Result = { reply: WorkerReply } | { died: string } | { hung: true };

/** CPU time (user + system) a process has used, ms; undefined when /proc cannot tell. */
function cpuMs(pid: number): number | undefined {
  try {
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;  // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

const WALL_FACTOR = 20;  // a stuck child that uses no CPU: wall bound = 20 × the CPU bound

class Child {
  readonly #proc: ChildProcess;
  #pending: ((r: Result) => void) | undefined;
  #exit: string | undefined;

  constructor() {
    this.#proc = fork(WORKER, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json' });
    this.#proc.stderr?.resume();
    this.#proc.on('message', (m: WorkerReply) => { if (m.type !== 'started') this.#settle({ reply: m }); });
    this.#proc.on('exit', (code, signal) => {
      this.#exit = signal ? `killed by ${signal}` : `exited with status ${code}`;
      this.#settle({ died: this.#exit });
    });
  }

  #settle(r: Result): void {
    const p = this.#pending;
    this.#pending = undefined;
    p?.(r);
  }

  /** Sends `req`; a reply, the child's death, or `hung` once it used `cpuLimitMs` of CPU on it. */
  request(req: WorkerRequest, cpuLimitMs: number): Promise<Result> {
    if (this.#exit) return Promise.resolve({ died: this.#exit });
    const pid = this.#proc.pid!;
    const cpuStart = cpuMs(pid) ?? 0;
    const wallStart = Date.now();
    return new Promise((resolve) => {
      const timer = setInterval(() => {
        const used = (cpuMs(pid) ?? cpuStart) - cpuStart;
        if (used > cpuLimitMs || Date.now() - wallStart > cpuLimitMs * WALL_FACTOR) { this.kill(); this.#settle({ hung: true }); }
      }, 1000);
      this.#pending = (r) => { clearInterval(timer); resolve(r); };
      this.#proc.send(req);
    });
  }

  kill(): void {
    if (!this.#exit) this.#proc.kill('SIGKILL');
  }
}

const kindOf = (r: Result): FindingKind | undefined => ('died' in r ? 'signal' : 'hung' in r ? 'hang' : undefined);

export async function runHostFuzz(options: HostFuzzOptions): Promise<HostFuzzReport> {
  const started = Date.now();
  const batchSize = options.batchSize ?? 200;
  const recheckEvery = options.recheckEvery ?? 16;
  const hangMs = options.hangMsPerExecution ?? 500;
  const log = options.log ?? (() => {});
  const seed = options.seed.toString();
  const budget = options.budget.toString();
  const outcomes: Record<string, number> = {};
  const raw: WorkerFinding[] = [];
  const from = options.from ?? 0;
  const end = from + options.executions;
  let next = from;
  let done = 0;
  const fileOf = (f: WorkerFinding) => join(options.outDir, `host-${f.kind}-${f.platform}-${seed}-${f.index}.json`);
  const record = (f: WorkerFinding) => {
    raw.push(f);
    makeDirectories(options.outDir);
    writeFileSync(fileOf(f), `${JSON.stringify({ ...f, seed, budget }, null, 2)}\n`);
    log(`host fuzz finding: ${f.kind} on ${f.platform} at execution ${f.index} (${f.detail}); ${fileOf(f)}`);
  };

  /** One input alone in a fresh child: how it ends. */
  const single = async (platform: PlatformKind, code: Uint8Array, times: number): Promise<FindingKind | 'ok'> => {
    const child = new Child();
    try {
      const r = await child.request({ type: 'one', platform, codeHex: Buffer.from(code).toString('hex'), budget, times }, 30_000 + hangMs * times);
      return kindOf(r) ?? ('reply' in r && r.reply.type === 'one-done' ? r.reply.kind : 'ok');
    } finally {
      child.kill();
    }
  };

  /** A batch killed its child: find the execution(s) that do it alone. */
  const isolate = async (from: number, count: number, kind: FindingKind, detail: string) => {
    let found = false;
    for (let i = from; i < from + count; i++) {
      const { code } = hostFuzzInput(options.seed, i, MAX_CODE_BYTES);
      const k = await single(platformOf(i), code, 1);
      if (k === kind) {
        record({ index: i, platform: platformOf(i), kind, detail, codeHex: Buffer.from(code).toString('hex') });
        found = true;
      }
    }
    if (!found) record({ index: from, platform: platformOf(from), kind, detail: `${detail}; executions ${from}..${from + count - 1} together, none alone`, codeHex: '' });
  };

  const worker = async () => {
    let child = new Child();
    while (next < end) {
      const from = next;
      const count = Math.min(batchSize, end - from);
      next += count;
      const r = await child.request({ type: 'batch', seed, from, count, budget, recheckEvery }, 30_000 + count * hangMs);
      if ('reply' in r && r.reply.type === 'batch-done') {
        for (const [k, v] of Object.entries(r.reply.outcomes)) outcomes[k] = (outcomes[k] ?? 0) + v;
        r.reply.findings.forEach(record);
      } else {
        const kind = kindOf(r)!;
        child.kill();
        child = new Child();
        await isolate(from, count, kind, 'died' in r ? r.died : `no answer within ${30_000 + count * hangMs} ms of CPU`);
      }
      done += count;
      if (done % (batchSize * 10) === 0 || done === options.executions) {
        log(`host fuzz: ${done}/${options.executions} executions, ${counted(raw.length, 'finding')}, ${((Date.now() - started) / 1000).toFixed(0)} s`);
      }
    }
    child.kill();
  };
  await Promise.all(Array.from({ length: Math.max(1, options.children) }, worker));

  const findings: HostFinding[] = [];
  for (const f of raw) {
    const code = [...Buffer.from(f.codeHex, 'hex')];
    const times = f.kind === 'nondeterministic' ? 2 : 1;
    const shrunk = code.length === 0 ? { items: code } : await ddmin(code, async (c) => c.length > 0 && (await single(f.platform, Uint8Array.from(c), times)) === f.kind, 64);
    const file = fileOf(f);
    const minimisedHex = Buffer.from(shrunk.items).toString('hex');
    writeFileSync(file, `${JSON.stringify({ ...f, seed, budget, minimisedHex, replay: `npm run fuzz:host -- --replay ${file}` }, null, 2)}\n`);
    findings.push({ ...f, minimisedHex, file });
    log(`host fuzz: shrunk ${f.kind} at execution ${f.index} from ${code.length} to ${shrunk.items.length} bytes`);
  }
  return { executions: options.executions, seconds: (Date.now() - started) / 1000, outcomes, findings };
}

/** Replays a reproducer's minimised input in a fresh child: how does it end now? */
export async function replayHostFinding(platform: PlatformKind, codeHex: string, budget: bigint): Promise<string> {
  const child = new Child();
  try {
    const r = await child.request({ type: 'one', platform, codeHex, budget: budget.toString(), times: 2 }, 60_000);
    if ('reply' in r && r.reply.type === 'one-done') return `${r.reply.kind}: ${r.reply.outcome} (${r.reply.detail})`;
    return 'died' in r ? `signal: ${r.died}` : 'hang: no answer within 60 s of CPU';
  } finally {
    child.kill();
  }
}
