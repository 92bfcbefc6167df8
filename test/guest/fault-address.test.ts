// Exact fault addresses: the TLB-fill hook sees only the page of a refused access; the native
// side decodes the faulting instruction (native/src/mem_operand.cc) and reports the exact
// linear address (and GPA, CR2) with `exactAddress`.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';
import type { GateAccess } from '../../src/memory/page-gate.js';
import { gpaLevel } from '../../src/platform/tdx/seamcall.js';
import { runTd } from '../../src/vmm/tdx/run-td.js';
import { enablePaging, simpleGuest } from '../helpers/guest-setup.js';
import { snpGuest } from '../helpers/snp-guest.js';
import { HALT, TDCALL, tdGuest } from '../helpers/tdx-guest.js';

const MiB = 1n << 20n;
const CR4_OSFXSR = 1n << 9n;

interface Case {
  name: string;
  asm: string;
  /** Page refused, and what the gate still allows there. */
  refuse: bigint;
  allow?: GateAccess;
  setup?: (vm: Machine) => void;
  access: 'read' | 'write' | 'fetch';
  gva: bigint;
  rip?: bigint;
  regs?: Partial<Record<'rcx' | 'rsi' | 'rdi' | 'rsp', bigint>>;
}

const CASES: Case[] = [
  { name: 'mov rax, [rcx+0x123]', asm: 'mov rcx, 0x400000\nmov rax, [rcx+0x123]', refuse: 0x400000n, access: 'read', gva: 0x400123n },
  {
    name: 'mov [rcx+rdx*8+0x10], eax (SIB)', asm: 'mov rcx, 0x400000\nmov rdx, 0x21\nmov [rcx+rdx*8+0x10], eax',
    refuse: 0x400000n, access: 'write', gva: 0x400118n,
  },
  {
    name: 'mov al, [rip+label] (RIP-relative)', asm: 'mov al, [rip+label]\nhlt\n.org 0x1234\nlabel: .byte 1',
    refuse: 0x2000n, access: 'read', gva: 0x2234n,
  },
  {
    name: 'cmp dword ptr [rip+label], 0x12345 (RIP-relative with imm32)', asm: 'cmp dword ptr [rip+label], 0x12345\nhlt\n.org 0x1340\nlabel: .long 1',
    refuse: 0x2000n, access: 'read', gva: 0x2340n,
  },
  {
    name: 'add qword ptr [rbx-8], 1 on a read-only page (the write)', asm: 'mov rbx, 0x400100\nadd qword ptr [rbx-8], 1',
    refuse: 0x400000n, allow: 'read', access: 'write', gva: 0x4000f8n,
  },
  { name: 'mov [0x400200], rax (SIB, no base)', asm: 'mov [0x400200], rax', refuse: 0x400000n, access: 'write', gva: 0x400200n },
  { name: 'movabs al, [moffs64]', asm: 'movabs al, [0x400321]', refuse: 0x400000n, access: 'read', gva: 0x400321n },
  { name: 'push rax into a refused stack page', asm: 'push rax', refuse: 0x7f000n, access: 'write', gva: 0x7fff8n, regs: { rsp: 0x80000n } },
  {
    name: 'push rax crossing into a refused stack page', asm: 'mov rsp, 0x80004\npush rax',
    refuse: 0x80000n, access: 'write', gva: 0x80000n, regs: { rsp: 0x80004n },
  },
  { name: 'call rel32 pushes into a refused stack page', asm: 'call 1f\n1: hlt', refuse: 0x7f000n, access: 'write', gva: 0x7fff8n },
  {
    name: 'call [rcx] reads its target', asm: 'mov rcx, 0x400100\ncall qword ptr [rcx]',
    refuse: 0x400000n, access: 'read', gva: 0x400100n,
  },
  {
    name: 'pop qword ptr [rsp+0x20] (RSP base after the increment)', asm: 'mov rsp, 0x3ffff8\npop qword ptr [rsp+0x20]',
    refuse: 0x400000n, access: 'write', gva: 0x400020n,
  },
  {
    name: 'rep stosb forward into a refused page', asm: 'mov rdi, 0x3ffff0\nmov rcx, 0x40\nmov al, 0xaa\nrep stosb',
    refuse: 0x400000n, access: 'write', gva: 0x400000n, regs: { rdi: 0x400000n, rcx: 0x30n },
  },
  {
    name: 'std; rep stosb backward into a refused page', asm: 'mov rdi, 0x400010\nmov rcx, 0x40\nstd\nrep stosb',
    refuse: 0x3ff000n, access: 'write', gva: 0x3fffffn, regs: { rdi: 0x3fffffn, rcx: 0x2fn },
  },
  {
    name: 'rep movsq writing into a refused page', asm: 'mov rsi, 0x300000\nmov rdi, 0x3fffe0\nmov rcx, 16\nrep movsq',
    refuse: 0x400000n, allow: 'read', access: 'write', gva: 0x400000n, regs: { rdi: 0x400000n, rsi: 0x300020n, rcx: 12n },
  },
  {
    name: 'rep movsq reading across into a refused page', asm: 'mov rsi, 0x3fffe4\nmov rdi, 0x300000\nmov rcx, 16\nrep movsq',
    refuse: 0x400000n, access: 'read', gva: 0x400000n, regs: { rsi: 0x3ffffcn, rdi: 0x300018n, rcx: 13n },
  },
  {
    name: 'cmpsb reads [rdi] before [rsi]', asm: 'mov rsi, 0x400010\nmov rdi, 0x400020\ncmpsb',
    refuse: 0x400000n, access: 'read', gva: 0x400020n,
  },
  { name: 'xlat', asm: 'mov rbx, 0x400000\nmov eax, 0x42\nxlatb', refuse: 0x400000n, access: 'read', gva: 0x400042n },
  {
    name: 'bt [rcx], rdx (bit offset beyond the operand)', asm: 'mov rcx, 0x3ff000\nmov rdx, 0x80c5\nbt qword ptr [rcx], rdx',
    refuse: 0x400000n, access: 'read', gva: 0x400018n,
  },
  {
    name: '16-byte movdqu crossing into a refused page', asm: 'mov rcx, 0x3ffff8\nmovdqu xmm0, [rcx]',
    refuse: 0x400000n, access: 'read', gva: 0x400000n,
    setup: (vm) => vm.vcpu.writeSpecial('cr4', vm.vcpu.readSpecial('cr4') | CR4_OSFXSR),
  },
  {
    name: 'movups store starting in a refused page', asm: 'mov rcx, 0x4000f0\nmovups [rcx+8], xmm1',
    refuse: 0x400000n, access: 'write', gva: 0x4000f8n,
    setup: (vm) => vm.vcpu.writeSpecial('cr4', vm.vcpu.readSpecial('cr4') | CR4_OSFXSR),
  },
  {
    // The emulator reads FCW/FSW/FTW, then the x87 registers from +0x20: the first byte it reads
    // in the refused page is +0x20, not the page start at +0x10.
    name: 'fxrstor reads its image in parts', asm: 'mov rcx, 0x3ffff0\nfxrstor [rcx]',
    refuse: 0x400000n, access: 'read', gva: 0x400010n,
  },
  {
    name: 'fldenv reads words at +0, +4, +8', asm: 'mov rcx, 0x3ffffd\nfldenv [rcx]',
    refuse: 0x400000n, access: 'read', gva: 0x400001n,
  },
  {
    name: 'mov rax, fs:[rcx] adds FS_BASE', asm: 'mov rcx, 0x1234\nmov rax, fs:[rcx]',
    refuse: 0x400000n, access: 'read', gva: 0x400234n, setup: (vm) => vm.vcpu.writeSpecial('fsBase', 0x3ff000n),
  },
  {
    name: 'mov gs:[rax+8], bl adds GS_BASE', asm: 'mov eax, 0xf00\nmov gs:[rax+8], bl',
    refuse: 0x400000n, access: 'write', gva: 0x400008n, setup: (vm) => vm.vcpu.writeSpecial('gsBase', 0x3ff100n),
  },
  {
    name: '67h: 32-bit addressing ignores the upper register half', asm: 'mov rcx, 0xffffffff00400100\nmov eax, [ecx+0x10]',
    refuse: 0x400000n, access: 'read', gva: 0x400110n,
  },
  {
    name: '67h: 32-bit addressing wraps at 4 GiB', asm: 'mov ecx, 0xfff00000\nmov eax, [ecx+0x500123]',
    refuse: 0x400000n, access: 'read', gva: 0x400123n,
  },
  { name: 'a jump into a refused page (fetch)', asm: 'mov rax, 0x600123\njmp rax', refuse: 0x600000n, access: 'fetch', gva: 0x600123n, rip: 0x600123n },
  {
    name: 'an instruction that straddles into a refused page (fetch)', asm: 'jmp 1f\n.org 0xffa\n1: movabs rax, 0x1122334455667788\nhlt',
    refuse: 0x2000n, access: 'fetch', gva: 0x2000n, rip: 0x1ffan,
  },
  {
    // The emulator refuses the fetch while translating the block that starts at the first NOP:
    // RIP is there (nothing of the block ran), the first byte it could not read is the page start.
    name: 'straight-line code running into a refused page (fetch)', asm: `jmp 1f\n.org 0xfe0\n1:\n${'nop\n'.repeat(26)}movabs rax, 0x1122334455667788`,
    refuse: 0x2000n, access: 'fetch', gva: 0x2000n, rip: 0x1fe0n,
  },
];

