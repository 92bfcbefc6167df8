// Sept.batchGate (issue 10): S-EPT changes inside a batch leave the private page gate exactly as
// the same changes applied one by one do, with fewer gate updates.
import { describe, expect, it, vi } from 'vitest';
import { createTd, type Td } from '../../../src/vmm/tdx/run-td.js';

const MEMORY = 8n << 20n;
const PAGE = 0x1000n;
const MIB2 = 0x200000n;

/** A TD whose first 4 MiB are mapped: one 2M leaf and 512 4K leaves under a SEPT page. */
function td(): Td {
  const t = createTd({ memoryBytes: MEMORY });
  const sept = t.platform.module.sept;
  sept.setState(3, 0n, 'NL_MAPPED');
  sept.setState(2, 0n, 'NL_MAPPED');
  sept.setState(1, 0n, 'MAPPED');
  sept.setState(1, MIB2, 'NL_MAPPED');
  for (let gpa = MIB2; gpa < 2n * MIB2; gpa += PAGE) sept.setState(0, gpa, 'MAPPED');
  return t;
}

/** What a MapGPA to shared and a replay do: every 4K page of a range blocked (closed), a 2M leaf demoted, some pages removed and re-added. */
function hostWork(t: Td): void {
  const sept = t.platform.module.sept;
  for (let gpa = MIB2 + 16n * PAGE; gpa < MIB2 + 200n * PAGE; gpa += PAGE) sept.setState(0, gpa, 'BLOCKED');
  sept.split(1, 0n, 'MAPPED');
  for (let gpa = 8n * PAGE; gpa < 12n * PAGE; gpa += PAGE) {
    sept.setState(0, gpa, 'BLOCKED');
    sept.setState(0, gpa, 'REMOVED');
    sept.setState(0, gpa, 'PENDING');
  }
  sept.setState(0, MIB2 + 300n * PAGE, 'BLOCKED');
  sept.setState(0, MIB2 + 300n * PAGE, 'MAPPED');  // unblocked again: open as before
}

function privateGate(t: Td): string[] {
  const out: string[] = [];
  for (let gpa = 0n; gpa < MEMORY; gpa += PAGE) out.push(t.platform.machine.gate.get('private', gpa));
  return out;
}

describe('Sept.batchGate', () => {
  it('leaves the same private gate as updating it after every change, with fewer gate updates', () => {
    const one = td();
    const batched = td();
    const eachSet = vi.spyOn(one.platform.machine.gate, 'set');
    const batchSet = vi.spyOn(batched.platform.machine.gate, 'set');
    hostWork(one);
    batched.platform.handle.batch(() => hostWork(batched));
    expect(privateGate(batched)).toEqual(privateGate(one));
    // The 184 blocked pages are one range: one update instead of one per page.
    expect(batchSet.mock.calls.length).toBeLessThan(eachSet.mock.calls.length / 10);
    expect(batched.platform.machine.gate.get('private', MIB2 + 16n * PAGE)).toBe('none');
    expect(batched.platform.machine.gate.get('private', MIB2 + 15n * PAGE)).toBe('readwrite');
    expect(batched.platform.machine.gate.get('private', MIB2 + 300n * PAGE)).toBe('readwrite');
    one.platform.machine.close();
    batched.platform.machine.close();
  });

  it('applies the deferred updates when the batch ends even if the work inside it throws', () => {
    const t = td();
    expect(() => t.platform.handle.batch(() => {
      t.platform.module.sept.setState(0, MIB2, 'BLOCKED');
      expect(t.platform.machine.gate.get('private', MIB2)).toBe('readwrite');  // not yet
      throw new Error('a SEAMCALL failed');
    })).toThrow('a SEAMCALL failed');
    expect(t.platform.machine.gate.get('private', MIB2)).toBe('none');
    t.platform.machine.close();
  });

  it('a batch inside a batch is part of it: its updates apply with the outer ones, in their order, when the outer batch ends', () => {
    const t = td();
    const sept = t.platform.module.sept;
    const gate = t.platform.machine.gate;
    t.platform.handle.batch(() => {
      sept.setState(0, MIB2, 'BLOCKED');
      t.platform.handle.batch(() => sept.setState(0, MIB2, 'MAPPED'));  // unblocked again
      expect(gate.get('private', MIB2)).toBe('readwrite');  // nothing applied yet
    });
    // Closed, then opened: the page is open, as its MAPPED leaf says.
    expect(gate.get('private', MIB2)).toBe('readwrite');
    t.platform.machine.close();
  });
});

