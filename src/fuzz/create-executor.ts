// The executor a campaign uses for a target.
import { BootExecutor, type Executor, type FuzzTarget } from './executor.js';

export function createExecutor(target: FuzzTarget): Executor {
  return new BootExecutor(target);
}
