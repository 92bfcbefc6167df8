// The executor a campaign uses for a target: one honest boot to the stage's first decision point,
// then a whole-VM restore per execution (BootExecutor, a boot per execution, stays for baselines).
// Programs that change the launch itself launch a fresh VM instead (launch-executor.ts).
import type { Executor, FuzzTarget } from './executor.js';
import { LaunchAwareExecutor } from './launch-executor.js';
import { SnapshotExecutor } from './snapshot-executor.js';

export function createExecutor(target: FuzzTarget): Executor {
  return new LaunchAwareExecutor(new SnapshotExecutor(target));
}
