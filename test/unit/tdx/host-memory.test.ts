// The host's view of TD memory (src/platform/host-memory.ts through TdxVmmHandle): the host may
// use shared memory only; TD-private memory is encrypted and integrity-protected with the TD's key
// (TDX Module Base Spec, "Private vs. shared memory"), so a host access to it is refused. An access
// is refused for the pages it touches, and only for those.
import { describe, expect, it } from 'vitest';
import { finalizedTd } from '../../helpers/tdx-vmm-exits.js';
import { HostAccessRefused } from '../../../src/platform/host-memory.js';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';

const PRIVATE = 0x400000n;  // a 2M page AUGed to the TD: private
const SHARED_END = PRIVATE;  // the host's memory below it

describe('host access to TD memory', () => {
  it('a read or write that ends where a private page starts is the host\'s own; one that reaches into it is refused', () => {
    const td = finalizedTd();
    td.platform.module.host.memPageAug(gpaLevel(PRIVATE, 1));
    const host = td.platform.module.host.hostMemory;
    host.write(SHARED_END - 0x10n, Buffer.alloc(0x10, 0x5a));
    expect(Buffer.from(host.read(SHARED_END - 0x10n, 0x10))).toEqual(Buffer.alloc(0x10, 0x5a));
    expect(host.readU64(SHARED_END - 8n)).toBe(0x5a5a5a5a5a5a5a5an);
    expect(() => host.read(SHARED_END - 0x10n, 0x11)).toThrow(HostAccessRefused);
    expect(() => host.write(SHARED_END - 0x10n, Buffer.alloc(0x11))).toThrow(/host write refused: the page is TD-private memory at 0x400000/);
    // A range outside RAM is a RangeError, from tryWrite too (src/platform/host-memory.ts), not a refusal.
    for (const gpa of [-0x1000n, (16n << 20n) - 4n]) expect(() => host.tryWrite(gpa, Buffer.alloc(8))).toThrow(RangeError);
    td.platform.machine.close();
  });
});
