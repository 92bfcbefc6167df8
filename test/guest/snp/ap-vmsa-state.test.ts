// What an SNP AP started by AP_CREATE (GHCB spec "SNP AP Creation", NAE event 0x80000013) sees of
// the VMSA page its creator wrote, and what the honest VMM does with a VMSA GPA that is not guest
// RAM, checked in small guests whose BSP creates the AP:
// - XCR0 (struct sev_es_save_area xcr0, offset 0x3E8) is guest state VMRUN loads from an
//   SEV-ES/SNP guest's VMSA: KVM cannot set it (arch/x86/kvm/svm/sev.c sev_es_init_vmcb: "Can't
//   intercept XSETBV, HV can't modify XCR0 directly"), and writes the BSP's into the VMSA before
//   encrypting it (sev_es_sync_vmsa); Linux's wakeup_cpu_via_vmgexit writes an AP's
//   (AP_INIT_XCR0_DEFAULT). An XCR0 XSETBV refuses is taken as illegal guest state (vmsa.ts
//   xcr0Refused: not confirmed from the APM, which does not list XCR0 among VMRUN's checks).
// - G_PAT (offset 0x268) is the guest's PAT, which KVM does not intercept for an SEV-ES/SNP guest
//   (sev_es_recalc_msr_intercepts clears MSR_IA32_CR_PAT's intercepts): RDMSR 0x277 reads it, no #VC.
// - a VMSA GPA in no memslot: KVM (torvalds/linux 0097f9df, sev_snp_ap_creation and
//   sev_snp_init_protected_guest_state) accepts the request and leaves the target halted.
import { describe, expect, it } from 'vitest';
import type { Machine } from '../../../src/cpu/machine.js';
import { CR4_OSXSAVE } from '../../../src/cpu/registers.js';
import { SNP_GUEST_SEV_FEATURES } from '../../../src/platform/snp/snp-cpu.js';
import { AP_TO_LONG_MODE, REGISTER_GHCB, apVmsaPageLike, ghcbCall, privateIdentityWithGhcb, snpGuest } from '../../helpers/snp-guest.js';

const DATA = 0x3000n;            // private, validated at launch: what both vCPUs write
const AP_XCR0 = DATA;            // EDX:EAX of the AP's XGETBV
const AP_STARTS = DATA + 8n;     // how many times the AP started
const AP_TURNS = DATA + 0x10n;   // the AP's loop turns
const AP_PAT = DATA + 0x18n;     // EDX:EAX of the AP's RDMSR 0x277
const RES = DATA + 0x100n;       // SW_EXITINFO1/2 answers the BSP saw
const AP_CODE = 0x4000n;         // the AP's code (launched)
const VMSA = 0x20000n;           // the AP's VMSA page (launched, VMSA bit set)
const MEMORY = 32n << 20n;
const AP_CREATION = 0x80000013n;

/** AP_CREATE of vCPU 1 from the VMSA at `vmsa`, RAX = the VM's SEV features. */
const apCreate = (vmsa: bigint) => ghcbCall({ exitCode: AP_CREATION, info1: (1n << 32n) | 1n, info2: vmsa, rax: SNP_GUEST_SEV_FEATURES });

/** Asm: SW_EXITINFO1 and SW_EXITINFO2 of the GHCB (rdi) to RES + at, RES + at + 8. */
const saveAnswer = (at: number) => `
  mov r8, [rdi+0x398]
  mov [${RES + BigInt(at)}], r8
  mov r8, [rdi+0x3a0]
  mov [${RES + BigInt(at) + 8n}], r8`;

/**
 * The AP: from its VMSA in flat 32-bit protected mode with the BSP's paging into long mode (CR0.PG,
 * then a far jump: APM Vol. 2 §14.6.1), counts a start, stores XGETBV(0) (XCR0), then counts
 * loop turns for ever.
 */