describe('the private gate follows the walk (sept_manager.c secure_ept_walk)', () => {
  it('a leaf that becomes MAPPED below a blocked non-leaf stays closed until the non-leaf is unblocked', () => {
    const t = td();
    const sept = t.platform.module.sept;
    const gate = t.platform.machine.gate;
    sept.setState(0, MIB2 + PAGE, 'PENDING');
    sept.setState(1, MIB2, 'NL_BLOCKED');
    expect(gate.count('private', MIB2, MIB2, 'readwrite')).toBe(0n);
    sept.setState(0, MIB2 + PAGE, 'MAPPED');
    expect(gate.get('private', MIB2 + PAGE)).toBe('none');
    sept.setState(1, MIB2, 'NL_MAPPED');
    expect(gate.count('private', MIB2, MIB2, 'readwrite')).toBe(512n);
  });
});

describe('the private gate follows the walk at the edges of a 2M and a 1G range', () => {
  it('a 2M range that runs past the end of RAM: blocking and unblocking its entry closes and reopens the RAM part', () => {
    const t = createTd({ memoryBytes: 7n << 20n });  // the 2M range at 6 MiB is half in RAM
    const sept = t.platform.module.sept;
    const gate = t.platform.machine.gate;
    const at = 6n << 20n;
    sept.setState(3, 0n, 'NL_MAPPED');
    sept.setState(2, 0n, 'NL_MAPPED');
    sept.setState(1, at, 'NL_MAPPED');
    sept.setState(0, at + PAGE, 'MAPPED');
    expect(gate.get('private', at + PAGE)).toBe('readwrite');
    sept.setState(1, at, 'NL_BLOCKED');
    expect(gate.count('private', at, MIB2 / 2n, 'read')).toBe(0n);
    sept.setState(1, at, 'NL_MAPPED');
    expect(gate.get('private', at + PAGE)).toBe('readwrite');
    expect(gate.count('private', at, MIB2 / 2n, 'read')).toBe(1n);
    t.platform.machine.close();
  });

  it('unblocking a 1G entry opens nothing under the next 1G entry, blocked', () => {
    const GIB = 1n << 30n;
    const t = createTd({ memoryBytes: GIB + 2n * MIB2 });
    const sept = t.platform.module.sept;
    const gate = t.platform.machine.gate;
    sept.setState(3, 0n, 'NL_MAPPED');
    sept.setState(2, 0n, 'NL_MAPPED');
    sept.setState(1, 0n, 'MAPPED');
    // The next 1G range's first 2M entry is a MAPPED leaf, its 1G entry blocked: closed.
    sept.setState(2, GIB, 'NL_MAPPED');
    sept.setState(1, GIB, 'MAPPED');
    sept.setState(2, GIB, 'NL_BLOCKED');
    expect(gate.get('private', GIB)).toBe('none');
    sept.setState(2, 0n, 'NL_BLOCKED');
    expect(gate.get('private', 0n)).toBe('none');
    sept.setState(2, 0n, 'NL_MAPPED');
    expect(gate.count('private', 0n, MIB2, 'readwrite')).toBe(512n);
    expect(gate.count('private', GIB, MIB2, 'read')).toBe(0n);
    t.platform.machine.close();
  });

  // Sept.resyncGate re-derives the gate under an entry after something outside the S-EPT changed it:
  // under a non-leaf, only pages whose walk ends on a MAPPED leaf stay open (secure_ept_walk).
  it('a resync of a non-leaf entry closes the pages under it whose leaf is not MAPPED', () => {
    const t = td();
    const sept = t.platform.module.sept;
    const gate = t.platform.machine.gate;
    sept.setState(0, MIB2 + PAGE, 'PENDING');
    gate.set('private', MIB2, MIB2, 'readwrite');
    sept.resyncGate(1, MIB2);
    expect(gate.get('private', MIB2 + PAGE)).toBe('none');
    expect(gate.count('private', MIB2, MIB2, 'readwrite')).toBe(511n);
    t.platform.machine.close();
  });
});
