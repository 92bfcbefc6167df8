// Process-wide V8 tuning around the CLI's long runs: not for the library, whose host process is the user's.
import { setFlagsFromString } from 'node:v8';

/** V8's default (`node --v8-options`): the young generation doubles when it grows. */
const DEFAULT_GROWTH_FACTOR = 2;

/**
 * Runs `run` with V8's young generation kept at the size it has. V8 doubles it whenever what
 * survived scavenges since the last growth outgrows it, whether or not that is still alive: a long
 * boot's model tables (an SNP guest's RMP entries, one per 2 MiB it accepted) add up to that, and
 * the young generation grew to 2 x 16 MiB of fresh pages, each a page fault, for nothing, as a
 * scavenge costs what survives it (issue 11). The flag is read at each growth decision, so it takes
 * effect when set. It is put back after: V8 rejects a code cache made under other flags (the
 * hash of the flags that differ from their defaults is part of it), and the CLI writes its own
 * when the command ends and loads Node's for built-in modules as it goes.
 */
export function withYoungGenerationKeptSmall<T>(run: () => T): T {
  setFlagsFromString('--semi-space-growth-factor=1');
  try {
    return run();
  } finally {
    setFlagsFromString(`--semi-space-growth-factor=${DEFAULT_GROWTH_FACTOR}`);
  }
}
