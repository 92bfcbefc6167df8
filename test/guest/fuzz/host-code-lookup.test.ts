// A host write to a page the guest ran code from makes the machine drop that page's translated
// code, and Unicorn finds the code's guest-physical page through a fetch TLB fill of its linear
// page (uc_ctl_remove_cache -> uc_invalidate_tb -> get_page_addr_code). That fill is the host's,
// not the guest's: it must not pass for a guest fetch. It did, and the content watch took it for
// the guest consuming the host's bytes: a 20,000-execution SNP campaign on the honest stubs
// reported it as a foreign-content finding (the program below, as the fuzzer shrank it).
import { describe, expect, it } from 'vitest';
import { runAttack } from '../../helpers/attack-programs.js';
import type { AttackProgram } from '../../../src/fuzz/attack-program.js';

describe('the host dropping translated code of a page it wrote', () => {
  it('is not a guest fetch of that page: no foreign-content finding against the honest SNP stubs', () => {
    // At the kernel's first exit (a VMGEXIT in the kernel's 2 MiB code region), the host takes the
    // region back and writes a byte into the page the guest's next instruction is on.
    const attack: AttackProgram = {
      platform: 'snp',
      decisions: [
        { at: 'exit', exitIndex: 1, action: { kind: 'snp.rmpupdate', spa: 0x1000000n, assigned: false, pageSize: '2m', gpa: 0x1000000n } },
        { at: 'exit', exitIndex: 1, action: { kind: 'shared-write', gpa: 0x1001000n, value: 0x3en, size: 1 } },
      ],
    };
    const { execution } = runAttack(attack, { workload: '4K' }, 'kernel');
    // The guest's next fetch is refused by the RMP (the page is the hypervisor's now): the VMM's
    // NPF handling makes it private again, unvalidated, and the #VC that follows cannot be
    // delivered through an IDT in the same region. A denial of service, nothing the guest consumed.
    expect(execution.judgement.findings).toEqual([]);
    expect(execution.judgement.outcome).toMatchObject({ outcome: 'terminated' });
  });
});
