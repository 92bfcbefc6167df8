// Process-wide V8 tuning around the CLI's long runs: not for the library, whose host process is the user's.
import { createRequire } from 'node:module';

/** V8's default (`node --v8-options`): the young generation doubles when it grows. */
const DEFAULT_GROWTH_FACTOR = 2;

/** node:v8's setFlagsFromString, loaded at its first use: node:v8 loads node:stream, ~4 ms of CPU (issue 11). */
function setV8Flags(flags: string): void {
  (createRequire(import.meta.url)('node:v8') as typeof import('node:v8')).setFlagsFromString(flags);
}

/**
 * Runs `run`, which may ask for V8's young generation to be kept at the size it has from then on
 * (`keepSmall`, any number of times; the first call sets it). V8 doubles the young generation
 * whenever what survived scavenges since the last growth outgrows it, whether or not that is still
 * alive: a long boot's model tables (an SNP guest's RMP entries, one per 2 MiB it accepted) add up
 * to that, and the young generation grew to 2 x 16 MiB of fresh pages, each a page fault, for
 * nothing, as a scavenge costs what survives it (issue 11). The flag is read at each growth
 * decision, so it takes effect when set. A run that never asks pays nothing for it: a default boot
 * then grows it once, to 2 x 2 MiB, while it starts, which cost no more page faults than loading
 * node:v8 to stop that (a long boot, which asks later, keeps that size: ~1,000 more page faults in
 * an eager 64 GiB SNP boot of ~17,000, against 2 x 16 MiB without the flag). It is put back after:
 * V8 rejects a code cache made under other flags (the hash of the flags that differ from their
 * defaults is part of it), and the CLI writes its own when the command ends and loads Node's for
 * built-in modules as it goes.
 */
export function withYoungGenerationKeptSmall<T>(run: (keepSmall: () => void) => T): T {
  let kept = false;
  const keepSmall = () => {
    if (kept) return;
    setV8Flags('--semi-space-growth-factor=1');
    kept = true;
  };
  try {
    return run(keepSmall);
  } finally {
    if (kept) setV8Flags(`--semi-space-growth-factor=${DEFAULT_GROWTH_FACTOR}`);
  }
}

/** TurboFan's inlining budgets in bytecode bytes: V8's defaults (`node --v8-options`), and a fuzz campaign's. */
const DEFAULT_INLINING = { callee: 460, cumulative: 920 };
const FUZZ_INLINING = { callee: 230, cumulative: 460 };

const inliningFlags = (budget: typeof DEFAULT_INLINING) =>
  `--max-inlined-bytecode-size=${budget.callee} --max-inlined-bytecode-size-cumulative=${budget.cumulative}`;

/**
 * Runs a fuzz campaign (`run`) with half V8's TurboFan inlining budgets. A campaign's hot paths are
 * many large functions (the hardware models, the VMM, the adversary), compiled again as mutants
 * bring new types, still after thousands of executions, and compiling them with their callees
 * inlined up to V8's budgets was ~13% of the instructions of a 6,000-execution kernel-stage CLI
 * campaign (every thread). With these, seed-1 campaigns of 6,000 executions, 4 KiB workload
 * (cachegrind, every thread; the same corpus): SNP 54.7 -> 52.9 G instructions, TDX 46.0 -> 44.4 G
 * (-3.4% each: TurboFan's -27%, the compiled code's own +2%/+3%). A smaller callee budget (160)
 * compiled less still but ran slower code (TDX's +5%). In a shorter campaign compiling is a larger
 * share (27% of a 1,500-execution one's). Put back after, as the young generation's flag is (issue 10).
 */
export async function withFuzzInliningBudget<T>(run: () => Promise<T>): Promise<T> {
  setV8Flags(inliningFlags(FUZZ_INLINING));
  try {
    return await run();
  } finally {
    setV8Flags(inliningFlags(DEFAULT_INLINING));
  }
}
