// The memory-map lies the fuzzer tells (src/fuzz/memory-map-lies.ts), against the fixture firmware
// that hands the VMM's map to the decompressor (map-from-config) and the decompressor's checks:
// the honest map, told by the VMM, boots to the end with no finding (it is the map the firmware
// builds itself); every lie is refused by those checks and is no finding either, so a campaign
// that finds something with one has found a stub that skips a check, not the fixture's own
// pass-through (the lie that only moves the accepted/unaccepted line is left out for that reason).
import { afterAll, describe, expect, it } from 'vitest';
import { createExecutor } from '../../../src/fuzz/create-executor.js';
import { MAP_LIES, honestMemoryMap } from '../../../src/fuzz/memory-map-lies.js';
import { plantedBugTarget } from '../../../src/fuzz/planted-bugs.js';
import { Prng } from '../../../src/shared/prng.js';

const target = plantedBugTarget('tdx', 'map-from-config');
const executor = createExecutor(target);
afterAll(() => executor.close());
const preAccept = target.preAccept;
const honest = honestMemoryMap(target.memoryBytes, preAccept);

describe('memory-map lies against the decompressor that checks the map', () => {
  it('the honest map, told by the VMM, is the one the firmware builds: the boot ends done, no finding', () => {
    expect(honest.map((r) => r.type)).toEqual([1, 2, 1, 15]);
    const e = executor.execute({ platform: 'tdx', decisions: [], memoryDescription: { ranges: honest } });
    expect(e.judgement.findings).toEqual([]);
    expect(e.judgement.outcome.outcome).toBe('done');
  });

  it.each(MAP_LIES.map((lie) => [lie.name, lie] as const))('%s: refused by the map checks, no finding', (_name, lie) => {
    for (let seed = 1n; seed <= 3n; seed++) {
      const ranges = lie.tell(new Prng(seed), honest, target.memoryBytes);
      expect(ranges).toBeDefined();
      expect(ranges).not.toEqual(honest);
      const e = executor.execute({ platform: 'tdx', decisions: [], memoryDescription: { ranges: ranges! } });
      expect(e.judgement.findings).toEqual([]);
      expect(e.judgement.verdict).toBe('detected');
      expect(e.judgement.outcome.reason).toMatch(/^e820_/);
    }
  });

  it('tells a lie in the map it is given, and leaves that map alone', () => {
    const copy = structuredClone(honest);
    for (const lie of MAP_LIES) lie.tell(new Prng(9n), honest, target.memoryBytes);
    expect(honest).toEqual(copy);
  });
});
