// vCPU exits handed to the module directly (no guest run): what the #VE info and the TD exit
// carry. intel/tdx-module TDX_1.5.01 src/td_dispatcher/vm_exits/td_ept_violation.c,
// td_other_exits.c (tdx_ept_violation_exit_to_vmm) and tdx_td_dispatcher.c; exit qualifications
// as the SDM Vol. 3C defines them (Table 28-5 I/O, Table 28-7 EPT violations; reference A6).
import { describe, expect, it } from 'vitest';
import type { Access, GateFaultExit, IoExit } from '../../../src/cpu/exits.js';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import { septLockKey } from '../../../src/platform/tdx/sept-states.js';
import { CONFIG_FLAGS_FLEXIBLE_PENDING_VE, TdAttributes, TdModule, TdcsField, type TdExit } from '../../../src/platform/tdx/td-module.js';
import { Machine } from '../../../src/cpu/machine.js';
import { Trace } from '../../../src/shared/trace.js';
import { tdcall } from '../../helpers/tdx-module.js';
import { createTd } from '../../../src/vmm/tdx/run-td.js';

const P = 0x200000n;
const SHARED = 1n << 47n;

/** A finalized TD whose 2M page at P is PENDING (AUG'd, not accepted). */
function tdWithPendingPage(attributes = 0n) {
  const t = createTd({ memoryBytes: 8n << 20n, attributes });
  const m = t.platform.module;
  m.host.memSeptAdd(gpaLevel(0n, 3));
  m.host.memSeptAdd(gpaLevel(0n, 2));
  m.host.mrFinalize();
  expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
  return m;
}

const fault = (access: Access, more: Partial<GateFaultExit> = {}): GateFaultExit => ({
  kind: 'gate-fault', rip: 0x1234n, gpa: P + 0x567n, gva: 0x7000_0567n, access, space: 'private', pageWalk: false,
  outsideRam: false, exactAddress: true, ciphertext: false, ...more,
});

describe('#VE info of an access to a PENDING page (td_ept_violation.c)', () => {
  // Bit 0 data read, 1 data write, 2 instruction fetch (not also a read), 7 GLA valid, 8 the
  // access was to the translation of the linear address; clear when it was to a paging-structure
  // entry, whose read by the walk is a data read (§28.3.3.2) whatever the instruction's access.
  it.each([
    ['read', false, '0x181', 0x181n], ['write', false, '0x182', 0x182n], ['fetch', false, '0x184', 0x184n],
    ['read', true, '0x81', 0x81n], ['write', true, '0x81', 0x81n], ['fetch', true, '0x81', 0x81n],
  ] as const)('%s (page walk: %s) → qualification %s, the exact GLA and GPA, reason 48', (access, pageWalk, _hex, qual) => {
    const m = tdWithPendingPage();
    m.handleExit(fault(access, { pageWalk }));
    expect(m.veInfo.valid).toBe(true);
    expect(m.veInfo.fields).toEqual({ exitReason: 48, exitQualification: qual, gla: 0x7000_0567n, gpa: P + 0x567n, instructionLength: 0, instructionInfo: 0 });
  });
});

