// Slots of the run area shared with the native machine (native/src/machine.h RunSlot): a
// BigUint64Array both sides read and write, so an exit costs one native call, like kvm_run.
export const RunSlot = {
  kind: 0,
  insnLength: 1,
  arg0: 2,
  arg1: 3,
  arg2: 4,
  arg3: 5,
  insnBytes: 6,
  instructions: 7,
  regs: 8,
  dirtyRegs: 26,
  instructionLimit: 27,
  charged: 28,
  budgetLimit: 29,
  /** A host call's 64-bit result beside its return value (translate: the GPA). */
  hostResult: 30,
  /** Foreign-content reads the native content watch recorded and the host has not taken yet. */
  foreignReads: 31,
} as const;
export const RUN_AREA_SLOTS = 32;

/** Exit kinds as numbered by the native side (native/src/machine.h ExitKind). */
export const ExitCode = {
  none: 0,
  hlt: 1,
  tdcall: 2,
  pvalidate: 3,
  vmgexit: 4,
  invalidOpcode: 5,
  cpuid: 6,
  rdmsr: 7,
  wrmsr: 8,
  ioIn: 9,
  ioOut: 10,
  gateFault: 11,
  exception: 12,
  budget: 13,
  fatal: 14,
  rmpadjust: 15,
  pause: 16,
  execWatch: 17,
  random: 18,
  rdtsc: 19,
  svm: 20,
  vmcall: 21,
  systemCall: 22,
  cacheOrWait: 23,
  rdpmc: 24,
  xsetbv: 25,
  movDr: 26,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