const AP = `
${AP_TO_LONG_MODE}
  inc qword ptr [${AP_STARTS}]
  xor ecx, ecx
  xgetbv
  mov [${AP_XCR0}], eax
  mov [${AP_XCR0 + 4n}], edx
  mov ecx, 0x277
  rdmsr
  mov [${AP_PAT}], eax
  mov [${AP_PAT + 4n}], edx
ap_loop:
  inc qword ptr [${AP_TURNS}]
  pause
  jmp ap_loop`;

/** Asm: spin until the AP has counted a turn. */
const WAIT_FOR_AP = `
    wait_ap:
      pause
      cmp qword ptr [${AP_TURNS}], 0
      je wait_ap`;

/** Asm: PAUSE `n` times (the other vCPU gets turns meanwhile). */
const spin = (label: string, n: number) => `
      mov ecx, ${n}
    ${label}:
      pause
      dec ecx
      jnz ${label}`;

/** A 2-vCPU guest whose BSP registers its GHCB and runs `main`; the AP's VMSA (edited by `edit`) is ready for AP_CREATE. */
function guest(main: string, edit: (vmsa: Buffer) => void = () => {}) {
  const g = snpGuest(`${REGISTER_GHCB}\n${main}`, {
    memoryBytes: MEMORY, vcpus: 2, instructionLimit: 4_000_000n, mappings: privateIdentityWithGhcb(),
    extraCode: [[AP_CODE, AP]], launch: [[DATA, 0x1000n], [AP_CODE, 0x1000n], [VMSA, 0x1000n]],
  });
  const page = apVmsaPageLike(g.vm, AP_CODE);
  page.writeBigUInt64LE(g.vm.vcpu.readSpecial('cr4') | CR4_OSXSAVE, 0x148);  // CR4.OSXSAVE: XGETBV allowed
  edit(page);
  g.vm.memory.write(VMSA, page);
  g.platform.rmp.adjustPermissions(VMSA, 1, 0, true);  // the VMSA bit, as the guest's RMPADJUST sets it (Linux snp_set_vmsa)
  return g;
}

const q = (m: Machine, gpa: bigint) => m.memory.readU64(gpa);

describe('SNP AP creation: XCR0 comes from the VMSA page', () => {
  // The AP's XGETBV reads what the VMSA holds: 1 (x87 only) is what Linux writes
  // (AP_INIT_XCR0_DEFAULT), 7 adds SSE and AVX. Was: whatever the emulator's vCPU reset left (3).
  it.each([['0x1', 1n], ['0x7', 7n]] as const)('an AP whose VMSA holds XCR0 %s reads it with XGETBV', (_hex, xcr0) => {
    const g = guest(`
      ${apCreate(VMSA)}
      ${saveAnswer(0)}
      ${WAIT_FOR_AP}
      hlt`, (b) => b.writeBigUInt64LE(xcr0, 0x3e8));
    expect(g.run()).toMatchObject({ outcome: 'done', reason: 'guest halted' });
    expect([q(g.vm, RES), q(g.vm, RES + 8n)]).toEqual([0n, 0n]);
    expect(q(g.vm, AP_STARTS)).toBe(1n);
    expect(q(g.vm, AP_XCR0)).toBe(xcr0);
  });

  // Refused values: x87 clear (0), AVX without SSE (5), AVX-512 bits without AVX (0xE3), one of
  // AMX's two bits (0x20007), bit 63 (reserved: the CPU's XSETBV #GP). The model takes each as a
  // VMRUN failure, as for a VMSA without EFER.SVME: KVM_EXIT_FAIL_ENTRY, which QEMU treats as fatal,
  // so the run ends (outcome `fault`) with the AP never run, and the process does not throw. The
  // bit combinations are refused before the AP is touched (vmsa.ts xcr0Refused); a bit the CPU
  // lacks is found when the vCPU is loaded (Vcpu.writeXcr0).
  it.each([
    ['0x0', 0n, /XCR0 0x0 is a value XSETBV refuses/],
    ['0x5', 5n, /XCR0 0x5 is a value XSETBV refuses/],
    ['0xe3', 0xe3n, /XCR0 0xe3 is a value XSETBV refuses/],
    ['0x20007 (XTILECFG without XTILEDATA)', 0x20007n, /XCR0 0x20007 is a value XSETBV refuses/],
    ['bit 63 | 0x3', (1n << 63n) | 3n, /XCR0 0x8000000000000003: cannot set XCR0/],
  ] as const)('an AP whose VMSA holds XCR0 %s, a value XSETBV refuses, is not run: the VM ends', (_hex, xcr0, why) => {
    const g = guest(`
      ${apCreate(VMSA)}
      ${WAIT_FOR_AP}
      hlt`, (b) => b.writeBigUInt64LE(xcr0, 0x3e8));
    const outcome = g.run();
    expect(outcome).toMatchObject({ outcome: 'fault', reason: expect.stringMatching(/^VMRUN of vCPU 1 from the VMSA at 0x20000 failed: XCR0 /) });
    expect(outcome.reason).toMatch(why);
    expect([q(g.vm, AP_STARTS), q(g.vm, AP_TURNS)]).toEqual([0n, 0n]);
    expect(g.platform.isRunnable(1)).toBe(false);
    expect(g.trace.ofType('ap-vmrun')).toMatchObject([{ vcpu: 1, refused: expect.stringMatching(/XCR0/) }]);
  });
});