describe('EPT-violation TD exits (tdx_ept_violation_exit_to_vmm): GPA bits 11:0 and qualification bits 12:7 cleared', () => {
  it('a PENDING page with SEPT_VE_DISABLE: EEQ type 6 (PENDING_EPT_VIOLATION)', () => {
    const m = tdWithPendingPage(TdAttributes.SEPT_VE_DISABLE);
    const step = m.handleExit(fault('write'));
    expect(m.veInfo.valid).toBe(false);
    expect(step).toMatchObject({ kind: 'td-exit', exit: { reason: 'ept-violation', gpa: P, exitQualification: 0x2n, septState: 'PENDING', eeq: { type: 'pending-ept-violation', raw: 6n } } });
  });

  it('a shared GPA: the exit has the shared bit and the page only', () => {
    const m = tdWithPendingPage();
    const step = m.handleExit(fault('read', { space: 'shared' }));
    const exit: TdExit = { reason: 'ept-violation', rip: 0x1234n, gpa: SHARED | P, access: 'read', space: 'shared', exitQualification: 0x1n, outsideRam: false, eeq: { type: 'none', raw: 0n } };
    expect(step).toEqual({ kind: 'td-exit', exit });
  });

  it('a private GPA in RAM whose leaf is FREE: EEQ type 0 (NONE) with nothing else in it, and the state the walk stopped on', () => {
    // td_ept_violation_exit: ext_exit_qual = { .raw = 0 }, type VMX_EEQ_NONE; only a PENDING page
    // with #VE disabled changes it (to VMX_EEQ_PENDING_EPT_VIOLATION).
    const m = tdWithPendingPage();
    const step = m.handleExit(fault('write', { gpa: 0x600123n }));
    const exit: TdExit = {
      reason: 'ept-violation', rip: 0x1234n, gpa: 0x600000n, access: 'write', space: 'private', exitQualification: 0x2n, outsideRam: false,
      septState: 'FREE', eeq: { type: 'none', raw: 0n },
    };
    expect(step).toEqual({ kind: 'td-exit', exit });
  });

  it('a private GPA outside guest RAM: a plain exit, no SEPT state (nothing the SEPT holds)', () => {
    const m = tdWithPendingPage();
    const step = m.handleExit(fault('fetch', { gpa: 0x4000_0123n, outsideRam: true }));
    const exit: TdExit = { reason: 'ept-violation', rip: 0x1234n, gpa: 0x4000_0000n, access: 'fetch', space: 'private', exitQualification: 0x4n, outsideRam: true, eeq: { type: 'none', raw: 0n } };
    expect(step).toEqual({ kind: 'td-exit', exit });
  });
});

describe('the host\'s view of private memory (td-module.ts isPrivatePage)', () => {
  it('a page in any leaf state the TD holds is private; FREE and REMOVED pages are not', () => {
    const m = tdWithPendingPage();
    expect(m.isPrivatePage(P + 0x1000n)).toBe(true); // PENDING
    expect(() => m.host.hostMemory.write(P + 0x1000n, new Uint8Array([1]))).toThrow(/TD-private/);
    expect(() => m.host.hostMemory.read(P + 0x1000n, 1)).toThrow(/TD-private/);
    m.sept.setState(1, P, 'REMOVED');
    expect(m.isPrivatePage(P + 0x1000n)).toBe(false);
    m.host.hostMemory.write(P + 0x1000n, new Uint8Array([1]));
    expect([...m.host.hostMemory.read(P + 0x1000n, 1)]).toEqual([1]);
    expect(m.isPrivatePage(0x400000n)).toBe(false); // FREE
  });
});

describe('port I/O raises #VE with the I/O exit qualification (SDM Table 28-5)', () => {
  // Bits 2:0 size - 1, bit 3 direction (1 = IN), bit 4 string, bit 5 REP, bit 6 operand encoding
  // (1 = immediate port), bits 31:16 port. td_generic_ve_exit (tdx_td_dispatcher.c) copies it as is.
  // The instruction information (SDM Vol. 3C, the field's format for INS and OUTS): bits 9:7
  // address size (0 16-bit, 1 32-bit, 2 64-bit), bits 17:15 segment (0 ES, 3 DS, 5 GS); undefined
  // for IN/OUT (0 here). tdx_inject_ve (td_other_exits.c) copies it from the VMCS.
  it.each([
    ['in eax, dx', { direction: 'in', size: 4, port: 0x3f8, string: false, rep: false, immediate: false, length: 1, addressBits: 0, segment: 0 }, 0x3f8_000bn, 0],
    ['out dx, al', { direction: 'out', size: 1, port: 0xcf8, string: false, rep: false, immediate: false, length: 1, addressBits: 0, segment: 0 }, 0xcf8_0000n, 0],
    ['rep outsw (64-bit code, DS)', { direction: 'out', size: 2, port: 0x80, string: true, rep: true, immediate: false, length: 3, addressBits: 64, segment: 3 }, 0x80_0031n, (2 << 7) | (3 << 15)],
    ['gs outsb with 67 (32-bit address)', { direction: 'out', size: 1, port: 0x80, string: true, rep: false, immediate: false, length: 3, addressBits: 32, segment: 5 }, 0x80_0010n, (1 << 7) | (5 << 15)],
    ['insb (16-bit code, ES)', { direction: 'in', size: 1, port: 0x71, string: true, rep: false, immediate: false, length: 1, addressBits: 16, segment: 0 }, 0x71_0018n, 0],
    ['out 0x80, al', { direction: 'out', size: 1, port: 0x80, string: false, rep: false, immediate: true, length: 2, addressBits: 0, segment: 0 }, 0x80_0040n, 0],
    ['in ax, 0x71', { direction: 'in', size: 2, port: 0x71, string: false, rep: false, immediate: true, length: 3, addressBits: 0, segment: 0 }, 0x71_0049n, 0],
  ] as const)('%s', (_insn, io, qual, info) => {
    const m = tdWithPendingPage();
    const exit: IoExit = { kind: 'io', rip: 0x1234n, value: 0, ...io };
    m.handleExit(exit);
    expect(m.veInfo.fields).toEqual({ exitReason: 30, exitQualification: qual, gla: 0n, gpa: 0n, instructionLength: io.length, instructionInfo: info });
  });
});