describe('exact gate-fault addresses', () => {
  it.each(CASES)('$name', (c) => {
    const vm = simpleGuest(`${c.asm}\nhlt`);
    c.setup?.(vm);
    vm.gate.set('private', c.refuse, 0x1000n, c.allow ?? 'none');
    const exit = vm.vcpu.run();
    expect(exit).toMatchObject({ kind: 'gate-fault', access: c.access, exactAddress: true, gva: c.gva, gpa: c.gva, pageWalk: false });
    if (c.rip !== undefined) expect(exit.rip).toBe(c.rip);
    for (const [reg, value] of Object.entries(c.regs ?? {})) expect(vm.vcpu.regs[reg as keyof NonNullable<Case['regs']>], reg).toBe(value);
  });

  it('an instruction the decoder does not model keeps the page address (far call)', () => {
    const vm = simpleGuest('mov rcx, 0x400100\ncall fword ptr [rcx]\nhlt');
    vm.gate.set('private', 0x400000n, 0x1000n, 'none');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', access: 'read', exactAddress: false, gva: 0x400000n, gpa: 0x400000n });
  });

  it('the refused access is retried exactly once the page opens', () => {
    const vm = simpleGuest('mov rdi, 0x3ffff0\nmov rcx, 0x40\nmov al, 0xaa\nrep stosb\nhlt');
    vm.gate.set('private', 0x400000n, 0x1000n, 'none');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', gva: 0x400000n, exactAddress: true });
    vm.gate.set('private', 0x400000n, 0x1000n, 'readwrite');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'hlt' });
    expect(vm.memory.read(0x3ffff0n, 0x40)).toEqual(Buffer.alloc(0x40, 0xaa));
    expect(vm.vcpu.regs.rcx).toBe(0n);
  });

  it('works the same without instruction counting', () => {
    const vm = simpleGuest('mov rcx, 0x400000\nmov rax, [rcx+0x777]\nhlt', { countInstructions: false });
    vm.gate.set('private', 0x400000n, 0x1000n, 'none');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', gva: 0x400777n, gpa: 0x400777n, exactAddress: true });
  });
});

