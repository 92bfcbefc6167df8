// `minivisor trace diff A B` (src/shared/trace-diff.ts), in process: header differences first,
// then the first event where the traces part, with the events around it, in words
// (docs/trace-schema.md). Values in words: arrays and objects spelled out, instruction counts
// grouped in thousands, fields one trace lacks called absent.
import { describe, expect, it } from 'vitest';
import { describeEvent, diffTraces } from '../../../src/shared/trace-diff.js';

const header = (config: Record<string, unknown>) => JSON.stringify({ type: 'minivisor-trace', schema: 3, minivisor: '0.1.0', config });
const event = (seq: number, fields: Record<string, unknown> = {}) => JSON.stringify({ seq, source: 'hw', type: 'tdcall', ...fields });
const text = (...lines: string[]) => `${lines.join('\n')}\n`;

describe('describeEvent', () => {
  it('puts the stage and the instruction count (grouped) after the number, then the other fields in words', () => {
    expect(describeEvent({ seq: 41, source: 'hw', type: 'tdcall', stage: 'kernel', icount: '0x12d687', leaf: 'MEM_PAGE_ACCEPT', status: '0x0' }))
      .toBe('#41 (stage kernel, 1,234,567 instructions) hw tdcall: leaf MEM_PAGE_ACCEPT, status 0x0');
    // A count written as a JSON number counts too; neither: no parenthesis at all.
    expect(describeEvent({ seq: 2, source: 'vmm', type: 'x', icount: 1000 })).toBe('#2 (1,000 instructions) vmm x');
    expect(describeEvent({ seq: 3, source: 'vmm', type: 'x', icount: 'soon' })).toBe('#3 vmm x');
    // A hand-edited count that only looks like hex is no count, not a crash (README: bad input never crashes).
    expect(describeEvent({ seq: 4, source: 'vmm', type: 'x', icount: '0xnot-hex' })).toBe('#4 vmm x');
    // "0x" alone names no number either (BigInt('0x') throws), and a count of 0 is a count.
    expect(describeEvent({ seq: 6, source: 'vmm', type: 'x', icount: '0x' })).toBe('#6 vmm x');
    expect(describeEvent({ seq: 7, source: 'vmm', type: 'x', icount: 0 })).toBe('#7 (0 instructions) vmm x');
    // A JSON number past 2^53 is not the count the file was written with: none is shown.
    expect(describeEvent({ seq: 8, source: 'vmm', type: 'x', icount: 2 ** 60 })).toBe('#8 vmm x');
    // A stage field is shown whatever its value.
    expect(describeEvent({ seq: 9, source: 'vmm', type: 'x', stage: 0 })).toBe('#9 (stage 0) vmm x');
  });

  it('spells out arrays and objects, nested, and null', () => {
    expect(describeEvent({ seq: 5, source: 'guest', type: 'stats', pages: [1, 2, [3]], owner: { asid: 1, perms: [0x1f, 0] }, gpa: null }))
      .toBe('#5 guest stats: pages [1, 2, [3]], owner {asid 1, perms [31, 0]}, gpa null');
  });
});