describe('instructions of the other vendor (SEV-SNP) in a TD', () => {
  it.each(['pvalidate', 'rmpadjust', 'vmgexit'] as const)('%s is #UD', (kind) => {
    const m = tdWithPendingPage();
    m.handleExit({ kind, rip: 0x1234n, length: 4, codeBits: 64, cs: 0x8 });
    // No guest IDT here: the #UD is attempted, then #DF (injectException's escalation).
    expect(m.trace.ofType('injection-failed').map((e) => e.vector)).toEqual([6, 8]);
  });
});

describe('the VMM posts interrupts only (vmm-handle.ts: a TDX VMM cannot inject exceptions)', () => {
  it('vectors 32..255 are posted; an exception vector (0..31) or one above 255 is refused', () => {
    const m = tdWithPendingPage();
    m.host.injectInterrupt(32);
    m.host.injectInterrupt(255);
    for (const vector of [0, 14, 20, 31, 256]) expect(() => m.host.injectInterrupt(vector)).toThrow(RangeError);
    expect(m.postedVectors).toEqual([32, 255]);
    expect(m.trace.ofType('inject-interrupt')).toMatchObject([{ vector: 32 }, { vector: 255 }]);
  });

  it('an interrupt posted to land in the middle of a 2 MiB accept is an interrupt vector too (32..255)', () => {
    const m = tdWithPendingPage();
    for (const vector of [0, 31, 256, 32.5]) expect(() => m.host.postInterrupt(vector, 1), String(vector)).toThrow(RangeError);
    expect(m.pendingInterrupt).toBeUndefined();
    m.host.postInterrupt(32, 3);
    expect(m.pendingInterrupt).toEqual({ vector: 32, afterChunks: 3 });
  });
});

describe('SEPT entry locks another host CPU holds (vmm-handle.ts lockEntry)', () => {
  it('locking by default, and unlocking with locked = false, of that entry only', () => {
    const m = tdWithPendingPage();
    m.host.lockEntry(P, 1);
    m.host.lockEntry(P + 0x200000n, 1);
    expect([m.hostLocks.has(septLockKey(1, P)), m.hostLocks.has(septLockKey(1, P + 0x200000n))]).toEqual([true, true]);
    m.host.lockEntry(P, 1, false);
    expect([m.hostLocks.has(septLockKey(1, P)), m.hostLocks.has(septLockKey(1, P + 0x200000n))]).toEqual([false, true]);
  });
});

