// The native edge-coverage hook: real guest branches become AFL-style edge counts.
import { describe, expect, it } from 'vitest';
import { EDGE_MAP_BYTES } from '../../../src/cpu/machine.js';
import { EdgeCoverage } from '../../../src/fuzz/coverage.js';
import { runToHlt, simpleGuest } from '../../helpers/guest-setup.js';

/** A loop of `n` iterations whose body branches on the value of rbx. */
const branchy = (n: number, rbx: number) => `
  mov rcx, ${n}
  mov rbx, ${rbx}
1:
  test rbx, 1
  jz 2f
  add rax, 3
  jmp 3f
2:
  add rax, 5
3:
  dec rcx
  jnz 1b
  hlt`;

const hitEdges = (map: Uint8Array) => map.reduce((n, v) => n + (v > 0 ? 1 : 0), 0);

describe('edge coverage', () => {
  it('is off until enabled: a boot pays nothing for it', () => {
    const vm = simpleGuest(branchy(10, 0));
    expect(vm.edgeMap).toBeUndefined();
    runToHlt(vm);
    vm.close();
  });

  it('counts control-flow edges, distinguishes paths and loop counts, and resets', () => {
    const even = simpleGuest(branchy(10, 0));
    const map = even.enableEdgeCoverage();
    expect(map.length).toBe(EDGE_MAP_BYTES);
    runToHlt(even);
    const evenEdges = hitEdges(map);
    expect(evenEdges).toBeGreaterThan(2);
    // The loop's back edge was taken 9 times: some entry counts more than one hit.
    expect(Math.max(...map)).toBeGreaterThanOrEqual(9);

    const coverage = new EdgeCoverage();
    expect(coverage.merge(map)).toBe(true);
    expect(coverage.merge(map)).toBe(false);

    const odd = simpleGuest(branchy(10, 1));
    const oddMap = odd.enableEdgeCoverage();
    runToHlt(odd);
    // The other arm of the branch is a new edge.
    expect(coverage.merge(oddMap)).toBe(true);

    const longer = simpleGuest(branchy(100, 0));
    const longerMap = longer.enableEdgeCoverage();
    runToHlt(longer);
    // Same edges, but a hit count in a higher AFL bucket.
    expect(coverage.merge(longerMap)).toBe(true);

    odd.resetEdgeCoverage();
    expect(hitEdges(oddMap)).toBe(0);
    for (const vm of [even, odd, longer]) vm.close();
  });

  it('lists the slots it hits, once each, and a reset clears exactly those', () => {
    const vm = simpleGuest(branchy(100, 1));
    const map = vm.enableEdgeCoverage();
    const slots = vm.edgeSlots!;
    expect(slots[0]).toBe(0);
    runToHlt(vm);
    const listed = [...slots.subarray(1, slots[0]! + 1)];
    const nonzero = [...map.keys()].filter((i) => map[i] !== 0);
    expect(new Set(listed).size).toBe(listed.length);
    expect([...listed].sort((a, b) => a - b)).toEqual(nonzero);
    expect(listed.length).toBeGreaterThan(2);

    // Merging through the list finds what scanning the map finds.
    const scanned = new EdgeCoverage();
    const viaList = new EdgeCoverage();
    expect(viaList.merge(map, slots)).toBe(scanned.merge(map));
    expect(viaList.count).toBe(scanned.count);
    expect(viaList.merge(map, slots)).toBe(false);

    vm.resetEdgeCoverage();
    expect(slots[0]).toBe(0);
    expect(hitEdges(map)).toBe(0);
    vm.close();
  });
  it('a machine that turns coverage on after another closed with it on starts from an empty map, and counts as a fresh one', () => {
    const first = simpleGuest(branchy(10, 1));
    const firstMap = first.enableEdgeCoverage();
    runToHlt(first);
    const counted = Buffer.from(firstMap);
    expect(hitEdges(firstMap)).toBeGreaterThan(2);
    first.close();
    expect(first.edgeMap).toBeUndefined();
    const second = simpleGuest(branchy(10, 1));
    try {
      const map = second.enableEdgeCoverage();
      expect(hitEdges(map)).toBe(0);
      expect(second.edgeSlots![0]).toBe(0);
      runToHlt(second);
      expect(Buffer.from(map).equals(counted)).toBe(true);
      expect(second.edgeSlots![0]).toBe(hitEdges(map));
    } finally {
      second.close();
    }
  });
});