describe('exact addresses under guest paging', () => {
  function pagedGuest(asm: string, memoryBytes = 16n * MiB): Machine {
    return simpleGuest(`${asm}\nhlt`, { memoryBytes });
  }

  it('#PF on a not-present page reports CR2 exactly', () => {
    const vm = pagedGuest('mov rcx, 0x900000\nmov rax, [rcx+0x345]');
    enablePaging(vm, [{ va: 0n, pa: 0n, size: 8n * MiB, pageSize: 0x200000n }]);
    expect(vm.vcpu.run()).toMatchObject({ kind: 'exception', vector: 14, errorCode: 0n, cr2: 0x900345n, exactAddress: true, rip: 0x1007n });
  });

  it('#PF on a fetch from a not-present page reports the jump target', () => {
    const vm = pagedGuest('mov rax, 0x900123\njmp rax');
    enablePaging(vm, [{ va: 0n, pa: 0n, size: 8n * MiB, pageSize: 0x200000n }]);
    expect(vm.vcpu.run()).toMatchObject({ kind: 'exception', vector: 14, errorCode: 0x10n, cr2: 0x900123n, exactAddress: true });
  });

  it('#PF from an instruction the decoder does not model keeps the page address (far call)', () => {
    const vm = pagedGuest('mov rcx, 0x900100\ncall fword ptr [rcx]');
    enablePaging(vm, [{ va: 0n, pa: 0n, size: 8n * MiB, pageSize: 0x200000n }]);
    expect(vm.vcpu.run()).toMatchObject({ kind: 'exception', vector: 14, errorCode: 0n, cr2: 0x900000n, exactAddress: false });
  });

  it('INT 14 is a software interrupt, not a page fault: no error code and no CR2 (SDM Vol. 3A 6.13), RIP past it', () => {
    const vm = pagedGuest('int 14');
    enablePaging(vm, [{ va: 0n, pa: 0n, size: 8n * MiB, pageSize: 0x200000n }]);
    const exit = vm.vcpu.run();
    expect(exit).toMatchObject({ kind: 'exception', vector: 14, afterInstruction: true });
    expect(exit).not.toHaveProperty('errorCode');
    expect(exit).not.toHaveProperty('cr2');
    expect(exit).not.toHaveProperty('exactAddress');
  });

  it('#PF on a write to a read-only page, crossing into it', () => {
    const vm = pagedGuest('mov rcx, 0x9ffffc\nmov qword ptr [rcx], 1');
    enablePaging(vm, [
      { va: 0n, pa: 0n, size: 8n * MiB, pageSize: 0x200000n },
      { va: 0x9ff000n, pa: 0x9ff000n, size: 0x1000n, pageSize: 4096n },
      { va: 0xa00000n, pa: 0xa00000n, size: 0x1000n, pageSize: 4096n, writable: false },
    ]);
    expect(vm.vcpu.run()).toMatchObject({ kind: 'exception', vector: 14, errorCode: 3n, cr2: 0xa00000n, exactAddress: true });
  });

  it('a non-identity mapping: GVA exact, GPA = mapped page + offset', () => {
    const vm = pagedGuest('mov rcx, 0x40000000\nmov rax, [rcx]\nmov rdx, [rcx + 0x1abc]');
    enablePaging(vm, [
      { va: 0n, pa: 0n, size: 4n * MiB, pageSize: 0x200000n },
      { va: 0x40000000n, pa: 0x800000n, size: 0x2000n, pageSize: 4096n },
    ]);
    vm.gate.set('private', 0x801000n, 0x1000n, 'none');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', gva: 0x40001abcn, gpa: 0x801abcn, access: 'read', exactAddress: true });
  });

  it('a page-walk fault: GVA exact, GPA stays the page-table page', () => {
    const vm = pagedGuest('mov rcx, 0x800000\nmov rax, [rcx+0x568]');
    const end = enablePaging(vm, [
      { va: 0n, pa: 0n, size: 8n * MiB, pageSize: 0x200000n },
      { va: 0x800000n, pa: 0x800000n, size: 0x1000n, pageSize: 4096n },
    ]);
    const lastTable = end - 0x1000n;
    vm.gate.set('private', lastTable, 0x1000n, 'none');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', pageWalk: true, gpa: lastTable, gva: 0x800568n, exactAddress: true });
  });
});