describe('diffTraces', () => {
  const status = (seq: number, value: string) => event(seq, { status: value });
  const run = (n: number, changed?: number) => Array.from({ length: n }, (_, k) => status(k, k === changed ? '0x1' : '0x0'));

  it('shows three events both traces share, then up to four of each side from the divergence, and counts the rest', () => {
    const d = diffTraces(text(header({}), ...run(10)), text(header({}), ...run(12, 5)), ['a.jsonl', 'b.jsonl']);
    expect(d).toEqual({
      identical: false,
      lines: [
        'the traces agree on 5 events and part at event 5:',
        '  both  #2 hw tdcall: status 0x0',
        '  both  #3 hw tdcall: status 0x0',
        '  both  #4 hw tdcall: status 0x0',
        '  A >  #5 hw tdcall: status 0x0',
        '  A    #6 hw tdcall: status 0x0',
        '  A    #7 hw tdcall: status 0x0',
        '  A    #8 hw tdcall: status 0x0',
        '  A     … 1 more events',
        '  B >  #5 hw tdcall: status 0x1',
        '  B    #6 hw tdcall: status 0x0',
        '  B    #7 hw tdcall: status 0x0',
        '  B    #8 hw tdcall: status 0x0',
        '  B     … 3 more events',
        '  first difference in status (A 0x0, B 0x1)',
      ],
    });
    // With context 1: one shared event, two of each side; a side with exactly that many counts none.
    expect(diffTraces(text(...run(3)), text(...run(4, 1)), ['a', 'b'], 1).lines).toEqual([
      'the traces agree on 1 events and part at event 1:',
      '  both  #0 hw tdcall: status 0x0',
      '  A >  #1 hw tdcall: status 0x0',
      '  A    #2 hw tdcall: status 0x0',
      '  B >  #1 hw tdcall: status 0x1',
      '  B    #2 hw tdcall: status 0x0',
      '  B     … 1 more events',
      '  first difference in status (A 0x0, B 0x1)',
    ]);
  });

  it('says where the shorter trace ends when one is the start of the other, naming its file', () => {
    const d = diffTraces(text(...run(4)), text(...run(6)), ['short.jsonl', 'long.jsonl']);
    expect(d).toEqual({
      identical: false,
      lines: [
        'the traces agree on 4 events and part at event 4:',
        '  both  #1 hw tdcall: status 0x0',
        '  both  #2 hw tdcall: status 0x0',
        '  both  #3 hw tdcall: status 0x0',
        '  A     (short.jsonl ends here, after 4 events)',
        '  B >  #4 hw tdcall: status 0x0',
        '  B    #5 hw tdcall: status 0x0',
      ],
    });
    expect(diffTraces(text(...run(6)), text(...run(4)), ['long.jsonl', 'short.jsonl']).lines.at(-1)).toBe('  B     (short.jsonl ends here, after 4 events)');
  });

  it('names the first differing field of the first differing event, a field one side lacks as absent', () => {
    const a = text(header({ platform: 'tdx' }), event(0), event(1, { status: '0x0' }));
    const b = text(header({ platform: 'tdx' }), event(0), event(1, { status: '0x0', gpa: '0x1000' }));
    const d = diffTraces(a, b);
    expect(d.identical).toBe(false);
    expect(d.lines.at(-1)).toBe('  first difference in gpa (A absent, B 0x1000)');
    const back = diffTraces(b, a);
    expect(back.lines.at(-1)).toBe('  first difference in gpa (A 0x1000, B absent)');
    // Fields compared by value: an equal list on both sides is no difference.
    const listed = (value: string) => text(event(0, { list: [1, { gpa: '0x2' }], status: value }));
    expect(diffTraces(listed('0x0'), listed('0x1')).lines.at(-1)).toBe('  first difference in status (A 0x0, B 0x1)');
  });

  it('lists header differences first, a config field one side lacks as absent, and is not identical for them alone', () => {
    const d = diffTraces(text(header({ platform: 'tdx' }), event(0)), text(header({ platform: 'tdx', vcpus: 2 }), event(0)));
    expect(d.lines).toEqual(['the headers differ:', '  config.vcpus: A absent, B 2', 'the 1 events are identical']);
    expect(d.identical).toBe(false);
  });

  it('says which side has no header line', () => {
    const withHeader = text(header({ platform: 'tdx' }), event(0));
    const without = text(event(0));
    expect(diffTraces(withHeader, without).lines[1]).toBe('  only A has a header line (an older or hand-made trace?)');
    expect(diffTraces(without, withHeader).lines[1]).toBe('  only B has a header line (an older or hand-made trace?)');
    expect(diffTraces(without, without)).toEqual({ identical: true, lines: ['the 1 events are identical'] });
  });
});