describe('the VMM\'s own shared EPT and TDH.VP.INIT (vmm-handle.ts)', () => {
  it('setShared maps the page of a GPA given with or without the shared bit, clipped to guest RAM', () => {
    const m = tdWithPendingPage();
    const ram = m.machine.memoryBytes;
    m.host.setShared(SHARED | 0x400000n, 0x1000n, true);
    expect([m.host.isSharedMapped(0x400000n), m.host.isSharedMapped(SHARED | 0x400000n), m.host.isSharedMapped(0x401000n)]).toEqual([true, true, false]);
    m.host.setShared(ram - 0x1000n, 0x3000n, true); // runs past the end of RAM
    expect(m.host.isSharedMapped(ram - 0x1000n)).toBe(true);
    // The VMM's record says what it mapped: the GPA without the shared bit, clipped to RAM.
    expect(m.trace.ofType('shared-ept').slice(-2)).toMatchObject([{ gpa: 0x400000n, size: 0x1000n, mapped: true }, { gpa: ram - 0x1000n, size: 0x1000n, mapped: true }]);
    expect(m.machine.gate.get('shared', ram - 0x1000n)).toBe('readwrite');
    m.host.setShared(SHARED | 0x400000n, 0x1000n, false);
    expect(m.host.isSharedMapped(0x400000n)).toBe(false);
  });

  it('setShared of a GPA at or past the end of RAM maps nothing and records nothing (there is no page there)', () => {
    const m = tdWithPendingPage();
    const ram = m.machine.memoryBytes;
    const before = m.trace.ofType('shared-ept').length;
    m.host.setShared(ram, 0x1000n, true);
    m.host.setShared(SHARED | (ram + 0x1000n), 0x1000n, true);
    expect(m.trace.ofType('shared-ept')).toHaveLength(before);
    expect(m.host.isSharedMapped(ram)).toBe(false);
    expect(m.machine.gate.get('shared', ram - 0x1000n)).toBe('none');
  });

  it('TDH.VP.INIT once per vCPU, and only before MR.FINALIZE', () => {
    const t = createTd({ memoryBytes: 8n << 20n });
    const h = t.platform.module.host;
    h.vpInit(0x1000n);
    // One vCPU: the record names no vCPU, as a single-vCPU trace always had it.
    expect(t.platform.trace.ofType('vp-init')[0]).not.toHaveProperty('vcpu');
    expect(() => h.vpInit(0x1000n)).toThrow(/already initialized/);
    h.mrFinalize();
    const u = createTd({ memoryBytes: 8n << 20n });
    u.platform.module.host.mrFinalize();
    expect(() => u.platform.module.host.vpInit(0x1000n)).toThrow(/after MR.FINALIZE/);
  });

  it('TDH.VP.INIT names an existing vCPU: an index past the last, negative or fractional is a RangeError', () => {
    const t = createTd({ memoryBytes: 8n << 20n, vcpus: 2 });
    const h = t.platform.module.host;
    for (const index of [2, -1, 0.5]) expect(() => h.vpInit(0x1000n, index), String(index)).toThrow(new RangeError(`TDH.VP.INIT: no vCPU ${index}`));
    h.vpInit(0x1000n, 1);
    expect(t.platform.trace.ofType('vp-init')).toMatchObject([{ vcpu: 1, rcx: 0x1000n }]);
    // The vCPU the host was on stays current: initialising another does not switch to it.
    expect(t.platform.machine.vcpuIndex).toBe(0);
  });
});