describe('exact addresses reach the guest', () => {
  it('SNP: #VC 0x404 has CR2 = the exact faulting GVA', () => {
    const T = 0x400000n;
    const g = snpGuest(`
      mov rax, 0x${T.toString(16)}
      mov rbx, [rax + 0x5a8]
      hlt`);
    // Guest-owned but never validated: the access is a #VC 0x404 (APM Vol. 2 §15.36.10).
    expect(g.platform.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: g.platform.asid }).result).toBe('SUCCESS');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r13).toBe(29n);
    expect(g.vm.vcpu.regs.r15).toBe(0x404n);
    expect(g.vm.vcpu.regs.r14).toBe(T + 0x5a8n);
  });

  it('TDX: VEINFO.GET returns the exact GLA and GPA', () => {
    const reader = `mov rax, 3\n ${TDCALL}\n mov rbp, r8\n mov rsi, r9\n mov r15, 20\n ${HALT}`;
    const td = tdGuest(`mov rcx, 0x400000\n mov eax, [rcx + 0xd0c]\n ${HALT}`, { ve: reader });
    td.platform.module.host.memPageAug(gpaLevel(0x400000n, 0));
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(20n);
    expect(td.platform.machine.vcpu.regs.rbp).toBe(0x400d0cn);
    expect(td.platform.machine.vcpu.regs.rsi).toBe(0x400d0cn);
  });
});
