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