describe('the page gate is the SEPT\'s cache (td-module.ts #gateFault, sept.ts resyncGate)', () => {
  // td_ept_violation.c only runs for an access the SEPT refuses; the model's gate caches the SEPT,
  // so a refusal of an access the SEPT allows is a stale gate: it is rebuilt from the SEPT and the
  // access retried, with no #VE and no TD exit.
  it('a refused access to a MAPPED page resynchronises the gate and resumes, no #VE or TD exit', () => {
    const m = tdWithPendingPage();
    m.sept.setState(1, P, 'MAPPED');
    expect(m.machine.gate.get('private', P + 0x5000n)).toBe('readwrite');
    m.machine.gate.set('private', P, 0x200000n, 'none');
    const step = m.handleExit(fault('write'));
    expect(step).toEqual({ kind: 'resume' });
    expect(m.trace.ofType('gate-resync')).toMatchObject([{ gpa: P + 0x567n, level: 1 }]);
    expect(m.machine.gate.get('private', P + 0x5000n)).toBe('readwrite');
    expect(m.veInfo.valid).toBe(false);
    expect(m.trace.ofType('td-exit')).toHaveLength(0);
  });

  // A resync that does not open the gate would have the vCPU retry the same access until its
  // budget ends: the same fault straight after its resync is a hardware-model error instead.
  it('the same fault straight after its resync is a hardware-model error; any exit between, or a restore, starts afresh', () => {
    const m = tdWithPendingPage();
    m.sept.setState(1, P, 'MAPPED');
    m.sept.resyncGate = () => {};  // a resync that does not take
    m.machine.gate.set('private', P, 0x200000n, 'none');
    expect(m.handleExit(fault('write'))).toEqual({ kind: 'resume' });
    expect(() => m.handleExit(fault('write'))).toThrow(/^hardware model: the page gate still refuses the private write of 0x200567 at RIP 0x1234 after its resynchronisation with the SEPT/);
    // Another access, another vCPU exit in between, or a whole-VM restore: a first resync again.
    const again = tdWithPendingPage();
    again.sept.setState(1, P, 'MAPPED');
    again.sept.resyncGate = () => {};
    again.machine.gate.set('private', P, 0x200000n, 'none');
    const state = again.saveState();
    expect(again.handleExit(fault('write'))).toEqual({ kind: 'resume' });
    expect(again.handleExit(fault('read'))).toEqual({ kind: 'resume' });
    expect(again.handleExit(fault('write'))).toEqual({ kind: 'resume' });
    again.loadState(state);
    expect(again.handleExit(fault('write'))).toEqual({ kind: 'resume' });
    expect(() => again.handleExit(fault('write'))).toThrow(/^hardware model/);
    // Inside Sept.batchGate a resync waits for the batch's end: the same fault again is no verdict.
    again.sept.batchGate(() => {
      expect(again.handleExit(fault('write'))).toEqual({ kind: 'resume' });
      expect(again.handleExit(fault('write'))).toEqual({ kind: 'resume' });
    });
  });
});

describe('TDG.VP.VMCALL completion and the module\'s machine', () => {
  it('an answer with no TDG.VP.VMCALL in flight is refused, and leaves the registers alone', () => {
    const m = tdWithPendingPage();
    const regs = m.machine.vcpu.regs;
    regs.r10 = 0x55n;
    expect(m.vmcallInFlight).toBe(false);
    expect(() => m.host.completeVmcall({ r10: 0n })).toThrow('no TDG.VP.VMCALL is in flight');
    expect(regs.r10).toBe(0x55n);
  });

  // A TD's GPAs carry the shared bit at GPAW-1 (47 or 51: TDX module tdh_mng_init GPAW), which the
  // machine's address marker must strip: a machine without it, or with the other width, is refused.
  it('a TD cannot be built on a machine whose marker is not its shared bit', () => {
    for (const marker of [undefined, { kind: 'tdx-shared-bit' as const, gpaWidth: 52 as const }]) {
      const machine = new Machine({ memoryBytes: 8n << 20n, countInstructions: false, ...(marker ? { marker } : {}) });
      expect(() => new TdModule(machine, new Trace(), { gpaWidth: 48, attributes: 0n })).toThrow(/marker to be \{ kind: 'tdx-shared-bit', gpaWidth: 48 \}/);
      machine.close();
    }
  });
});

