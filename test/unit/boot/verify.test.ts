// `verify` (src/boot/verify.ts) against a hardware whose page states the test chooses: every page
// whose guest record and hardware state disagree is reported, in maximal ranges that never cross
// a change of the guest's view, of the hardware's state name, or a gap; a leaf that outlasts the
// guest's run is clipped to it. test/guest/boot/verify.test.ts checks it on real boots.
import { describe, expect, it } from 'vitest';
import { verifyAcceptance, verifyReportJson } from '../../../src/boot/verify.js';
import { governingLeafEnd, type PageState } from '../../../src/platform/platform.js';
import { MEMORY, MiB, memoryWith, ram, unaccepted } from '../../helpers/guest-record-memory.js';

const PAGE = 0x1000n;
/** 2 MiB units, bits 3 and 5 set: accepted [0, 6M), unaccepted [6M, 8M), accepted [8M, 10M), unaccepted [10M, 12M), accepted [12M, 16M). */
const memory = memoryWith({ unit: 0x200000n, bitmap: [0b0010_1000, 0, 0, 0, 0, 0, 0, 0], e820: [ram(0n, 4n * MiB), unaccepted(4n * MiB, 12n * MiB)] });
const guestAccepted = (gpa: bigint) => !((gpa >= 6n * MiB && gpa < 8n * MiB) || (gpa >= 10n * MiB && gpa < 12n * MiB));

/** A private 4 KiB page, accepted (MAPPED) or waiting for its accept (PENDING). */
const page = (gpa: bigint, accepted: boolean): PageState => ({ gpa, visibility: 'private', accepted, pending: !accepted, pageSize: '4k', raw: accepted ? 'MAPPED' : 'PENDING' });

/** A hardware with 4 KiB leaves that agrees with the guest except where `override` answers. */
function hardware(override: (gpa: bigint) => Partial<PageState> | undefined = () => undefined) {
  return { pageState: (gpa: bigint): PageState => ({ ...page(gpa, guestAccepted(gpa)), ...override(gpa) }) };
}
const within = (gpa: bigint, start: bigint, end: bigint) => gpa >= start && gpa < end;

describe('verify', () => {
  it('agrees with a hardware that agrees: every byte of the record checked, nothing reported', () => {
    expect(verifyAcceptance(hardware(), memory)).toEqual({ ok: true, checkedBytes: MEMORY, mismatches: [] });
  });

  it('reports each disagreement once, in maximal ranges: not across a gap, a change of hardware state, or a change of the guest\'s view', () => {
    const report = verifyAcceptance(hardware((gpa) => {
      if (within(gpa, 2n * MiB, 3n * MiB)) return { accepted: false, raw: 'PENDING' };            // two stretches with one name and a gap
      if (within(gpa, 3n * MiB + 2n * PAGE, 3n * MiB + 4n * PAGE)) return { accepted: false, raw: 'PENDING' };
      if (within(gpa, 3n * MiB + 4n * PAGE, 3n * MiB + 5n * PAGE)) return { accepted: false, raw: 'BLOCKED' }; // another name straight after
      if (within(gpa, 6n * MiB - PAGE, 6n * MiB + PAGE)) return { accepted: !guestAccepted(gpa), raw: 'ODD' }; // one name, across the guest's change
      return undefined;
    }), memory);
    expect(report.ok).toBe(false);
    expect(report.mismatches).toEqual([
      { start: 2n * MiB, end: 3n * MiB, guest: 'accepted', hardware: 'PENDING' },
      { start: 3n * MiB + 2n * PAGE, end: 3n * MiB + 4n * PAGE, guest: 'accepted', hardware: 'PENDING' },
      { start: 3n * MiB + 4n * PAGE, end: 3n * MiB + 5n * PAGE, guest: 'accepted', hardware: 'BLOCKED' },
      { start: 6n * MiB - PAGE, end: 6n * MiB, guest: 'accepted', hardware: 'ODD' },
      { start: 6n * MiB, end: 6n * MiB + PAGE, guest: 'unaccepted', hardware: 'ODD' },
    ]);
  });

  it('steps by the leaf that governs a page, and ends a mismatch where the guest\'s run ends, not where the leaf does', () => {
    // One 1 GiB leaf, accepted, over all of memory: the guest's two unaccepted runs disagree with it, and nothing past them is reported.
    const report = verifyAcceptance(hardware(() => ({ accepted: true, pending: false, pageSize: '1g', raw: 'MAPPED' })), memory);
    expect(report.mismatches).toEqual([
      { start: 6n * MiB, end: 8n * MiB, guest: 'unaccepted', hardware: 'MAPPED' },
      { start: 10n * MiB, end: 12n * MiB, guest: 'unaccepted', hardware: 'MAPPED' },
    ]);
  });

  it('a record whose run starts inside a page: the mismatch starts where the run does, and the next page is looked at on its own', () => {
    // E820 from the guest's memory is not page aligned when the guest does not align it: RAM to 0x1800, unaccepted (all units unaccepted) after.
    const odd = memoryWith({ unit: 0x1000n, bitmap: new Array<number>(512).fill(0xff), e820: [ram(0n, 0x1800n), unaccepted(0x1800n, MEMORY - 0x1800n)] });
    const asked: bigint[] = [];
    const report = verifyAcceptance({
      pageState(gpa) {
        asked.push(gpa);
        return page(gpa, gpa < 0x3000n);  // the hardware has the first three pages accepted
      },
    }, odd);
    expect(report.mismatches).toEqual([{ start: 0x1800n, end: 0x3000n, guest: 'unaccepted', hardware: 'MAPPED' }]);
    expect(asked.slice(0, 4)).toEqual([0n, 0x1000n, 0x1000n, 0x2000n]);
  });

  it('the leaf that governs a page ends at that leaf\'s boundary, from any page inside it', () => {
    expect(governingLeafEnd({ gpa: 0x201000n, pageSize: '2m' })).toBe(0x400000n);
    expect(governingLeafEnd({ gpa: 0x400000n, pageSize: '2m' })).toBe(0x600000n);
    expect(governingLeafEnd({ gpa: 0x3ffff000n, pageSize: '1g' })).toBe(0x40000000n);
    expect(governingLeafEnd({ gpa: 0x5000n, pageSize: '4k' })).toBe(0x6000n);
  });

  it('says why there is nothing to compare, in its JSON too', () => {
    const blank = { size: MEMORY, read: (_gpa: bigint, length: number) => new Uint8Array(length) };
    const report = verifyAcceptance(hardware(), blank);
    expect(report).toMatchObject({ ok: false, checkedBytes: 0n, mismatches: [] });
    expect(report.noRecord).toMatch(/no valid acceptance record/);
    expect(verifyReportJson(report)).toEqual({ ok: false, noRecord: report.noRecord, checkedBytes: 0, mismatches: [] });
  });
});
