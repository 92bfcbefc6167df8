// Interrupts a TDX VMM posts (vmm-handle.ts injectInterrupt) go into the posted-interrupt
// descriptor's PIR, a 256-bit bitmap, and the CPU processes it at TD entry (Intel SDM Vol. 3C
// §29.6 "Posted-Interrupt Processing", steps 5-7: PIR is ORed into VIRR and cleared, RVI becomes
// the highest set index, and pending virtual interrupts are evaluated, §29.2.1). Virtual-interrupt
// delivery (§29.2.2) takes Vector ← RVI, clears VIRR[Vector] and sets RVI to the highest bit
// still set in VIRR, when RFLAGS.IF = 1. So the highest vector is delivered first, whatever order
// the VMM posted in, and a vector posted again before its delivery is one bit: one delivery.
import { describe, expect, it } from 'vitest';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { CODE_BASE } from '../../helpers/guest-setup.js';
import { honestTdxPolicy, type TdxVmmPolicy } from '../../../src/vmm/tdx/honest-vmm.js';
import { HALT, IRQ_VECTOR, TDCALL, type TdGuestOptions, tdGuest } from '../../helpers/tdx-guest.js';

/** TDG.VP.VMCALL<GetTdVmCallInfo> (R11 = 0x10000): a TD exit the honest VMM answers; the TD entry after it delivers. */
const VMCALL = `xor eax, eax\n mov ecx, 0x1c00\n xor r10, r10\n mov r11, 0x10000\n xor r12, r12\n ${TDCALL}`;
/** Each handler shifts its vector into R14, so R14 reads the delivery order, first delivery in the highest byte. */
const logVector = (vector: number): string => `shl r14, 8\n or r14, 0x${vector.toString(16)}\n iretq`;

/** A guest with handlers for 0x30 (IRQ_VECTOR), 0x40 and 0x50 that runs `main` with R14 = 0. */
function guest(main: string, options: TdGuestOptions = {}) {
  return tdGuest(`xor r14, r14\n ${main}`, {
    ...options,
    irq: logVector(IRQ_VECTOR),
    extra: `${logVector(0x40)}\n .org 0x640\n ${logVector(0x50)}\n .org 0x680`,
    idt: { 0x40: CODE_BASE + 0x600n, 0x50: CODE_BASE + 0x640n },
  });
}

describe('posted interrupts (Intel SDM Vol. 3C §29.6, §29.2.1, §29.2.2)', () => {
  it('are delivered highest vector first, one per TD entry, whatever order they were posted in', () => {
    // Posted while the guest has IF clear (RFLAGS 0x2 from TDH.VP.INIT): nothing is delivered
    // until the TD entry after the first TD exit with IF set; then one per entry.
    const td = guest(`sti\n ${VMCALL}\n ${VMCALL}\n ${VMCALL}\n ${VMCALL}\n ${HALT}`);
    for (const vector of [0x40, IRQ_VECTOR, 0x50]) td.platform.handle.injectInterrupt(vector);
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r14).toBe(0x504030n);
    expect(td.trace.ofType('exception-injected').map((e) => e.vector)).toEqual([0x50, 0x40, IRQ_VECTOR]);
    expect(td.platform.handle.interruptPending).toBe(false);
  });

  it('a vector posted again before its delivery is delivered once (one PIR bit)', () => {
    const td = guest(`sti\n ${VMCALL}\n ${VMCALL}\n ${VMCALL}\n ${HALT}`);
    for (const vector of [0x50, 0x40, 0x50, 0x50]) td.platform.handle.injectInterrupt(vector);
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r14).toBe(0x5040n);
    expect(td.trace.ofType('exception-injected').map((e) => e.vector)).toEqual([0x50, 0x40]);
  });

  it('a higher vector posted while a lower one waits on RFLAGS.IF = 0 overtakes it', () => {
    // 0x30 is posted before the run and waits (IF clear) through the first TD exit; the VMM posts
    // 0x50 when it answers that exit. At the entry after the second exit (IF set) RVI is 0x50.
    let calls = 0;
    const policy: TdxVmmPolicy = {
      ...honestTdxPolicy,
      getTdVmCallInfo(ctx, call) {
        if (calls++ === 0) ctx.host.injectInterrupt(0x50);
        return honestTdxPolicy.getTdVmCallInfo(ctx, call);
      },
    };
    const td = guest(`${VMCALL}\n sti\n ${VMCALL}\n ${VMCALL}\n ${VMCALL}\n ${HALT}`, { policy });
    td.platform.handle.injectInterrupt(IRQ_VECTOR);
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r14).toBe(0x5030n);
    expect(td.trace.ofType('exception-injected').map((e) => e.vector)).toEqual([0x50, IRQ_VECTOR]);
  });
  // A vector whose IDT gate is not present cannot be delivered: on hardware that is #NP, and its
  // own delivery failing too makes it #DF (SDM Vol. 3A §6.15 Table 6-5, interrupt 8), which the
  // CPU delivers with an error code of 0 ("Exception Error Code: Zero. The processor always pushes
  // an error code of 0 onto the stack of the double-fault handler"). The frame: error code, then the
  // RIP the interrupt arrived at (after the TDG.VP.VMCALL).
  it('a posted vector with no IDT gate ends in #DF with error code 0, the frame\'s RIP where it arrived', () => {
    const td = tdGuest(`sti\n ${VMCALL}\n arrived: ${HALT}`, {
      df: `mov r12, [rsp]\n mov r13, [rsp + 8]\n lea rsi, [rip + arrived]\n mov r15, 8\n ${HALT}`,
    });
    td.platform.handle.injectInterrupt(0x41); // the helper's IDT has no gate for it
    expect(runTd(td).outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect(r.r15).toBe(8n);
    expect(r.r12).toBe(0n);
    expect(r.r13).toBe(r.rsi);
  });
});
