// The dependency direction of src/, as the project brief fixes it:
//   testing → index.ts → cli/bench → fuzz|view → boot → vmm → platform → cpu → memory → native,
// with src/shared (trace, outcomes) below platform and vmm: anything may import it, it imports
// nothing else from src/. A folder may import only from its own layer or a lower one.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

/** Higher imports lower, never the reverse; equal rank only within one folder. */
const LAYER: Record<string, number> = {
  native: 0,
  memory: 1,
  cpu: 2,
  platform: 3,
  vmm: 4,
  boot: 5,
  fuzz: 6,
  view: 6,
  cli: 7,
  bench: 8,
  // The library's public entry (src/index.ts) re-exports from every layer; src/testing builds on it.
  'index.ts': 9,
  testing: 10,
};
const SHARED = 'shared';

interface Edge { file: string; from: string; to: string }

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Top-level folder of src/ that a path lies in. */
function folderOf(path: string): string {
  return relative(SRC, path).split(sep)[0]!;
}

/** Every relative import (static, re-export or dynamic) that leaves its own top-level folder. */
function crossFolderEdges(): Edge[] {
  const specifier = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)'(\.[^']*)'/g;
  return sourceFiles(SRC).flatMap((file) => {
    const text = readFileSync(file, 'utf8');
    return [...text.matchAll(specifier)].map((m) => ({
      file: relative(SRC, file),
      from: folderOf(file),
      to: folderOf(resolve(dirname(file), m[1]!)),
    })).filter((e) => e.from !== e.to);
  });
}

/** Why an edge breaks the layering, or undefined when it is allowed. */
function layeringViolation(edge: Edge): string | undefined {
  if (edge.to === SHARED) return undefined;
  if (edge.from === SHARED) return `src/shared must not import src/${edge.to}`;
  const from = LAYER[edge.from];
  const to = LAYER[edge.to];
  if (from === undefined) return `src/${edge.from} has no layer: add it to LAYER in this test`;
  if (to === undefined) return `src/${edge.to} has no layer (or lies outside src/)`;
  if (to >= from) return `src/${edge.from} (layer ${from}) imports src/${edge.to} (layer ${to})`;
  return undefined;
}

describe('dependency direction of src/', () => {
  const edges = crossFolderEdges();

  it('finds the imports it checks', () => {
    // Guards the scanner itself: vmm uses platform, platform uses cpu, everyone uses shared.
    const pairs = new Set(edges.map((e) => `${e.from}->${e.to}`));
    expect(pairs).toContain('vmm->platform');
    expect(pairs).toContain('platform->cpu');
    expect(pairs).toContain('platform->shared');
  });

  it('every import points downward', () => {
    const violations = edges.flatMap((e) => {
      const why = layeringViolation(e);
      return why ? [`${e.file}: ${why}`] : [];
    });
    expect(violations).toEqual([]);
  });

  it('nothing in src/platform imports src/vmm (trusted hardware does not know the VMM)', () => {
    expect(edges.filter((e) => e.from === 'platform' && e.to === 'vmm')).toEqual([]);
  });

  it('the VMM reaches the hardware only through src/platform (its handles), never the machine itself', () => {
    expect(edges.filter((e) => e.from === 'vmm' && ['cpu', 'memory', 'native'].includes(e.to))).toEqual([]);
  });

  it('rejects upward, sideways and unknown edges', () => {
    expect(layeringViolation({ file: 'x', from: 'platform', to: 'vmm' })).toMatch(/imports src\/vmm/);
    expect(layeringViolation({ file: 'x', from: 'memory', to: 'cpu' })).toMatch(/imports src\/cpu/);
    expect(layeringViolation({ file: 'x', from: 'shared', to: 'cpu' })).toMatch(/must not import/);
    expect(layeringViolation({ file: 'x', from: 'gadgets', to: 'cpu' })).toMatch(/no layer/);
    expect(layeringViolation({ file: 'x', from: 'vmm', to: 'shared' })).toBeUndefined();
    expect(layeringViolation({ file: 'x', from: 'boot', to: 'vmm' })).toBeUndefined();
  });
});
