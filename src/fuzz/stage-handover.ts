// What one boot stage hands the next about acceptance, against what the hardware holds. When the
// guest announces a stage (the decompressor handing the kernel its boot params and bitmap), the
// host reads the guest's acceptance record right then and asks the hardware model which of the
// pages the record calls unaccepted are in fact accepted. The oracle then keeps those the guest
// accepted itself in this lifetime: a latent double acceptance in what the earlier stage handed
// on, even when the later stage happens to stop on it (defence in depth does not make the
// earlier stage's record right; the next lazy accept of such a page in a kernel without that
// check zeroes live data).
import type { BootStage } from '../boot/console-protocol.js';
import type { Machine } from '../cpu/machine.js';
import { readGuestAcceptanceRecord } from './guest-record.js';

const PAGE = 0x1000n;
/** Counted a 2 MiB block at a time (one native call), pages walked only where some are held. */
const BLOCK = 0x200000n;

export interface StageHandover {
  /** The stage the guest entered, and the seq of its `stage` trace event. */
  stage: BootStage;
  seq: number;
  /** Pages the guest's record called unaccepted while the hardware held them accepted, as [start, end) ranges. */
  heldButRecordedUnaccepted: { start: bigint; end: bigint }[];
}

/** Whole pages of [start, end) clipped to guest RAM (guest memory is untrusted: any bounds may come out of it). */
function clip(start: bigint, end: bigint, memoryBytes: bigint): [bigint, bigint] {
  const lo = start - (start % PAGE);
  const hiRaw = end > memoryBytes ? memoryBytes : end;
  const hi = ((hiRaw + PAGE - 1n) / PAGE) * PAGE;
  return [lo, hi > memoryBytes ? memoryBytes - (memoryBytes % PAGE) : hi];
}

/** The handover at this moment; undefined when the guest has published no record (yet). */
export function captureHandover(machine: Machine, stage: BootStage, seq: number): StageHandover | undefined {
  const record = readGuestAcceptanceRecord(machine.memory);
  if (!record) return undefined;
  const held: { start: bigint; end: bigint }[] = [];
  const gate = machine.gate;
  const add = (gpa: bigint) => {
    const last = held[held.length - 1];
    // Pages come in ascending order, but the record's runs are rounded out to whole pages, so two
    // of them may share one: it is named once (>=).
    if (last && last.end >= gpa) last.end = gpa + PAGE;
    else held.push({ start: gpa, end: gpa + PAGE });
  };
  for (const range of record.unacceptedRanges) {
    const [start, end] = clip(range.start, range.end, machine.memoryBytes);
    for (let block = start; block < end;) {
      const blockEnd = (block / BLOCK + 1n) * BLOCK < end ? (block / BLOCK + 1n) * BLOCK : end;
      if (gate.count('private', block, blockEnd - block) > 0n) {
        for (let gpa = block; gpa < blockEnd; gpa += PAGE) if (gate.get('private', gpa) !== 'none') add(gpa);
      }
      block = blockEnd;
    }
  }
  return { stage, seq, heldButRecordedUnaccepted: held };
}
