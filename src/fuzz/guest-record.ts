// The fuzz oracle's view of the guest's acceptance record: the units the guest still believes
// unaccepted. The record itself is read in one place, src/boot/guest-record.ts.
import { readGuestMemoryRecord, type GuestMemoryReader } from '../boot/guest-record.js';
import type { GuestAcceptanceRecord } from './oracle.js';

export type { GuestMemoryReader } from '../boot/guest-record.js';

/** undefined when the guest has not written valid boot params (yet). */
export function readGuestAcceptanceRecord(memory: GuestMemoryReader): GuestAcceptanceRecord | undefined {
  const record = readGuestMemoryRecord(memory);
  if (!record) return undefined;
  return { unacceptedRanges: record.runs.filter((r) => !r.accepted).map(({ start, end }) => ({ start, end })) };
}
