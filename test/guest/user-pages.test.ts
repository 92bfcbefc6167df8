// User-mode accesses in the guest's own page walk (Intel SDM Vol. 3A §4.6.1 "Determination of
// Access Rights", §4.7 "Page-Fault Exceptions"; AMD APM Vol. 2 §5.6 "Page-Protection Checks",
// §8.4.2 "#PF"): at CPL 3 every access needs U/S = 1 at every level of the walk, a write needs
// R/W = 1 at every level whatever CR0.WP holds, and the #PF error code has U/S (bit 2) set for
// every fault of a user-mode access, not-present ones included. CPL 0-2 is supervisor mode: U/S
// does not matter (no SMEP/SMAP here), and R/W only with CR0.WP = 1. Accesses to the GDT, LDT
// and TSS are supervisor-mode accesses at any CPL (§4.6.1 "implicit supervisor-mode accesses").
// Real guest code at CPL 3 on an SNP guest with 4 KiB pages (and a TD for the two basic cases).
import { describe, expect, it } from 'vitest';
import { CODE_BASE, PT_BASE, STACK_TOP } from '../helpers/guest-setup.js';
import { C_BIT, snpGuest } from '../helpers/snp-guest.js';
import { HALT, SHARED_VA, runTdGuest, toCpl } from '../helpers/tdx-guest.js';

const US = 4, PF_P = 1, PF_W = 2, PF_I = 16;

const USER_CODE = 0x40000n;        // user page: the CPL 3 code
const USER_DATA = 0x41000n;        // user page, writable
const USER_RO = 0x42000n;          // user page, read-only
const USER_STACK_TOP = 0x70000n;   // user page 0x6f000
const SUPERVISOR_DATA = 0x50000n;  // supervisor page (U/S = 0 in its PTE)
const UPPER_SUPERVISOR = 0x600000n; // U/S = 1 in its PTE, 0 in the PDE above it
const NOT_MAPPED = 0x900000n;      // no PDE
const USER_HIGH = 0x400000n;       // user page, writable, alone in its 2 MiB
// The GDT spans two pages: the code at CPL 0 (LGDT, LTR, IRETQ) touches only the first, so the
// descriptor at 0x100 (page 0x32000) is first read by a segment load at CPL 3.
const GDT_PAGE = 0x31000n;
const GDT = 0x31f00n;
const TSS = 0x33000n;
const RSP0 = STACK_TOP;            // supervisor page 0x7f000

// GDT: kernel code 0x08, kernel data 0x10, user code 0x18, user data 0x20, SYSRET's SS 0x28 and
// CS 0x30 (STAR[63:48] = 0x23), the 64-bit TSS at 0x40 (base TSS, limit 0x67, available), and at
// 0x100 user data with the accessed bit clear (a segment load writes it: SDM Vol. 3 §3.4.5.1).
const GDT_SOURCE = `
  .word 0x1ff
  .quad ${GDT}
  .org ${GDT - GDT_PAGE}
  .quad 0, 0x00af9b000000ffff, 0x00cf93000000ffff, 0x00affb000000ffff, 0x00cff3000000ffff
  .quad 0x00cff3000000ffff, 0x00affb000000ffff, 0
  .quad 0x0000890330000067, 0
  .org ${GDT - GDT_PAGE + 0x100n}
  .quad 0x00cff2000000ffff`;
const TSS_SOURCE = `.long 0\n .quad ${RSP0}\n .org 0x68`;

/** CPL 0 set-up run first (`before`), then IRETQ to `user` at USER_CODE on the user stack. */
function userGuest(user: string, options: { before?: string; extra?: string } = {}) {
  const g = snpGuest(`
      lgdt [${GDT_PAGE}]
      mov ax, 0x40
      ltr ax
      ${options.before ?? ''}
      push 0x23
      push ${USER_STACK_TOP}
      push 0x2
      push 0x1b
      mov rax, ${USER_CODE}
      push rax
      iretq
      ${options.extra ?? ''}`, {
    mappings: [
      { va: 0n, pa: 0n, size: 0x800000n, pageSize: 4096n, extraBits: C_BIT },
      { va: USER_CODE, pa: USER_CODE, size: 0x2000n, pageSize: 4096n, extraBits: C_BIT, user: true },
      { va: USER_RO, pa: USER_RO, size: 0x1000n, pageSize: 4096n, extraBits: C_BIT, user: true, writable: false },
      { va: USER_STACK_TOP - 0x1000n, pa: USER_STACK_TOP - 0x1000n, size: 0x1000n, pageSize: 4096n, extraBits: C_BIT, user: true },
      { va: USER_HIGH, pa: USER_HIGH, size: 0x1000n, pageSize: 4096n, extraBits: C_BIT, user: true },
      { va: UPPER_SUPERVISOR, pa: UPPER_SUPERVISOR, size: 0x1000n, pageSize: 4096n, extraBits: C_BIT | BigInt(US) },
    ],
    extraCode: [[USER_CODE, user], [GDT_PAGE, GDT_SOURCE], [TSS, TSS_SOURCE]],
    launch: [[USER_CODE, 0x3000n], [USER_STACK_TOP - 0x1000n, 0x1000n], [GDT_PAGE, 0x3000n], [SUPERVISOR_DATA, 0x1000n], [USER_HIGH, 0x1000n], [UPPER_SUPERVISOR, 0x1000n]],
  });
  const outcome = g.run();
  const r = g.vm.vcpu.regs;
  // The default #PF handler (snp-guest.ts): r13 = 14, r15 = the error code, r14 = CR2.
  return { g, outcome, r, pf: { vector: r.r13, error: Number(r.r15), cr2: r.r14 } };
}

