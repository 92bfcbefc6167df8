// #VC raised by a guest instruction in 32-bit protected mode reaches the guest's 32-bit handler
// through an 8-byte IDT gate, with the SW_EXITCODE as error code (GHCB spec §4.1; SDM Vol. 3
// §6.12), as in OVMF's 32-bit reset-vector code (OvmfPkg/ResetVector/Ia32/AmdSev.asm). Also the
// RMP instructions in 32-bit code: PVALIDATE takes EAX, RMPADJUST does not exist there.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../../src/cpu/machine.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { SVM_EXIT } from '../../../src/platform/snp/ghcb-page.js';
import { HonestSnpVmm } from '../../../src/vmm/snp/honest-vmm.js';
import { runSnp } from '../../../src/vmm/snp/run-snp.js';
import { assemble } from '../../helpers/assemble.js';

const CODE = 0x1000n, GDT = 0x10000n, IDT = 0x11000n, STACK = 0x70000n;

/** The 8-byte IDT gate (32-bit interrupt gate, flat CS) for a handler at `offset`. */
const gate32 = (offset: bigint) => offset | (0x08n << 16n) | (0x8en << 40n);

/**
 * A guest in 32-bit flat protected mode at CODE: it loads a flat GDT, jumps to its 32-bit code
 * segment, sets SS (EBX is used for it) and ESP = STACK, runs `body` and halts. With `handler`, it
 * also loads an IDT whose gate `vector` enters `handler.code` at CODE + 0x800, and the IDT and
 * stack pages are launched (validated) too. Ready to run once the test calls launchFinish().
 */
function protectedModeGuest(body: string, handler?: { vector: number; code: string }): { vm: Machine; platform: SnpPlatform } {
  const vm = new Machine({ memoryBytes: 32n << 20n });
  vm.memory.write(CODE, assemble(`
      .code32
      lgdt [gdtr]
      ${handler ? 'lidt [idtr]' : ''}
      .byte 0xea
      .long flat_cs
      .word 0x08
    flat_cs:
      mov ebx, 0x10
      mov ss, ebx
      mov esp, ${STACK}
      ${body}
      hlt
      .org 0x800
      ${handler?.code ?? ''}
      .balign 8
    gdt:
      .quad 0, 0x00cf9b000000ffff, 0x00cf93000000ffff
    gdtr:
      .word 23
      .long gdt
    idtr:
      .word 0x7ff
      .long ${IDT}`, CODE));
  const platform = new SnpPlatform(vm);
  platform.launchUpdateRange(CODE, 0x1000n);
  if (handler) {
    vm.memory.writeU64(IDT + BigInt(handler.vector) * 8n, gate32(CODE + 0x800n));
    platform.launchUpdateRange(IDT, 0x1000n);
    platform.launchUpdateRange(STACK - 0x1000n, 0x1000n);
  }
  vm.vcpu.enter({ mode: 'protected32' });
  vm.vcpu.regs.rip = CODE;
  return { vm, platform };
}

describe('SNP #VC in 32-bit protected mode', () => {
  it('port I/O in 32-bit code: #VC(IOIO) to a 32-bit handler, error code on a dword frame', () => {
    const { vm, platform } = protectedModeGuest(`
      mov dx, 0x3f8
      out dx, al`, { vector: 29, code: `
      pop ebx               # the error code: SW_EXITCODE
      pop esi               # EIP of the OUT
      pop edi               # CS
      xor eax, eax
      inc eax               # 1 only as 32-bit code
      hlt` });
    platform.launchFinish();
    const outcome = runSnp(platform, new HonestSnpVmm());
    expect(outcome.outcome).toBe('done');
    const r = vm.vcpu.regs;
    expect(r.rbx).toBe(BigInt(SVM_EXIT.IOIO));
    expect(r.rdi).toBe(0x08n);
    expect(vm.memory.readU8(r.rsi)).toBe(0xee);  // the frame's EIP is the OUT DX, AL
    expect(r.rax).toBe(1n);
    expect(vm.vcpu.codeSegment().bits).toBe(32);
  });

  it('PVALIDATE in 32-bit code takes its address from EAX: bits 63:32 of RAX, left over from before, do not count (LLVM X86InstrSNP.td PVALIDATE32 uses EAX)', () => {
    const P = 0x200000n;
    const { vm, platform } = protectedModeGuest(`
      .byte 0xf2, 0x0f, 0x01, 0xff   # pvalidate: EAX = P, ECX = 0 (4K), EDX = 1 (validate)`);
    expect(platform.rmpUpdate(P, { assigned: true, pageSize: '4k', gpa: P, asid: platform.asid }).rc).toBe(0);
    vm.vcpu.regs.rax = (0xdeadn << 32n) | P;
    vm.vcpu.regs.rcx = 0n;
    vm.vcpu.regs.rdx = 1n;
    platform.launchFinish();
    expect(runSnp(platform, new HonestSnpVmm()).outcome).toBe('done');
    expect(vm.vcpu.regs.rax & 0xffffffffn).toBe(0n);
    expect(platform.rmp.lookup(P).validated).toBe(true);
    expect(platform.trace.ofType('pvalidate')[0]).toMatchObject({ gva: P, gpa: P, rc: 0 });
  });

  it('RMPADJUST in 32-bit code: #UD, the RMP unchanged (a 64-bit-only instruction: LLVM X86InstrSNP.td Requires<[In64BitMode]>; EDK2 MpLib "RMPADJUST is not supported in 32-bit mode")', () => {
    const { vm, platform } = protectedModeGuest(`
      mov eax, ${CODE}
      xor ecx, ecx
      mov edx, 0x11f01       # VMPL1, every permission, VMSA
      .byte 0xf3, 0x0f, 0x01, 0xfe   # rmpadjust`, { vector: 6, code: `
      mov esi, 6
      hlt` });
    platform.launchFinish();
    const before = platform.rmp.lookup(CODE);
    expect(runSnp(platform, new HonestSnpVmm()).outcome).toBe('done');
    expect(vm.vcpu.regs.rsi).toBe(6n);
    expect(platform.rmp.lookup(CODE)).toEqual(before);
  });
});