describe('posted interrupts: the PIR bitmap (Intel SDM Vol. 3C §29.6, §29.2.2)', () => {
  const IF = 1n << 9n;
  // The posted-interrupt descriptor's PIR is 256 bits; the CPU delivers RVI, the highest set
  // bit, first, and clears it (§29.2.2 "Vector ← RVI; … VIRR[Vector] ← 0"). Vectors on both sides
  // of each 32-bit word's edge. No IDT here: each delivery is attempted (injection-failed, then
  // #DF), which is enough to see which vector was taken.
  it('takes the highest posted vector first across the PIR\'s 32-bit words, and only with RFLAGS.IF = 1', () => {
    const m = tdWithPendingPage();
    const vectors = [32, 63, 64, 95, 96, 127, 128, 159, 160, 191, 192, 223, 224, 255];
    for (const v of [...vectors].reverse()) m.host.injectInterrupt(v);
    expect(m.postedVectors).toEqual(vectors);
    m.machine.vcpu.regs.rflags &= ~IF;
    expect(m.deliverPostedInterrupt()).toEqual({ kind: 'resume' });
    expect(m.trace.ofType('injection-failed')).toHaveLength(0);
    m.machine.vcpu.regs.rflags |= IF;
    const taken: number[] = [];
    for (let i = 0; i < vectors.length + 1 && m.host.interruptPending; i++) {
      const before = m.trace.ofType('injection-failed').length;
      m.machine.vcpu.regs.rflags |= IF;
      m.deliverPostedInterrupt();
      taken.push(m.trace.ofType('injection-failed')[before]!.vector as number);
    }
    expect(taken).toEqual([...vectors].reverse());
    expect(m.postedVectors).toEqual([]);
  });

  it('a vector alone in any of the PIR\'s words is pending, and delivered', () => {
    for (const v of [32, 63, 64, 95, 96, 127, 128, 159, 160, 191, 192, 223, 224, 255]) {
      const m = tdWithPendingPage();
      m.host.injectInterrupt(v);
      expect(m.host.interruptPending).toBe(true);
      m.machine.vcpu.regs.rflags |= IF;
      m.deliverPostedInterrupt();
      expect(m.trace.ofType('injection-failed')[0]).toMatchObject({ vector: v });
      expect(m.host.interruptPending).toBe(false);
    }
  });

  it('a vector posted twice is one request; every vector 32..255 has its own bit', () => {
    const m = tdWithPendingPage();
    for (let v = 32; v <= 255; v++) m.host.injectInterrupt(v);
    for (let v = 32; v <= 255; v++) m.host.injectInterrupt(v);
    expect(m.postedVectors).toEqual(Array.from({ length: 224 }, (_, i) => 32 + i));
  });
});

