// The table of trace event types (src/shared/trace-event-types.ts) that `--trace-filter` checks
// names against: every type a boot of either platform records is in it, and the trace schema
// document names every one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootGuest } from '../../src/boot/boot-guest.js';
import { parseBootOptions } from '../../src/cli/boot-options.js';
import { TRACE_EVENT_TYPES } from '../../src/shared/trace-event-types.js';

describe('trace event types', () => {
  it('covers every type a TDX and an SNP boot record, with one vCPU and with several', () => {
    const known = new Set(TRACE_EVENT_TYPES.map((t) => `${t.source} ${t.type}`));
    for (const [platform, vcpus] of [['tdx', '1'], ['snp', '1'], ['snp', '2']] as const) {
      const run = bootGuest(parseBootOptions({ platform, memory: '128M', workload: '16M', vcpus }), { keepTrace: true });
      run.platform.machine.close();
      const seen = new Set(run.trace.events.map((e) => `${e.source} ${e.type}`));
      expect([...seen].filter((t) => !known.has(t)), platform).toEqual([]);
    }
  });

  it('docs/trace-schema.md names every type', () => {
    const doc = readFileSync(join(__dirname, '../../docs/trace-schema.md'), 'utf8');
    expect(TRACE_EVENT_TYPES.filter((t) => !doc.includes(`\`${t.type}\``)).map((t) => t.type)).toEqual([]);
  });
});