describe('PAT: G_PAT in the VMSA, read and written without a #VC (KVM sev_es_recalc_msr_intercepts)', () => {
  it('an AP reads the G_PAT its VMSA holds with RDMSR 0x277', () => {
    const pat = 0x0007010600070106n;  // Linux's PAT (WB, WC, UC-, UC)
    const g = guest(`
      ${apCreate(VMSA)}
      ${WAIT_FOR_AP}
      hlt`, (b) => b.writeBigUInt64LE(pat, 0x268));
    expect(g.run()).toMatchObject({ outcome: 'done', reason: 'guest halted' });
    expect(q(g.vm, AP_STARTS)).toBe(1n);
    expect(q(g.vm, AP_PAT)).toBe(pat);
    expect(g.trace.ofType('inject-vc')).toEqual([]);
  });

  // A reserved memory type (2 or 3, or a bit in 7:3 of a PAn byte) in the PAT is #GP on WRMSR
  // (APM Vol. 2 §7.8.1; KVM kvm_pat_valid); in a VMSA's G_PAT the model takes it as illegal
  // guest state, as an XCR0 XSETBV refuses (U).
  it.each([['PA0 = 2', 0x0007040600070402n], ['PA7 bit 3', 0x0807040600070406n]] as const)('an AP whose VMSA G_PAT has a reserved type (%s) is not run: the VM ends', (_what, pat) => {
    const g = guest(`
      ${apCreate(VMSA)}
      ${WAIT_FOR_AP}
      hlt`, (b) => b.writeBigUInt64LE(pat, 0x268));
    expect(g.run()).toMatchObject({ outcome: 'fault', reason: expect.stringMatching(/G_PAT/) });
    expect(q(g.vm, AP_STARTS)).toBe(0n);
    expect(g.platform.isRunnable(1)).toBe(false);
  });

  it('the BSP reads the reset PAT, writes a valid one and reads it back, with no #VC; a reserved type is #GP(0), the PAT unchanged', () => {
    const g = snpGuest(`
      mov ecx, 0x277
      rdmsr
      shl rdx, 32
      or rax, rdx
      mov r8, rax
      mov eax, 0x00070106
      mov edx, 0x00070106
      wrmsr
      rdmsr
      shl rdx, 32
      or rax, rdx
      mov r9, rax
      mov eax, 0x00070102
      mov edx, 0x00070106
      wrmsr
      mov r10, 1
      hlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const r = g.vm.vcpu.regs;
    expect([r.r8, r.r9]).toEqual([0x0007040600070406n, 0x0007010600070106n]);
    expect([r.r13, r.r15, r.r10]).toEqual([13n, 0n, 0n]);  // #GP(0) at the second WRMSR
    expect(g.vm.vcpu.readMsr(0x277)).toBe(0x0007010600070106n);
    expect(g.trace.ofType('inject-vc')).toEqual([]);
  });
});

describe('SNP AP creation: a VMSA GPA outside guest RAM (KVM sev_snp_ap_creation, sev_snp_init_protected_guest_state)', () => {
  // KVM (0097f9df) checks only page_address_valid (aligned, no reserved GPA bit) and 2 MiB alignment
  // before it answers success; the kick then resets the target to KVM_MP_STATE_HALTED with vmsa_pa =
  // INVALID_PAGE, and "slot = gfn_to_memslot(vcpu->kvm, gfn); if (!slot) return;" leaves it there.
  // Was: SW_EXITINFO1 = 2, SW_EXITINFO2 = INVALID_INPUT.
  it('AP_CREATE from a page past the end of RAM succeeds (SW_EXITINFO1 = SW_EXITINFO2 = 0) and the AP never runs', () => {
    const outside = MEMORY + 0x1000n;
    const g = guest(`
      ${apCreate(outside)}
      ${saveAnswer(0)}
      ${spin('wait', 5000)}
      hlt`);
    expect(g.run()).toMatchObject({ outcome: 'done', reason: 'guest halted' });
    expect([q(g.vm, RES), q(g.vm, RES + 8n)]).toEqual([0n, 0n]);
    expect([q(g.vm, AP_STARTS), q(g.vm, AP_TURNS)]).toEqual([0n, 0n]);
    expect(g.platform.isRunnable(1)).toBe(false);
    expect(g.trace.ofType('ap-vmrun')).toEqual([]);
    expect(g.trace.ofType('ap-vmsa-no-memslot')).toMatchObject([{ vcpu: 1, vmsaGpa: outside }]);
  });

  it('AP_CREATE of a running AP from a page past the end of RAM stops it, as AP_DESTROY would; a GPA with a reserved bit is INVALID_INPUT and changes nothing', () => {
    const reserved = (1n << 52n) | 0x1000n;  // above the C-bit (51): reserved_gpa_bits
    const g = guest(`
      ${apCreate(VMSA)}
      ${WAIT_FOR_AP}
      ${apCreate(reserved)}
      ${saveAnswer(0)}
      ${spin('after_reserved', 200)}
      ${apCreate(MEMORY + 0x3000n)}
      ${saveAnswer(0x10)}
      mov rax, [${AP_TURNS}]
      mov [${RES + 0x20n}], rax
      ${spin('after_outside', 500)}
      mov rax, [${AP_TURNS}]
      mov [${RES + 0x28n}], rax
      hlt`);
    expect(g.run()).toMatchObject({ outcome: 'done', reason: 'guest halted' });
    expect([q(g.vm, RES), q(g.vm, RES + 8n)]).toEqual([2n, 5n]);            // reserved bit: INVALID_INPUT
    expect([q(g.vm, RES + 0x10n), q(g.vm, RES + 0x18n)]).toEqual([0n, 0n]); // outside RAM: success
    expect(q(g.vm, RES + 0x20n)).toBeGreaterThan(0n);
    expect(q(g.vm, RES + 0x28n)).toBe(q(g.vm, RES + 0x20n));                // no turn after it
    expect(q(g.vm, AP_STARTS)).toBe(1n);
    expect(g.platform.isRunnable(1)).toBe(false);
    expect(g.trace.ofType('vcpu-stopped')).toMatchObject([{ vcpu: 1, wasRunnable: true }]);
  });
});
