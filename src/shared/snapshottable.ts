// One interface for every piece of state a whole-VM snapshot must cover: the machine (CPU, RAM,
// page gate), the hardware models (SEPT/RMP, module and firmware state, measurements), the trace,
// the console and the VMM. A snapshot is only whole if every part implements this; composites
// (VmSnapshot) list their parts so that adding one without it is a type error.
export interface Snapshottable<State> {
  /** A copy of the current state that later changes do not affect. */
  saveState(): State;
  /** Puts the state back; `state` stays valid for further loads (restore many times). */
  loadState(state: State): void;
}

/** Named parts, each snapshottable. */
export type SnapshotParts = Record<string, Snapshottable<unknown>>;
/** The saved states of `P`, part by part. */
export type PartStates<P extends SnapshotParts> = { readonly [K in keyof P]: ReturnType<P[K]['saveState']> };

export function saveParts<P extends SnapshotParts>(parts: P): PartStates<P> {
  const states: Record<string, unknown> = {};
  for (const [name, part] of Object.entries(parts)) states[name] = part.saveState();
  return states as PartStates<P>;
}

/** Named parts as a list, in the order they were listed: for a composite that loads them again and again. */
export type PartList = ReadonlyArray<readonly [string, Snapshottable<unknown>]>;

export function partList(parts: SnapshotParts): PartList {
  return Object.entries(parts);
}

/** Loads every part, in the order the parts were listed (`parts` as partList gives them, when loaded often). */
export function loadParts<P extends SnapshotParts>(parts: P | PartList, states: PartStates<P>): void {
  const list = Array.isArray(parts) ? (parts as PartList) : partList(parts as P);
  for (let i = 0; i < list.length; i++) {
    const [name, part] = list[i]!;
    part.loadState((states as Record<string, unknown>)[name]);
  }
}
