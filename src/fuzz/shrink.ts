// Shrinking a finding to the fewest decisions that still reproduce its category: Zeller's delta
// debugging (ddmin, "Simplifying and Isolating Failure-Inducing Input", TSE 2002) over the
// decision list, then over the launch actions, then without the memory description, then one
// pass that tries each repeated answer once. Not
// fast-check's shrinker: that shrinks values fast-check generated itself through its
// arbitraries, while our programs come out of a coverage-guided mutation loop and each check is a
// whole VM execution, so we want a bounded, deterministic number of executions over a plain list.
import type { AttackProgram, Decision, LaunchAction } from './attack-program.js';

export interface ShrinkResult {
  program: AttackProgram;
  /** Executions the shrinker spent. */
  executions: number;
}

/**
 * ddmin: tries removing chunks of `items` (halves, quarters, … single items) and keeps every
 * removal after which `reproduces` still holds. At most `budget` calls of `reproduces`.
 */
export async function ddmin<T>(items: readonly T[], reproduces: (candidate: T[]) => boolean | Promise<boolean>, budget: number): Promise<{ items: T[]; executions: number }> {
  let executions = 0;
  let current = [...items];
  let granularity = 2;
  while (current.length >= 1 && executions < budget) {
    const chunk = Math.ceil(current.length / granularity);
    let reduced = false;
    for (let start = 0; start < current.length && executions < budget; start += chunk) {
      const complement = [...current.slice(0, start), ...current.slice(start + chunk)];
      executions++;
      if (await reproduces(complement)) {
        current = complement;
        granularity = Math.max(granularity - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (chunk === 1) break;
      granularity = Math.min(granularity * 2, current.length);
    }
  }
  return { items: current, executions };
}

/** ddmin over the program's decisions (then its launch actions, then its memory description), then one pass that tries each repeated answer once. */
export async function shrinkProgram(program: AttackProgram, reproduces: (candidate: AttackProgram) => boolean | Promise<boolean>, budget = 200): Promise<ShrinkResult> {
  const reduced = await ddmin(program.decisions, (decisions) => reproduces({ ...program, decisions }), budget);
  let executions = reduced.executions;
  let current = reduced.items;
  const check = async (decisions: Decision[]): Promise<boolean> => {
    if (executions >= budget) return false;
    executions++;
    return reproduces(shaped(decisions));
  };
  // Launch actions are part of the program too: keep only those the finding needs.
  let launch = program.launch;
  if (launch && launch.length > 0 && executions < budget) {
    const kept = await ddmin(launch, (candidate) => reproduces(withLaunch({ ...program, decisions: current }, candidate)), budget - executions);
    executions += kept.executions;
    launch = kept.items;
  }
  // So is the memory description: without it if the finding does not need it.
  let description = program.memoryDescription;
  if (description && executions < budget) {
    executions++;
    const { memoryDescription: _dropped, ...without } = withLaunch({ ...program, decisions: current }, launch);
    if (await reproduces(without)) description = undefined;
  }
  const shaped = (decisions: Decision[]): AttackProgram => {
    const { memoryDescription: _old, ...rest } = withLaunch({ ...program, decisions }, launch);
    return description ? { ...rest, memoryDescription: description } : rest;
  };
  // A repeated answer that one occurrence also reproduces is simpler to read.
  for (let i = 0; i < current.length; i++) {
    const d = current[i]!;
    if (d.at !== 'call' || d.repeat === undefined) continue;
    const single: Decision = { at: 'call', point: d.point, occurrence: d.occurrence, answer: d.answer };
    const candidate = [...current.slice(0, i), single, ...current.slice(i + 1)];
    if (await check(candidate)) current = candidate;
  }
  return { program: shaped(current), executions };
}

/** `program` with `launch` as its launch actions (none: the field left out). */
function withLaunch(program: AttackProgram, launch: LaunchAction[] | undefined): AttackProgram {
  const { launch: _old, ...rest } = program;
  return launch && launch.length > 0 ? { ...rest, launch } : rest;
}
