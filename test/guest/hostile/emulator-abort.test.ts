// The host fuzzer found a 4-byte guest that kills the host: LOCK BTR with a register destination
// (f0 0f b3 c0) makes Unicorn 2.1.4's code generator call abort() ("tcg fatal error"); a plain C
// program on libunicorn dies the same way. The architecture says #UD (SDM: LOCK on a non-memory
// destination). minivisor cannot make the emulator deliver that #UD, but the host must survive: the
// run ends as a `fault` outcome naming the emulator, that VM refuses to run again, and new VMs work.
import { describe, expect, it } from 'vitest';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { HALT, tdGuest } from '../../helpers/tdx-guest.js';
import { snpGuest } from '../../helpers/snp-guest.js';

// Every LOCK-prefixed BT form with a register destination: BT, BTS, BTR, BTC, and the 0F BA group.
const LOCKED_BIT_OPS = ['0xa3', '0xab', '0xb3', '0xbb'].map((op) => `.byte 0xf0, 0x0f, ${op}, 0xc0`)
  .concat(['.byte 0xf0, 0x0f, 0xba, 0xf8, 0x01']);
const ABORTED = /emulator aborted/;

describe('a guest that makes the emulator abort ends the run, not the host', () => {
  for (const insn of LOCKED_BIT_OPS) {
    it(`TDX: ${insn}`, () => {
      const td = tdGuest(`mov eax, 1\n ${insn}\n ${HALT}`);
      expect(runTd(td)).toMatchObject({ outcome: 'fault', reason: expect.stringMatching(ABORTED) });
      // The aborted emulator is never entered again.
      expect(runTd(td)).toMatchObject({ outcome: 'fault', reason: expect.stringMatching(ABORTED) });
      // The host and other VMs carry on.
      expect(runTd(tdGuest(`mov eax, 1\n ${HALT}`)).outcome).toBe('done');
    });
  }

  it('SNP: f0 0f b3 c0', () => {
    const guest = snpGuest('mov eax, 1\n .byte 0xf0, 0x0f, 0xb3, 0xc0\n hlt');
    const outcome = guest.run();
    expect(outcome.outcome).toBe('fault');
    expect(outcome.reason).toMatch(ABORTED);
    expect(snpGuest('mov eax, 1\n hlt').run().outcome).toBe('done');
  });
});
