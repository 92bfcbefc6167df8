// Table A5 as the guest sees it: host SEAMCALLs between guest runs, observed through TDCALLs and accesses.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import { OperandId, TdxStatus, withOperand } from '../../../src/platform/tdx/status.js';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { acceptAsm, HALT, tdGuest } from '../../helpers/tdx-guest.js';

const P = 0x400000n;

/** Runs until the guest's first HLT-free pause: a budget stop after `n` instructions. */
function runFor(td: ReturnType<typeof tdGuest>, n: bigint) {
  td.platform.machine.vcpu.instructionLimit = td.platform.machine.vcpu.instructions + n;
  return runTd(td);
}

describe('A5 host transitions seen by the guest', () => {
  it('BLOCK → TRACK → REMOVE of an accepted page: the next access faults it back in as PENDING (#VE), content gone', () => {
    const td = tdGuest(`${acceptAsm(P)}\n mov qword ptr [0x400000], 0x4242\n 1: pause\n cmp r13, 0\n je 1b\n mov rax, [0x400000]\n ${HALT}`);
    expect(runFor(td, 200n).outcome).toBe('budget');
    const h = td.platform.module.host;
    expect(h.memPageRemove(gpaLevel(P, 0)).status).toBe(0xc0000b0600000001n); // GPA_RANGE_NOT_BLOCKED
    expect(h.memRangeBlock(gpaLevel(P, 0)).status).toBe(0n);
    expect(h.memTrack().status).toBe(0n);
    expect(h.memPageRemove(gpaLevel(P, 0)).status).toBe(0n);
    td.platform.machine.vcpu.regs.r13 = 1n;
    td.platform.machine.vcpu.instructionLimit = 1n << 40n;
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(20n); // #VE: PENDING after the VMM's re-AUG
  });

  it('DEMOTE keeps an accepted 2M page accessible; PROMOTE restores the 2M leaf (ACCEPT 2M → ALREADY_ACCEPTED|1)', () => {
    const td = tdGuest(`${acceptAsm(P, 1)}\n mov qword ptr [0x5ff000], 7\n 1: pause\n cmp r13, 0\n je 1b
      mov rbx, [0x5ff000]\n ${acceptAsm(P, 1)}\n mov rdx, rax\n ${HALT}`);
    expect(runFor(td, 300n).outcome).toBe('budget');
    const h = td.platform.module.host;
    h.memRangeBlock(gpaLevel(P, 1)); h.memTrack();
    expect(h.memPageDemote(gpaLevel(P, 1)).status).toBe(0n);
    expect(td.platform.machine.gate.count('private', P, 0x200000n, 'readwrite')).toBe(512n);
    h.memRangeBlock(gpaLevel(P, 1)); h.memTrack();
    expect(h.memPagePromote(gpaLevel(P, 1)).status).toBe(0n);
    td.platform.machine.vcpu.regs.r13 = 1n;
    td.platform.machine.vcpu.instructionLimit = 1n << 40n;
    expect(runTd(td).outcome).toBe('done');
    expect([td.platform.machine.vcpu.regs.rbx, td.platform.machine.vcpu.regs.rdx]).toEqual([7n, 0x00000b0a00000001n]);
  });

  it('PAGE.ADD pages are MAPPED and measured: the boot image runs without any ACCEPT', () => {
    const td = tdGuest(`mov rax, [0x10000]\n ${HALT}`);
    expect(runTd(td).outcome).toBe('done');
    expect(td.trace.ofType('tdcall').map((c) => c.leaf)).toEqual(['VP_VMCALL']); // only the final TDVMCALL<HLT>
    expect(td.platform.module.mrtd).toHaveLength(48);
  });

  it('MRTD is SHA-384 over 128-byte blocks (operation name, GPA at byte 16) and each extended 256-byte chunk', () => {
    // tdh_mem_page_add.c / tdh_mr_extend.c: PAGE.ADD measures its GPA; MR.EXTEND its GPA, then the chunk.
    const td = tdGuest(HALT, { noBoot: true });
    const h = td.platform.module.host;
    for (let level = h.septTopLevel; level >= 1; level--) h.memSeptAdd(gpaLevel(0n, level as 1 | 2 | 3));
    const expected = createHash('sha384');
    const block = (op: string, gpa: bigint) => {
      const b = Buffer.alloc(128);
      b.write(op, 0, 'latin1');
      b.writeBigUInt64LE(gpa, 16);
      return b;
    };
    // 0x1000 and 0x7000: the VMM's PAGE.ADD + MR.EXTEND of the whole page; 0x2000 added without
    // measuring; 0x3000 added, then extended by sixteen single MR.EXTEND calls.
    for (const gpa of [0x1000n, 0x2000n, 0x3000n, 0x7000n]) {
      const page = Buffer.alloc(4096, Number(gpa >> 12n));
      page.write(`page 0x${gpa.toString(16)}`);
      if (gpa === 0x1000n || gpa === 0x7000n) {
        expect(h.addMeasuredPage(gpa, page).status).toBe(0n);
      } else {
        expect(h.memPageAdd(gpaLevel(gpa, 0), page).status).toBe(0n);
        if (gpa === 0x3000n) for (let off = 0; off < 4096; off += 256) expect(h.mrExtend(gpa + BigInt(off)).status).toBe(0n);
      }
      expected.update(block('MEM.PAGE.ADD', gpa));
      if (gpa !== 0x2000n) for (let off = 0; off < 4096; off += 256) expected.update(block('MR.EXTEND', gpa + BigInt(off))).update(page.subarray(off, off + 256));
    }
    expect(h.mrFinalize().mrtd!.toString('hex')).toBe(expected.digest('hex'));
    // The trace: a whole-page extend is one event standing for its sixteen calls (docs/trace-schema.md).
    const extends_ = td.trace.ofType('seamcall').filter((e) => e.leaf === 'TDH_MR_EXTEND');
    expect(extends_.map((e) => [e.rcx, e.calls ?? 1])).toEqual([
      [0x1000n, 16], ...Array.from({ length: 16 }, (_, i) => [0x3000n + BigInt(i * 256), 1]), [0x7000n, 16],
    ]);
    expect(extends_.every((e) => e.result === 'SUCCESS')).toBe(true);
  });

  it('the whole-page extend is made only when its PAGE.ADD succeeded', () => {
    const td = tdGuest(HALT, { noBoot: true });
    const h = td.platform.module.host;
    for (let level = h.septTopLevel; level >= 1; level--) h.memSeptAdd(gpaLevel(0n, level as 1 | 2 | 3));
    const page = Buffer.alloc(4096, 0x5a);
    expect(h.memPageAdd(gpaLevel(0x1000n, 0), page).status).toBe(0n);
    const before = td.trace.length;
    // PAGE.ADD of a page already added fails first: no MR.EXTEND is made at all.
    expect(h.addMeasuredPage(0x1000n, page).status).not.toBe(0n);
    expect(td.trace.events.slice(before).map((e) => e.leaf)).toEqual(['TDH_MEM_PAGE_ADD']);
    expect(h.mrFinalize().status).toBe(0n);
    // After finalization PAGE.ADD is refused before the extend, as before.
    const after = td.trace.length;
    expect(h.addMeasuredPage(0x2000n, page).status).toBe(TdxStatus.OP_STATE_INCORRECT);
    expect(td.trace.events.slice(after).map((e) => [e.leaf, e.calls])).toEqual([['TDH_MEM_PAGE_ADD', undefined]]);
  });

  describe('addPages: one launch range (KVM_TDX_INIT_MEM_REGION)', () => {
    /** A TD before MR.FINALIZE with the SEPT levels above [base, base + 4 MiB) added (two 2 MiB tables). */
    const freshTd = (base = 0n) => {
      const td = tdGuest(HALT, { noBoot: true, ...(base > 0n ? { memoryBytes: base + (4n << 20n) } : {}) });
      const h = td.platform.module.host;
      // Each level's entry is named by the start of the range it maps: 2 MiB << 9 per level up.
      for (let level = h.septTopLevel; level >= 2; level--) h.memSeptAdd(gpaLevel(base & -(1n << BigInt(12 + 9 * level)), level as 2 | 3));
      h.memSeptAdd(gpaLevel(base, 1));
      h.memSeptAdd(gpaLevel(base + 0x200000n, 1));
      return td;
    };
    /** 40 pages straddling the 2 MiB boundary, each page's bytes its own. */
    const GPA = 0x1ec000n;
    const source = Buffer.alloc(40 * 4096);
    for (let i = 0; i < 40; i++) source.fill(i + 1, i * 4096, (i + 1) * 4096).write(`page ${i}`, i * 4096);

    it.each([true, false])('measured %s: SEPT, gate, memory and MRTD as the calls one by one, in two events', (measured) => {
      const ranged = freshTd();
      const byPage = freshTd();
      const r = ranged.platform.module.host.addPages(GPA, source, measured);
      expect([r.status, r.at]).toEqual([0n, GPA + 39n * 4096n]);
      for (let i = 0; i < 40; i++) {
        const page = GPA + BigInt(i * 4096), bytes = source.subarray(i * 4096, (i + 1) * 4096);
        const h = byPage.platform.module.host;
        expect((measured ? h.addMeasuredPage(page, bytes) : h.memPageAdd(gpaLevel(page, 0), bytes)).status).toBe(0n);
      }
      for (const td of [ranged, byPage]) {
        const m = td.platform.machine;
        expect(Buffer.from(m.memory.read(GPA, source.byteLength)).equals(source)).toBe(true);
        expect(m.gate.count('private', GPA, BigInt(source.byteLength), 'readwrite')).toBe(40n);
        expect(m.gate.count('private', GPA - 4096n, 4096n, 'readwrite')).toBe(0n);
        expect(m.gate.count('private', GPA + BigInt(source.byteLength), 4096n, 'readwrite')).toBe(0n);
        for (const page of [GPA, 0x200000n, GPA + 39n * 4096n]) expect(td.platform.pageState(page).accepted).toBe(true);
      }
      expect(ranged.platform.module.host.mrFinalize().mrtd!.equals(byPage.platform.module.host.mrFinalize().mrtd!)).toBe(true);
      const launch = ranged.trace.ofType('seamcall').filter((e) => e.leaf === 'TDH_MEM_PAGE_ADD' || e.leaf === 'TDH_MR_EXTEND');
      expect(launch.map((e) => [e.leaf, e.rcx, e.pages, e.calls, e.result])).toEqual([
        ['TDH_MEM_PAGE_ADD', GPA, 40, undefined, 'SUCCESS'],
        ...(measured ? [['TDH_MR_EXTEND', GPA, undefined, 640, 'SUCCESS']] : []),
      ]);
    });

    it('all-zero pages (their chunks are not copied) and GPAs above 4 GiB (a high GPA word) measure as the calls one by one', () => {
      // 7 GiB: the low GPA word is at or above 2^31 too, so the high word must be taken exactly
      // (an error in splitting the GPA shows only when both words are large).
      const base = 7n << 30n;
      const sparse = Buffer.from(source);
      for (let i = 0; i < 40; i += 3) sparse.fill(0, i * 4096, (i + 1) * 4096);
      const ranged = freshTd(base);
      const byPage = freshTd(base);
      expect(ranged.platform.module.host.addPages(base + GPA, sparse, true).status).toBe(0n);
      for (let i = 0; i < 40; i++) {
        expect(byPage.platform.module.host.addMeasuredPage(base + GPA + BigInt(i * 4096), sparse.subarray(i * 4096, (i + 1) * 4096)).status).toBe(0n);
      }
      expect(ranged.platform.module.host.mrFinalize().mrtd!.equals(byPage.platform.module.host.mrFinalize().mrtd!)).toBe(true);
    });

    it.each([true, false])('measured %s: a source given by its non-zero pages launches as the same bytes given whole, and RAM under a page it leaves out reads zero', (measured) => {
      const bytes = Buffer.from(source);
      const pages = new Map<number, Uint8Array>();
      for (let i = 0; i < 40; i++) {
        if (i % 3 === 0) bytes.fill(0, i * 4096, (i + 1) * 4096);
        else if (i !== 7) pages.set(i * 4096, bytes.subarray(i * 4096, (i + 1) * 4096));
      }
      bytes.fill(0, 7 * 4096, 8 * 4096);
      pages.set(7 * 4096, new Uint8Array(4096));  // a zero page given anyway
      const sparse = freshTd(), whole = freshTd();
      // Something already in RAM under pages the sparse source leaves out (0) and gives as zeros (7).
      for (const td of [sparse, whole]) for (const i of [0, 7]) td.platform.machine.memory.write(GPA + BigInt(i * 4096), new Uint8Array(4096).fill(0xee));
      const a = sparse.platform.module.host.addPages(GPA, { byteLength: 40 * 4096, pages }, measured);
      const b = whole.platform.module.host.addPages(GPA, bytes, measured);
      expect(a).toEqual(b);
      const launch = (td: typeof sparse) => td.trace.ofType('seamcall').map((e) => [e.leaf, e.rcx, e.pages, e.calls, e.result]);
      expect(launch(sparse)).toEqual(launch(whole));
      expect(Buffer.from(sparse.platform.machine.memory.read(GPA - 4096n, 42 * 4096)).equals(Buffer.from(whole.platform.machine.memory.read(GPA - 4096n, 42 * 4096)))).toBe(true);
      expect(Buffer.from(sparse.platform.machine.memory.read(GPA, 40 * 4096)).equals(bytes)).toBe(true);
      expect(sparse.platform.machine.gate.count('private', GPA, 40n * 4096n, 'readwrite')).toBe(40n);
      expect(sparse.platform.module.host.mrFinalize().mrtd!.equals(whole.platform.module.host.mrFinalize().mrtd!)).toBe(true);
    });

    it('TDs measuring the same ranges share MRTDs (kept from one to the next); a byte or a step before different, as the calls one by one', () => {
      const mrtd = (td: ReturnType<typeof freshTd>) => td.platform.module.host.mrFinalize().mrtd!.toString('hex');
      const byPage = (pages: readonly { gpa: bigint; bytes: Uint8Array }[]) => {
        const td = freshTd();
        for (const { gpa, bytes } of pages) {
          for (let off = 0; off < bytes.byteLength; off += 4096) {
            expect(td.platform.module.host.addMeasuredPage(gpa + BigInt(off), bytes.subarray(off, off + 4096)).status).toBe(0n);
          }
        }
        return mrtd(td);
      };
      const launch = (pages: readonly { gpa: bigint; bytes: Uint8Array }[]) => {
        const td = freshTd();
        for (const { gpa, bytes } of pages) expect(td.platform.module.host.addPages(gpa, bytes, true).status).toBe(0n);
        return mrtd(td);
      };
      const head = { gpa: GPA, bytes: source.subarray(0, 8 * 4096) };
      const tail = { gpa: GPA + 8n * 4096n, bytes: source.subarray(8 * 4096) };
      const expected = byPage([head, tail]);
      expect([launch([head, tail]), launch([head, tail])]).toEqual([expected, expected]);
      const changed = Buffer.from(tail.bytes);
      changed[5000] ^= 1;
      expect(launch([head, { gpa: tail.gpa, bytes: changed }])).toBe(byPage([head, { gpa: tail.gpa, bytes: changed }]));
      const otherHead = Buffer.from(head.bytes);
      otherHead[0] ^= 1;
      expect(launch([{ gpa: GPA, bytes: otherHead }, tail])).toBe(byPage([{ gpa: GPA, bytes: otherHead }, tail]));
      // A page added before the range (a PAGE.ADD of its own) changes what the range follows.
      const td = freshTd();
      const h = td.platform.module.host;
      expect(h.memPageAdd(gpaLevel(0x100000n, 0), Buffer.alloc(4096)).status).toBe(0n);
      expect(h.addPages(head.gpa, head.bytes, true).status).toBe(0n);
      expect(h.addPages(tail.gpa, tail.bytes, true).status).toBe(0n);
      const reference = freshTd();
      expect(reference.platform.module.host.memPageAdd(gpaLevel(0x100000n, 0), Buffer.alloc(4096)).status).toBe(0n);
      for (let i = 0; i < 40; i++) reference.platform.module.host.addMeasuredPage(GPA + BigInt(i * 4096), source.subarray(i * 4096, (i + 1) * 4096));
      const afterPage = mrtd(reference);
      expect(mrtd(td)).toBe(afterPage);
      expect(afterPage).not.toBe(expected);
    });

    it('a range with a page that cannot be added: a call and an event per page, stopping at that page', () => {
      const td = freshTd();
      const h = td.platform.module.host;
      expect(h.memPageAdd(gpaLevel(GPA + 3n * 4096n, 0), Buffer.alloc(4096)).status).toBe(0n);
      const before = td.trace.length;
      const r = h.addPages(GPA, source, true);
      expect([r.status, r.at]).toEqual([withOperand(TdxStatus.EPT_ENTRY_STATE_INCORRECT, OperandId.RCX), GPA + 3n * 4096n]);
      const events = td.trace.events.slice(before);
      expect(events.map((e) => [e.leaf, e.rcx, e.pages, e.calls])).toEqual([
        ...[0, 1, 2].flatMap((i) => [['TDH_MEM_PAGE_ADD', GPA + BigInt(i * 4096), undefined, undefined], ['TDH_MR_EXTEND', GPA + BigInt(i * 4096), undefined, 16]]),
        ['TDH_MEM_PAGE_ADD', GPA + 3n * 4096n, undefined, undefined],
      ]);
      // The pages before it are added, the ones after it are not.
      expect(td.platform.pageState(GPA + 2n * 4096n).accepted).toBe(true);
      expect(td.platform.pageState(GPA + 4n * 4096n).accepted).toBe(false);
    });

    // tdh_mem_page_add.c: the page's own entry must be FREE (EPT_ENTRY_STATE_INCORRECT|RCX otherwise)
    // and the walk must reach the 4K level (EPT_WALK_FAILED|RCX). A launch range stops at the first
    // call that fails, whichever page of the range it is.
    it.each([0, 39])('a range whose page %i is added already stops there, and leaves that page as it was', (index) => {
      const td = freshTd();
      const h = td.platform.module.host;
      const taken = GPA + BigInt(index * 4096);
      expect(h.memPageAdd(gpaLevel(taken, 0), Buffer.alloc(4096, 0xab)).status).toBe(0n);
      const r = h.addPages(GPA, source, true);
      expect([r.status, r.at]).toEqual([withOperand(TdxStatus.EPT_ENTRY_STATE_INCORRECT, OperandId.RCX), taken]);
      expect(Buffer.from(td.platform.machine.memory.read(taken, 4096)).equals(Buffer.alloc(4096, 0xab))).toBe(true);
      if (index > 0) expect(td.platform.pageState(taken - 4096n).accepted).toBe(true);
    });

    it('a range that runs into a 2 MiB range with no SEPT page stops at its first page there, EPT_WALK_FAILED; one that ends where it starts is one event', () => {
      const firstTableOnly = () => {
        const td = tdGuest(HALT, { noBoot: true });
        const h = td.platform.module.host;
        for (let level = h.septTopLevel; level >= 2; level--) h.memSeptAdd(gpaLevel(0n, level as 2 | 3));
        h.memSeptAdd(gpaLevel(0n, 1)); // only the first 2 MiB range has its 4K table
        return td;
      };
      const td = firstTableOnly();
      const r = td.platform.module.host.addPages(GPA, source, false);
      expect([r.status, r.at]).toEqual([withOperand(TdxStatus.EPT_WALK_FAILED, OperandId.RCX), 0x200000n]);
      expect(td.platform.pageState(0x1ff000n).accepted).toBe(true);
      expect(td.platform.pageState(0x200000n).accepted).toBe(false);
      // A range that ends where that 2 MiB range begins needs nothing of it: every page can only
      // succeed, and one PAGE.ADD event stands for them all (trace schema 3).
      const ending = firstTableOnly();
      const before = ending.trace.length;
      expect(ending.platform.module.host.addPages(0x1f0000n, source.subarray(0, 16 * 4096), false)).toEqual({ status: 0n, at: 0x1ff000n });
      expect(ending.trace.events.slice(before).map((e) => [e.leaf, e.rcx, e.pages])).toEqual([['TDH_MEM_PAGE_ADD', 0x1f0000n, 16]]);
    });

    it('refused whole after MR.FINALIZE, and for a source that is not whole pages, as PAGE.ADD refuses them', () => {
      const td = freshTd();
      const h = td.platform.module.host;
      expect(h.addPages(GPA, source.subarray(0, 6000), false).status).toBe(withOperand(TdxStatus.OPERAND_INVALID, OperandId.R9));
      expect(h.mrFinalize().status).toBe(0n);
      const before = td.trace.length;
      expect(h.addPages(GPA, source, true)).toEqual({ status: TdxStatus.OP_STATE_INCORRECT, at: GPA });
      expect(td.trace.events.slice(before).map((e) => [e.leaf, e.pages])).toEqual([['TDH_MEM_PAGE_ADD', undefined]]);
    });
  });
});
