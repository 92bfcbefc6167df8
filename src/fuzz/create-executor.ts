// The executor a campaign uses for a target: one honest boot to the stage's first decision point,
// then a whole-VM restore per execution (BootExecutor, a boot per execution, stays for baselines).
import type { Executor, FuzzTarget } from './executor.js';
import { SnapshotExecutor } from './snapshot-executor.js';

export function createExecutor(target: FuzzTarget): Executor {
  return new SnapshotExecutor(target);
}
