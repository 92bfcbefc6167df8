// What a boot costs before its guest runs includes every built-in module of Node's it loads
// (issue 11): node:crypto was ~6 ms of CPU and ~35 modules (the launch digests and the trace hash
// come from the addon), node:v8 ~4 ms (it loads node:stream), both for features a default boot
// does not use; node:os ~0.5 ms for two signal numbers, node:process (commander's) a module compiled
// for the global it exports. The installed command, as a user runs it; the process lists what it loaded.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// A CommonJS preload (--import would bring the ES module loader and node:stream with it), writing
// with writeSync (process.stderr, a pipe here, would load node:stream too).
const LOADED_AT_EXIT = "process.on('exit', () => require('node:fs').writeSync(2, '\\n@loaded ' + JSON.stringify(process.moduleLoadList) + '\\n'));";
let dir: string;
let preload: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'minivisor-builtins-'));
  preload = join(dir, 'loaded-at-exit.cjs');
  writeFileSync(preload, LOADED_AT_EXIT);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function bootLoads(platform: 'tdx' | 'snp'): string[] {
  const r = spawnSync(process.execPath, ['--require', preload, 'bin/minivisor.js', 'boot', '--json', '--platform', platform, '--memory', '256M', '--workload', '16M'], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout).outcome).toBe('done');
  const m = /@loaded (.*)/.exec(r.stderr);
  expect(m, r.stderr).not.toBeNull();
  return JSON.parse(m![1]!) as string[];
}

describe('minivisor boot', () => {
  it.each(['tdx', 'snp'] as const)('%s: loads none of node:crypto, node:v8 (nor node:stream), node:os and node:process', (platform) => {
    const loaded = bootLoads(platform);
    expect(loaded).toContain('NativeModule fs');  // the list is the real one
    expect(loaded.filter((name) => /^NativeModule (crypto|v8|stream|os|process)$/.test(name))).toEqual([]);
  });
});