describe('user-mode accesses at CPL 3 (SNP guest, 4 KiB pages)', () => {
  it('a read of a supervisor page: #PF with P and U/S set (0x5), CR2 the address read', () => {
    const { outcome, pf, r, g } = userGuest(`
      mov rbx, ${SUPERVISOR_DATA}
      lea r8, [rip + 1f]
    1: mov rax, [rbx + 0x18]
      mov r12, 0xbad
      hlt`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect(pf).toEqual({ vector: 14n, error: PF_P | US, cr2: SUPERVISOR_DATA + 0x18n });
    expect(r.r12).toBe(0n);
    expect(g.trace.ofType('inject')[0]).toMatchObject({ vector: 14, errorCode: 0x5n, rip: r.r8 });
  });

  it('a read of a page whose PTE has U/S = 1 under a PDE with U/S = 0: #PF 0x5 (U/S must be 1 at every level)', () => {
    const { pf } = userGuest(`mov rax, [${UPPER_SUPERVISOR + 8n}]\n hlt`);
    expect(pf).toEqual({ vector: 14n, error: PF_P | US, cr2: UPPER_SUPERVISOR + 8n });
  });

  it('a read of linear page 0, a supervisor page, with LDTR and TR null: #PF 0x5 (a null selector names no table to read there)', () => {
    const { pf } = userGuest('mov rax, [0x10]\n hlt', { before: 'xor eax, eax\n lldt ax' });
    expect(pf).toEqual({ vector: 14n, error: PF_P | US, cr2: 0x10n });
  });

  it('a write to a supervisor page: #PF 0x7', () => {
    const { pf } = userGuest(`mov rbx, ${SUPERVISOR_DATA}\n mov qword ptr [rbx + 0x20], 1\n hlt`);
    expect(pf).toEqual({ vector: 14n, error: PF_P | PF_W | US, cr2: SUPERVISOR_DATA + 0x20n });
  });

  it('an access to a not-present page has U/S set too: read 0x4, write 0x6', () => {
    expect(userGuest(`mov rax, [${NOT_MAPPED + 0x10n}]\n hlt`).pf).toEqual({ vector: 14n, error: US, cr2: NOT_MAPPED + 0x10n });
    expect(userGuest(`mov qword ptr [${NOT_MAPPED + 0x30n}], 1\n hlt`).pf).toEqual({ vector: 14n, error: US | PF_W, cr2: NOT_MAPPED + 0x30n });
  });

  it('a write to a read-only user page: #PF 0x7 even with CR0.WP = 0, while the same write at CPL 0 goes through and a read at CPL 3 does too', () => {
    const { pf, r, g } = userGuest(`
      mov rbx, ${USER_RO}
      mov r9, [rbx]
      mov qword ptr [rbx + 8], 0x77
      hlt`, { before: `
      mov rax, cr0
      and rax, ~0x10000
      mov cr0, rax
      mov rbx, ${USER_RO}
      mov qword ptr [rbx], 0x1234` });
    expect(pf).toEqual({ vector: 14n, error: PF_P | PF_W | US, cr2: USER_RO + 8n });
    expect(r.r9).toBe(0x1234n);
    expect(g.vm.memory.readU64(USER_RO + 8n)).toBe(0n);
  });

  it('a write to a user page whose PTE has R/W = 1 under a PDE with R/W = 0: #PF 0x7 (R/W must be 1 at every level), with CR0.WP = 0 too', () => {
    // The PDE of [4 MiB, 6 MiB): enablePaging lays out the PML4, the PDPT and then the PD at PT_BASE.
    const pde = PT_BASE + 0x2000n + 2n * 8n;
    const { pf, r } = userGuest(`
      mov r9, [${USER_HIGH}]
      mov qword ptr [${USER_HIGH + 8n}], 1
      hlt`, { before: `
      and qword ptr [${pde}], ~2
      mov rax, cr0
      and rax, ~0x10000
      mov cr0, rax
      mov rax, cr3
      mov cr3, rax
      mov qword ptr [${USER_HIGH}], 0x4321` });
    expect(r.r9).toBe(0x4321n);
    expect(pf).toEqual({ vector: 14n, error: PF_P | PF_W | US, cr2: USER_HIGH + 8n });
  });

  it('a fetch from a supervisor page: #PF with I/D and U/S set (0x15), CR2 the target', () => {
    const { pf, g } = userGuest(`mov rax, ${CODE_BASE + 0x10n}\n jmp rax`);
    expect(pf).toEqual({ vector: 14n, error: PF_P | US | PF_I, cr2: CODE_BASE + 0x10n });
    expect(g.trace.ofType('inject')[0]).toMatchObject({ vector: 14, rip: CODE_BASE + 0x10n });
  });

  it('at CPL 0 user pages are read, written and run; at CPL 3 the user page is read and a supervisor one faults', () => {
    const { pf, r } = userGuest(`
      mov r10, [${USER_DATA}]
      mov rax, [${SUPERVISOR_DATA}]
      hlt
    .org 0x800
    user_function:
      mov r11, 0x5a
      ret`, { before: `
      mov qword ptr [${USER_DATA}], 0x99
      mov r9, [${USER_DATA}]
      mov rax, ${USER_CODE + 0x800n}
      call rax` });
    expect([r.r9, r.r11, r.r10]).toEqual([0x99n, 0x5an, 0x99n]);
    expect(pf).toEqual({ vector: 14n, error: PF_P | US, cr2: SUPERVISOR_DATA });
  });

  it('a segment load at CPL 3 reads (and marks accessed) a descriptor on a supervisor page; a #PF then reaches the CPL 0 handler through an IDT, GDT, TSS and stack on supervisor pages', () => {
    const { outcome, pf, r, g } = userGuest(`
      mov ax, 0x103
      mov ds, ax
      mov r10, ds
      lea r8, [rip + 1f]
    1: mov rax, [${SUPERVISOR_DATA}]
      hlt`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect(r.r10).toBe(0x103n);
    // The descriptor's type went from 2 to 3 (accessed), written at CPL 3 as a supervisor access.
    expect(g.vm.memory.read(GDT + 0x100n + 5n, 1)[0]).toBe(0xf3);
    expect(pf).toEqual({ vector: 14n, error: PF_P | US, cr2: SUPERVISOR_DATA });
    // The handler ran at CPL 0 on RSP0; the frame (after the error code it popped): RIP, CS, RFLAGS, RSP, SS.
    expect(g.vm.vcpu.readSpecial('cs')).toBe(0x08n);
    expect(r.rsp).toBe(RSP0 - 40n);
    const frame = [0n, 8n, 24n, 32n].map((o) => g.vm.memory.readU64(RSP0 - 40n + o));
    expect(frame).toEqual([r.r8, 0x1bn, USER_STACK_TOP, 0x23n]);
  });

  it('a fetch at CPL 3 from a supervisor code page that also holds the TSS: #PF 0x15, even after a read of that page at CPL 3', () => {
    // A second TSS at CODE_BASE + 0xc00, in the page the CPL 0 code ran from, loaded into TR. A
    // data fill at CPL 3 of a page the TSS overlaps may be an implicit supervisor access (the TSS
    // read of a call gate or an I/O permission check), so the model allows the read, a known
    // imprecision (README "Limits worth knowing"), but a fetch is never one: it must still fault.
    const tss = CODE_BASE + 0xc00n;
    const low = 0x67n | ((tss & 0xffffn) << 16n) | (((tss >> 16n) & 0xffn) << 32n) | (0x89n << 40n);
    const { pf } = userGuest(`
      mov rax, [${tss + 0x10n}]
      mov rax, ${CODE_BASE + 0x10n}
      jmp rax`, { before: `
      mov rax, ${low}
      mov [${GDT + 0x50n}], rax
      mov qword ptr [${GDT + 0x58n}], 0
      mov qword ptr [${tss + 4n}], ${RSP0}
      mov ax, 0x50
      ltr ax` });
    expect(pf).toEqual({ vector: 14n, error: PF_P | US | PF_I, cr2: CODE_BASE + 0x10n });
  });

  it('SYSCALL from CPL 3 enters its CPL 0 entry on a supervisor page, which reads supervisor data; SYSRETQ returns to the user page, where a supervisor read faults', () => {
    const star = 0x0023000800000000n;
    const { outcome, pf, r } = userGuest(`
      mov r9, rsp
      syscall
      mov r10, cs
      mov rax, [${SUPERVISOR_DATA + 0x40n}]
      hlt`, { before: `
      mov qword ptr [${SUPERVISOR_DATA}], 0x5e
      mov ecx, 0xc0000080\n rdmsr\n or eax, 1\n wrmsr
      mov ecx, 0xc0000081\n mov eax, ${star & 0xffffffffn}\n mov edx, ${star >> 32n}\n wrmsr
      mov ecx, 0xc0000082\n lea rax, [rip + entry]\n xor edx, edx\n wrmsr
      mov ecx, 0xc0000084\n xor eax, eax\n wrmsr`, extra: `
    entry:
      mov rbx, cs
      mov r12, [${SUPERVISOR_DATA}]
      sysretq` });
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect([r.rbx, r.r12, r.r10, r.rsp === RSP0 - 40n]).toEqual([0x08n, 0x5en, 0x33n, true]);
    expect(pf).toEqual({ vector: 14n, error: PF_P | US, cr2: SUPERVISOR_DATA + 0x40n });
  });

  it('vcpu.translate as a user-mode access gets the same answers as the guest (the walk packed for JS)', () => {
    const { g } = userGuest('hlt');
    const t = g.vm.vcpu;
    expect(t.translate(SUPERVISOR_DATA, 'read')).toMatchObject({ status: 'ok', userPage: false });
    expect(t.translate(SUPERVISOR_DATA, 'read', 'user')).toMatchObject({ status: 'page-fault', pfError: PF_P | US });
    expect(t.translate(UPPER_SUPERVISOR, 'fetch', 'user')).toMatchObject({ status: 'page-fault', pfError: PF_P | US | PF_I });
    expect(t.translate(NOT_MAPPED, 'write', 'user')).toMatchObject({ status: 'page-fault', pfError: US | PF_W });
    expect(t.translate(USER_DATA, 'write', 'user')).toMatchObject({ status: 'ok', userPage: true, writable: true });
    // CR0.WP = 1 here: a supervisor write to the read-only user page faults without U/S, a user one with it.
    expect(t.translate(USER_RO, 'write')).toMatchObject({ status: 'page-fault', pfError: PF_P | PF_W });
    expect(t.translate(USER_RO, 'write', 'user')).toMatchObject({ status: 'page-fault', pfError: PF_P | PF_W | US });
    expect(t.translate(USER_RO, 'read', 'user')).toMatchObject({ status: 'ok', userPage: true, writable: false });
  });
});

describe('user-mode accesses at CPL 3 in a TD', () => {
  // The first 2 MiB (code, stack, GDT, TSS) made user pages: U/S in PML4E 0, PDPTE 0 and PDE 0
  // (tdGuest's tables at PT_BASE: PML4, PDPT, PD), then CR3 reloaded. The next 2 MiB stay supervisor.
  const USER_LOW_2M = [PT_BASE, PT_BASE + 0x1000n, PT_BASE + 0x2000n].map((e) => `or qword ptr [${e}], 4`).join('\n');
  const PF_HANDLER = `pop r15\n mov r14, cr2\n mov r13, 14\n ${HALT}`;

  function tdUser(user: string) {
    const { td, outcome } = runTdGuest(`
      ${USER_LOW_2M}
      mov rax, cr3
      mov cr3, rax
      ${toCpl(3)}
      ${user}`, { extra: `.org 0x680\n ${PF_HANDLER}`, idt: { 14: CODE_BASE + 0x680n } });
    const r = td.platform.machine.vcpu.regs;
    return { outcome, pf: { vector: r.r13, error: Number(r.r15), cr2: r.r14 } };
  }

  it('a read of a supervisor page: #PF 0x5 with CR2, before any EPT check of the (unaccepted) page', () => {
    const { outcome, pf } = tdUser('mov rax, [0x200040]');
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect(pf).toEqual({ vector: 14n, error: PF_P | US, cr2: 0x200040n });
  });

  it('a write to a not-present page: #PF 0x6', () => {
    const { outcome, pf } = tdUser(`mov rbx, ${SHARED_VA * 2n}\n mov qword ptr [rbx], 1`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect(pf).toEqual({ vector: 14n, error: US | PF_W, cr2: SHARED_VA * 2n });
  });
});
