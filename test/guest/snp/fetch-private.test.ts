// Instruction fetches are private whatever the guest's C-bit says (APM Vol. 2 §15.34.5: fetches
// and guest page-table walks "are always treated as private, regardless of the C-bit"; §15.36.10
// gives them the private checks with C-bit "-"), so a hypervisor cannot have an SNP guest
// run code from a page the hypervisor owns by the guest mapping it C=0.
import { describe, expect, it } from 'vitest';
import { NPF_BITS } from '../../../src/platform/snp/access-check.js';
import { CODE_BASE } from '../../helpers/guest-setup.js';
import { C_BIT, snpGuest } from '../../helpers/snp-guest.js';

const SHARED_VA = 0x40000000n;
const H = 0x400000n;  // a hypervisor-owned page holding code the host wrote

describe('SNP instruction fetch through a C=0 mapping', () => {
  it('a page the hypervisor owns: the fetch is checked as private, NPF (Guest-Owned) with ENC set, and the code never runs', () => {
    const g = snpGuest(`mov rax, 0x${SHARED_VA.toString(16)}\njmp rax`, {
      mappings: [{ va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n, extraBits: C_BIT }, { va: SHARED_VA, pa: H, size: 0x1000n, pageSize: 4096n }],
      instructionLimit: 100_000n,
    });
    g.vm.memory.write(H, Uint8Array.of(0x49, 0xc7, 0xc4, 0x2a, 0, 0, 0, 0xf4));  // mov r12, 42; hlt
    g.run();
    const npf = g.trace.ofType('npf')[0]!;
    expect(npf).toMatchObject({ gpa: H, access: 'fetch', space: 'private', reason: 'guest-owned', cause: 'access' });
    expect((npf.errorCode as bigint) & NPF_BITS.enc).toBe(NPF_BITS.enc);
    expect(g.vm.vcpu.regs.r12).not.toBe(42n);
  });

  it('a validated private page mapped C=0 runs: the fetch passes the private checks', () => {
    const g = snpGuest(`mov rax, 0x${(SHARED_VA + 0x100n).toString(16)}\njmp rax\n.org 0x100\nmov r12, 42\nhlt`, {
      mappings: [{ va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n, extraBits: C_BIT }, { va: SHARED_VA, pa: CODE_BASE, size: 0x1000n, pageSize: 4096n }],
    });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r12).toBe(42n);
    expect(g.trace.ofType('npf')).toHaveLength(0);
  });
});
