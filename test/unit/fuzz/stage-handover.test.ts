// What a stage hands the next (src/fuzz/stage-handover.ts): the pages the guest's acceptance
// record calls unaccepted while the hardware holds them accepted. The record is guest memory,
// hostile input, so its runs may start and end anywhere: a page the record calls unaccepted in
// any part is one the next lazy accept takes whole, zeroing what the guest keeps in it.
import { afterEach, describe, expect, it } from 'vitest';
import { Machine } from '../../../src/cpu/machine.js';
import { captureHandover } from '../../../src/fuzz/stage-handover.js';
import { MEMORY, MiB, memoryWith, ram, unaccepted, type RecordSpec } from '../../helpers/guest-record-memory.js';

const PAGE = 0x1000n;
let machine: Machine | undefined;
afterEach(() => machine?.close());

/**
 * A machine whose memory holds `record` and whose gate lets the guest at `accepted` pages: read
 * and write, or only read for those given as [gpa, 'read'] (a validated SNP page whose VMPL
 * permissions the guest cut to read-only is still validated).
 */
function machineWith(record: RecordSpec | undefined, accepted: (bigint | [bigint, 'read'])[]): Machine {
  machine = new Machine({ memoryBytes: MEMORY, countInstructions: false });
  if (record) machine.memory.write(0n, memoryWith(record).read(0n, Number(MEMORY)));
  for (const page of accepted) {
    const [gpa, access] = typeof page === 'bigint' ? [page, 'readwrite' as const] : page;
    machine.gate.set('private', gpa, PAGE, access);
  }
  return machine;
}

const held = (record: RecordSpec | undefined, accepted: (bigint | [bigint, 'read'])[]) =>
  captureHandover(machineWith(record, accepted), 'kernel', 7)?.heldButRecordedUnaccepted;

describe('a stage handover', () => {
  it('names the accepted pages the record calls unaccepted, as runs of neighbours, and none the record calls accepted', () => {
    // 2 MiB units, units 1 and 3 unaccepted (2-4 MiB and 6-8 MiB).
    const record = { unit: 0x200000n, bitmap: [0b1010, 0, 0, 0, 0, 0, 0, 0], e820: [unaccepted(0n, MEMORY)] };
    const accepted: (bigint | [bigint, 'read'])[] = [
      2n * MiB + PAGE, 2n * MiB + 2n * PAGE, // two neighbours: one run
      4n * MiB, 5n * MiB, // recorded accepted: nothing wrong
      6n * MiB, // the first page of a unit
      8n * MiB - PAGE, // its last page, at the end of a 2 MiB block
      [7n * MiB, 'read'], // accepted, read-only
    ];
    expect(held(record, accepted)).toEqual([
      { start: 2n * MiB + PAGE, end: 2n * MiB + 3n * PAGE },
      { start: 6n * MiB, end: 6n * MiB + PAGE },
      { start: 7n * MiB, end: 7n * MiB + PAGE },
      { start: 8n * MiB - PAGE, end: 8n * MiB },
    ]);
  });

  it('reports the stage and the seq of its trace event', () => {
    const record = { unit: 0x200000n, bitmap: [0b10, 0, 0, 0, 0, 0, 0, 0], e820: [unaccepted(0n, MEMORY)] };
    expect(captureHandover(machineWith(record, [2n * MiB]), 'decompressor', 41)).toEqual({
      stage: 'decompressor', seq: 41, heldButRecordedUnaccepted: [{ start: 2n * MiB, end: 2n * MiB + PAGE }],
    });
  });

  it('a run across 2 MiB blocks finds its pages in each block, up to the last page of memory', () => {
    // 4 KiB units: the record's unaccepted entry covers 3 MiB - 16 MiB, every unit set.
    const bitmap = new Array<number>(Number(MEMORY / PAGE / 8n)).fill(0xff);
    const record = { unit: PAGE, bitmap, bitmapGpa: 0x80000n, e820: [ram(0n, 3n * MiB), unaccepted(3n * MiB, MEMORY - 3n * MiB)] };
    expect(held(record, [3n * MiB - PAGE, 5n * MiB, 9n * MiB + 0x5000n, MEMORY - PAGE])).toEqual([
      { start: 5n * MiB, end: 5n * MiB + PAGE },
      { start: 9n * MiB + 0x5000n, end: 9n * MiB + 0x6000n },
      { start: MEMORY - PAGE, end: MEMORY },
    ]);
  });

  it('a page the record calls unaccepted only in part counts whole, at either end of the run', () => {
    // 4 KiB units; the unaccepted entry starts and ends inside a page.
    const bitmap = new Array<number>(Number(MEMORY / PAGE / 8n)).fill(0xff);
    const start = 3n * MiB + 0x800n, end = 4n * MiB + 0x800n;
    const record = { unit: PAGE, bitmap, bitmapGpa: 0x80000n, e820: [ram(0n, start), unaccepted(start, end - start), ram(end, MEMORY - end)] };
    expect(held(record, [3n * MiB - PAGE, 3n * MiB, 4n * MiB, 4n * MiB + PAGE])).toEqual([
      { start: 3n * MiB, end: 3n * MiB + PAGE },
      { start: 4n * MiB, end: 4n * MiB + PAGE },
    ]);
  });

  it('a page two unaccepted runs of the record share is named once', () => {
    // 4 KiB units: an accepted entry of 256 bytes inside page 0x3000 parts two unaccepted ones.
    const bitmap = new Array<number>(Number(MEMORY / PAGE / 8n)).fill(0xff);
    const record = { unit: PAGE, bitmap, bitmapGpa: 0x80000n, e820: [ram(0n, 0x2000n), unaccepted(0x2000n, 0x1800n), ram(0x3800n, 0x100n), unaccepted(0x3900n, 0x2700n), ram(0x6000n, MEMORY - 0x6000n)] };
    expect(held(record, [0x2000n, 0x3000n, 0x4000n])).toEqual([{ start: 0x2000n, end: 0x5000n }]);
  });

  it('nothing held when the record calls nothing unaccepted; no handover when the guest published no record', () => {
    expect(held({ unit: 0x200000n, bitmap: [0, 0, 0, 0, 0, 0, 0, 0], e820: [unaccepted(0n, MEMORY)] }, [2n * MiB])).toEqual([]);
    expect(captureHandover(machineWith(undefined, [2n * MiB]), 'kernel', 1)).toBeUndefined();
  });
});