describe('the module\'s saved state (td-module.ts saveState / loadState)', () => {
  // A snapshot is the module as it was: a TDG.VP.VMCALL in flight and an interrupt pending on the
  // host CPU are part of it, and so is their absence.
  it('restores "no VMCALL in flight, no interrupt pending" over a module that has both, and back', () => {
    const m = tdWithPendingPage();
    const quiet = m.saveState();
    m.beginVmcall(4, 0xfc00n);
    m.host.postInterrupt(0x40, 3);
    const busy = m.saveState();
    m.pendingInterrupt!.afterChunks = 7; // the live module goes on after the save
    m.loadState(quiet);
    expect(m.vmcallInFlight).toBe(false);
    expect(m.pendingInterrupt).toBeUndefined();
    m.loadState(busy);
    expect(m.vmcallInFlight).toBe(true);
    expect(m.pendingInterrupt).toEqual({ vector: 0x40, afterChunks: 3 });
    // The saved state is a copy: what the live module does next does not change it.
    m.pendingInterrupt!.afterChunks = 9;
    m.loadState(busy);
    expect(m.pendingInterrupt).toEqual({ vector: 0x40, afterChunks: 3 });
  });

  // The PIR is the posted-interrupt descriptor's state (§29.6): a restore gives back exactly the
  // vectors posted and not delivered, and the saved copy does not follow the live module.
  it('restores the posted vectors bit for bit: none over some, some over fewer and over more', () => {
    const m = tdWithPendingPage();
    const none = m.saveState();
    for (const v of [0x31, 0xff, 0x80]) m.host.injectInterrupt(v);
    const posted = m.saveState();
    m.host.injectInterrupt(0x41); // after the save
    m.loadState(none);
    expect(m.postedVectors).toEqual([]);
    expect(m.host.interruptPending).toBe(false);
    m.loadState(posted);
    expect(m.postedVectors).toEqual([0x31, 0x80, 0xff]);
    m.machine.vcpu.regs.rflags |= 1n << 9n;
    m.deliverPostedInterrupt(); // takes 0xff
    expect(m.postedVectors).toEqual([0x31, 0x80]);
    m.loadState(posted);
    expect(m.postedVectors).toEqual([0x31, 0x80, 0xff]);
    expect(m.host.interruptPending).toBe(true);
  });

  // TDCS state a restore must give back as saved (Snapshottable.loadState): TD_CTLS and
  // NOTIFY_ENABLES, which the guest writes through TDG.VM.WR (metadata_td.c md_td_write_element);
  // the TD epoch, which decides whether a blocked entry is TLB-tracked (tdh_mem_track.c advances
  // it; tdh_mem_page_remove.c needs the entry's block epoch behind it); and whether the TD is
  // finalized (TDH.MR.FINALIZE: after it TDH.MEM.PAGE.ADD is refused, op_state_lookup.c).
  it('restores TD_CTLS, NOTIFY_ENABLES, the TD epoch, finalization, MRTD and initialized vCPUs, each over a module that changed it', () => {
    const m = createTd({ memoryBytes: 8n << 20n, configFlags: CONFIG_FLAGS_FLEXIBLE_PENDING_VE }).platform.module;
    for (const level of [3, 2, 1] as const) expect(m.host.memSeptAdd(gpaLevel(0n, level)).status).toBe(0n);
    expect(m.host.memPageAdd(gpaLevel(0x1000n, 0), new Uint8Array(4096)).status).toBe(0n);
    const building = m.saveState();
    m.host.vpInit(0x1000n);
    const finalize = m.host.mrFinalize();
    expect(finalize.status).toBe(0n);
    expect(m.host.memPageAdd(gpaLevel(0x2000n, 0), new Uint8Array(4096)).status).not.toBe(0n);
    expect(m.host.memRangeBlock(gpaLevel(0x1000n, 0)).status).toBe(0n);
    const blocked = m.saveState(); // blocked in this epoch: not tracked yet
    expect(tdcall(m, { rax: 8n, rcx: 0n, rdx: TdcsField.TD_CTLS, r8: 1n, r9: 1n }).regs.rax).toBe(0n);
    expect(tdcall(m, { rax: 8n, rcx: 0n, rdx: 0x9110000300000010n, r8: 1n, r9: 1n }).regs.rax).toBe(0n); // NOTIFY_ENABLES
    expect(m.host.memTrack().status).toBe(0n);
    m.loadState(blocked);
    expect([m.tdCtls, m.notifyEnables, m.finalized, m.mrtd]).toEqual([0n, 0n, true, finalize.mrtd]);
    expect(tdcall(m, { rax: 7n, rcx: 0n, rdx: TdcsField.TD_CTLS }).regs.r8).toBe(0n);
    // The epoch is the one the entry was blocked in: REMOVE still needs a TRACK.
    expect(m.host.memPageRemove(gpaLevel(0x1000n, 0)).status).not.toBe(0n);
    expect(m.host.memTrack().status).toBe(0n);
    expect(m.host.memPageRemove(gpaLevel(0x1000n, 0)).status).toBe(0n);
    m.loadState(building);
    expect([m.finalized, m.mrtd, m.vcpusInitialized.size]).toEqual([false, undefined, 0]);
    expect(m.host.memPageAdd(gpaLevel(0x2000n, 0), new Uint8Array(4096)).status).toBe(0n);
  });

  // The VE info is per-vCPU TDVPS state: whether it is unread decides between #VE and #DF at the
  // next one (tdx_inject_ve), so a restore must give back its valid bit and fields as saved.
  it('restores the VE info: unread with its fields over a module that read it, and read over one that did not', () => {
    const m = tdWithPendingPage();
    const read = m.saveState();
    m.handleExit(fault('write'));
    const fields = { ...m.veInfo.fields };
    const unread = m.saveState();
    expect(m.veInfo.take()).toEqual(fields);
    m.handleExit(fault('read')); // the live VE info goes on: unread again, a read's qualification
    expect(m.veInfo.fields.exitQualification).toBe(0x181n);
    m.loadState(unread);
    expect(m.veInfo.valid).toBe(true);
    expect(m.veInfo.fields).toEqual(fields);
    m.loadState(read);
    expect(m.veInfo.valid).toBe(false);
    m.loadState(unread);
    expect(m.veInfo.take()).toEqual({ exitReason: 48, exitQualification: 0x182n, gla: 0x7000_0567n, gpa: P + 0x567n, instructionLength: 0, instructionInfo: 0 });
  });
});
