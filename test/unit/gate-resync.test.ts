// The guard against a page-gate resynchronisation that did not take (src/platform/gate-resync.ts):
// only the same vCPU refused the very same access (RIP, GPA, access, space) at the very next exit
// after a resynchronisation for it is a hardware-model error. Anything else is a guest or a VMM
// going on: another vCPU's fault, another access, a fault two exits later, a deferred resync
// (a gate batch), or a fault after a whole-VM restore.
import { describe, expect, it } from 'vitest';
import { GateResyncGuard, type RefusedAccess } from '../../src/platform/gate-resync.js';

const FAULT: RefusedAccess = { rip: 0x1000n, gpa: 0x20_0000n, access: 'write', space: 'private' };

/** The guard after `first` was resynchronised on vCPU 0 at one exit, at the start of the next. */
function afterOneResync(first: RefusedAccess = FAULT, deferred = false): GateResyncGuard {
  const guard = new GateResyncGuard('the SEPT');
  guard.nextExit();
  guard.resyncing(0, first, deferred);
  guard.nextExit();
  return guard;
}

describe('a gate resynchronisation that did not take', () => {
  it('is the same vCPU refused the same access at the very next exit: a hardware-model error naming it', () => {
    expect(() => afterOneResync().resyncing(0, { ...FAULT }, false))
      .toThrow('hardware model: the page gate still refuses the private write of 0x200000 at RIP 0x1000 after its resynchronisation with the SEPT, which allow it');
  });

  it.each([
    ['another RIP', { ...FAULT, rip: 0x1004n }],
    ['another GPA', { ...FAULT, gpa: 0x20_1000n }],
    ['another access', { ...FAULT, access: 'read' }],
    ['another space', { ...FAULT, space: 'shared' }],
  ] as [string, RefusedAccess][])('is not %s', (_name, other) => {
    expect(() => afterOneResync().resyncing(0, other, false)).not.toThrow();
  });

  it('is not another vCPU refused the same access', () => {
    expect(() => afterOneResync().resyncing(1, FAULT, false)).not.toThrow();
  });

  it('is not the same fault two exits later, nor after a deferred resync (a gate batch), nor after a restore', () => {
    const later = afterOneResync();
    later.nextExit();
    expect(() => later.resyncing(0, FAULT, false)).not.toThrow();
    expect(() => afterOneResync(FAULT, true).resyncing(0, FAULT, false)).not.toThrow();
    const restored = afterOneResync();
    restored.reset();
    expect(() => restored.resyncing(0, FAULT, false)).not.toThrow();
    // A restore right after the resync (before the next exit): the first exit after it is new too.
    const restoredAtOnce = new GateResyncGuard('the SEPT');
    restoredAtOnce.nextExit();
    restoredAtOnce.resyncing(0, FAULT, false);
    restoredAtOnce.reset();
    restoredAtOnce.nextExit();
    expect(() => restoredAtOnce.resyncing(0, FAULT, false)).not.toThrow();
  });
});
