// Boots the real firmware -> decompressor -> kernel stubs on both platforms, with the honest
// VMMs, and checks the guest's account of acceptance against the hardware's.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBootOptions, type RawBootOptions } from '../../../src/cli/boot-options.js';
import { bootGuest, type BootRun } from '../../../src/boot/boot-guest.js';
import { loadBootImages } from '../../../src/boot/images.js';
import { GuestImageError } from '../../../src/boot/images.js';
import { ABI } from '../../../src/boot/layout.js';
import { acceptanceMismatches, bootParams, doubleAccepts, hardwareAcceptedBytes, memoryMapTilingErrors } from '../../helpers/boot-check.js';
import { snpBacks2mWith4k, tdxBacks2mWith4k } from '../../helpers/attacks.js';
import { honestTdxPolicy } from '../../../src/vmm/tdx/honest-vmm.js';

const MiB = 1n << 20n;
const UNIT_2M = 2n * MiB;

function boot(raw: RawBootOptions): BootRun {
  return bootGuest(parseBootOptions(raw), { keepTrace: true });
}

function expectHealthyBoot(run: BootRun, raw: RawBootOptions): void {
  const config = parseBootOptions(raw);
  const { result, report } = run;
  expect(result.outcome, `${result.outcomeReason}\n${result.console.slice(-2000)}`).toBe('done');
  expect(report.stages).toEqual(['firmware', 'decompressor', 'kernel']);
  expect(report.errors).toEqual([]);
  // The guest's memory map tiles RAM exactly, and it and the bitmap say what the hardware says.
  expect(memoryMapTilingErrors(run.platform.machine)).toEqual([]);
  expect(acceptanceMismatches(run)).toEqual([]);
  // Never an accept of memory that was already accepted (Linux panics on it; so does our kernel).
  expect(doubleAccepts(run)).toBe(0);
  // No #VE/#VC ever reached the guest: everything it touched was accepted first.
  expect(run.trace.ofType('ve-injected')).toEqual([]);
  expect(run.trace.events.filter((e) => e.type === 'vc-injected' || (e.type === 'exception-injected'))).toEqual([]);
  expect(BigInt(report.stats.workload_bytes_verified ?? 0n)).toBeGreaterThanOrEqual(config.workloadBytes);
  // What the guest says it accepted matches what the hardware counted, stage by stage.
  const stages = result.acceptedBytes;
  expect(BigInt(stages.firmware)).toBe(report.stats.firmware_accepted_bytes);
  expect(BigInt(stages.decompressor)).toBe(report.stats.decompressor_accepted_bytes);
  expect(BigInt(stages.total)).toBe(report.stats.accepted_bytes_total);
}

/** In lazy mode, memory beyond what the boot needs stays unaccepted. */
function expectLazy(run: BootRun, raw: RawBootOptions): void {
  const config = parseBootOptions(raw);
  const vm = run.platform.machine;
  const bp = bootParams(vm);
  const preAccept = config.preAccept === 'all' ? config.memoryBytes : config.preAccept;
  // pre-accepted image + firmware's share + bitmap + kernel + workload, each rounded up to a
  // unit, plus Linux's guard unit and the unaligned head/tail units accepted up front.
  const bound = ABI.MV_INITIAL_IMAGE_END + preAccept + bp.bitmapBytes + bp.kernelBytes + config.workloadBytes + 8n * UNIT_2M;
  expect(hardwareAcceptedBytes(vm)).toBeLessThan(bound);
  expect(run.report.stats.unaccepted_bytes_remaining).toBeGreaterThan(config.memoryBytes - bound);
}

describe.each(['tdx', 'snp'] as const)('%s boot', (platform) => {
  const big = '4G';

  it.each([
    { memory: big },
    { memory: '4095M', unit: '4K' },
    { memory: '4097M' },
  ])('lazy boot %j', (flags) => {
    const raw = { platform, ...flags };
    const run = boot(raw);
    expectHealthyBoot(run, raw);
    expectLazy(run, raw);
    run.platform.machine.close();
  });

  it('eager boot accepts all RAM in the kernel', () => {
    const raw = { platform, memory: '1G', accept: 'eager' };
    const run = boot(raw);
    expectHealthyBoot(run, raw);
    const vm = run.platform.machine;
    const bp = bootParams(vm);
    const usable = bp.e820.filter((e) => e.type === 1 || e.type === 15).reduce((n, e) => n + e.size, 0n);
    // Everything is accepted except one page the firmware made shared: SNP's GHCB, TDX's console
    // page; the firmware volume below 4 GiB is accepted too (pre-accepted by the VMM, not RAM).
    const shared = 4096n;
    expect(hardwareAcceptedBytes(vm)).toBe(usable + ABI.MV_INITIAL_IMAGE_END - ABI.MV_TEMP_RAM_GPA - shared + ABI.MV_FIRMWARE_VOLUME_BYTES);
    vm.close();
  });

  it('pre-accept 0 leaves all acceptance to the later stages', () => {
    const raw = { platform, memory: '512M', preAccept: '0' };
    const run = boot(raw);
    expectHealthyBoot(run, raw);
    expect(run.result.acceptedBytes.firmware).toBe(0);
    expect(run.result.acceptedBytes.kernel).toBeGreaterThan(0);
    run.platform.machine.close();
  });

  it('pre-accept all (approach I) leaves nothing for the kernel to accept', () => {
    const raw = { platform, memory: '256M', preAccept: 'all' };
    const run = boot(raw);
    expectHealthyBoot(run, raw);
    // The kernel accepts only what it converts back from shared (the workload's round trip).
    expect(BigInt(run.result.acceptedBytes.kernel)).toBeLessThanOrEqual(4n * MiB);
    expect(run.report.stats.unaccepted_bytes_remaining).toBe(0n);
    run.platform.machine.close();
  });

  it('is deterministic: same config and seed, same trace; another seed moves the bitmap', () => {
    const raw = { platform, memory: '512M', seed: '7' };
    const a = boot(raw);
    const b = boot(raw);
    expect(a.result.traceSha256).toBe(b.result.traceSha256);
    expect(a.result.console).toBe(b.result.console);
    const c = boot({ ...raw, seed: '8' });
    expect(c.result.outcome).toBe('done');
    expect(bootParams(c.platform.machine).bitmapGpa).not.toBe(bootParams(a.platform.machine).bitmapGpa);
    expect(c.result.traceSha256).not.toBe(a.result.traceSha256);
    for (const r of [a, b, c]) r.platform.machine.close();
  });
});

describe('console', () => {
  // boot_abi.h: the console goes out in batches, several lines per exit, never byte by byte; a
  // batch ends after each "@mv stage" line and before the guest's next exit of its own.
  it.each(['tdx', 'snp'] as const)('%s: the stubs send their console in batches, a stage line ending one', (platform) => {
    const run = bootGuest(parseBootOptions({ platform, memory: '256M', workload: '4M' }), { keepTrace: true });
    expect(run.result.outcome).toBe('done');
    const lines = run.result.console.split('\n').length - 1;
    const events = run.trace.events;
    const batches = platform === 'tdx'
      ? events.filter((e) => e.type === 'td-exit' && e.r10 === 0x4d56n)
      : events.filter((e) => e.type === 'io' && e.string === true);
    const perByte = platform === 'tdx'
      ? events.filter((e) => e.type === 'td-exit' && e.r10 === 0n && e.r11 === 30n)
      : events.filter((e) => e.type === 'io' && e.string !== true);
    expect(perByte).toHaveLength(0);
    // Every stage's report arrives, though each stage links its own console buffer.
    for (const stat of ['firmware_accepted_bytes', 'decompressor_accepted_bytes', 'kernel_accepted_bytes']) expect(run.report.stats[stat]).toBeDefined();
    const stageLines = run.result.console.split('\n').filter((l) => l.startsWith('@mv stage ')).length;
    expect(stageLines).toBe(3);
    // Per stage: its stage line, and its report when it hands over (or ends), for ~25 lines.
    expect(batches.length).toBeLessThanOrEqual(2 * stageLines + 1);
    expect(lines).toBeGreaterThan(3 * batches.length);
    // Each stage event follows its batch's exit directly: the stage's accepts are counted for it.
    for (const stage of events.filter((e) => e.type === 'stage')) {
      const exit = events.slice(0, events.indexOf(stage)).reverse().find((e) => e.type === 'td-exit' || e.type === 'vmgexit');
      expect(platform === 'tdx' ? exit?.r10 : exit?.type).toBe(platform === 'tdx' ? 0x4d56n : 'vmgexit');
    }
    run.platform.machine.close();
  });

  it('TDX: a batch the VMM refuses once is sent again, not byte by byte', () => {
    const raw = { platform: 'tdx', memory: '256M', workload: '4M' } as const;
    const batched = bootGuest(parseBootOptions(raw));
    let refused = 0;
    const once = bootGuest(parseBootOptions(raw), {
      keepTrace: true,
      vmm: { tdx: { ...honestTdxPolicy, otherVmcall: (ctx, call) => (refused++ === 0 ? { kind: 'return', regs: { r10: 1n } } : honestTdxPolicy.otherVmcall(ctx, call)) } },
    });
    expect(once.result.outcome).toBe('done');
    expect(once.result.console).toBe(batched.result.console);
    expect(once.trace.events.filter((e) => e.type === 'td-exit' && e.r10 === 0n && e.r11 === 30n)).toHaveLength(0);
    expect(once.result.exits.tdcall).toBe(batched.result.exits.tdcall! + 1);
    batched.platform.machine.close();
    once.platform.machine.close();
  });

  it('TDX: a VMM without the batched console gets the same text byte by byte', () => {
    const raw = { platform: 'tdx', memory: '256M', workload: '4M' } as const;
    const batched = bootGuest(parseBootOptions(raw));
    const bytewise = bootGuest(parseBootOptions(raw), { vmm: { tdx: { ...honestTdxPolicy, otherVmcall: () => ({ kind: 'return', regs: { r10: 1n } }) } } });
    expect(bytewise.result.outcome).toBe('done');
    expect(bytewise.result.console).toBe(batched.result.console);
    expect(bytewise.result.exits.tdcall).toBeGreaterThan(batched.result.exits.tdcall! + bytewise.result.console.length / 2);
    batched.platform.machine.close();
    bytewise.platform.machine.close();
  });
});

describe('a VMM that backs 2 MiB with 4 KiB pages', () => {
  // TDX: AUG at 4K only, so a 2M ACCEPT meets PENDING 4K leaves (PAGE_SIZE_MISMATCH); SNP: 4K
  // RMP entries and NPT, so PVALIDATE 2M returns FAIL_SIZEMISMATCH. The guests fall back to 4K.
  it.each([
    ['tdx', tdxBacks2mWith4k],
    ['snp', snpBacks2mWith4k],
  ] as const)('%s: the 2M->4K fallbacks run and the boot still ends done', (platform, vmm) => {
    const raw = { platform, memory: '512M', workload: '8M' } as const;
    const run = bootGuest(parseBootOptions(raw), { keepTrace: true, vmm: vmm() });
    expectHealthyBoot(run, raw);
    const fallbacks = run.report.stats.size_mismatch_fallbacks ?? 0n;
    expect(fallbacks).toBeGreaterThan(0n);
    // Every 2M the guest accepted went through the fallback: no 2M accept succeeded.
    expect(run.report.stats.accept_calls_2m).toBe(0n);
    // The hardware refused 2M as often as the guest says it fell back (SNP: rescinds too).
    const mismatches = run.trace.events.filter((e) => (e.type === 'tdcall' && e.leaf === 'MEM_PAGE_ACCEPT' && typeof e.status === 'bigint' && (e.status >> 32n) === 0xc0000b0bn)
      || (e.type === 'pvalidate' && e.size === '2m' && e.rc === 6));
    expect(BigInt(mismatches.length)).toBe(fallbacks);
    run.platform.machine.close();
  });
});

describe('snp page-state change', () => {
  it('batches conversions through the GHCB page: few VMGEXITs, 2M RMP entries, PVALIDATE 2M succeeds', () => {
    const raw = { platform: 'snp' as const, memory: '512M' };
    const run = boot(raw);
    expectHealthyBoot(run, raw);
    const { result, report } = run;
    // Per-page conversion needs at least one VMGEXIT per accepted 4 KiB page; batched PSC
    // (2M entries, up to 253 per call) needs a handful. Most of the exits left are console I/O.
    const pages = result.acceptedBytes.total / 4096;
    expect(result.exits.vmgexit).toBeLessThan(pages / 8);
    // Only the GHCB page itself goes through the MSR protocol; everything else uses the NAE.
    const psc = run.trace.ofType('psc');
    expect(psc.filter((e) => e.via === 'msr')).toHaveLength(1);
    expect(psc.filter((e) => e.via === 'ghcb' && e.size === '2m' && e.error === 0n).length).toBeGreaterThan(0);
    expect(report.stats.page_state_requests).toBeLessThan(64n);
    // 2M RMP entries: PVALIDATE 2M validates directly, no SIZEMISMATCH fallback.
    const pval2m = run.trace.ofType('pvalidate').filter((e) => e.size === '2m' && e.validate === true);
    expect(pval2m.length).toBeGreaterThan(0);
    expect(pval2m.every((e) => e.rc === 0 && e.cf === false)).toBe(true);
    expect(report.stats.size_mismatch_fallbacks).toBe(0n);
    expect(report.stats.accept_calls_2m).toBe(BigInt(pval2m.length));
    run.platform.machine.close();
  });
});

describe('user firmware', () => {
  // A TD halts through TDG.VP.VMCALL<Instruction.HLT>: a plain HLT raises #VE (tdx_td_dispatcher.c).
  const TDVMCALL_HLT = 'xor eax, eax\n mov ecx, 0xc00\n xor r10d, r10d\n mov r11d, 12\n .byte 0x66, 0x0f, 0x01, 0xcc';
  // A TD's firmware starts in 32-bit protected mode with paging off (TDH.VP.INIT) and enters long
  // mode itself: a GDT, an identity map of the first GiB in pre-accepted temporary RAM, CR4.PAE,
  // CR3, CR0.PG (EFER.LME is already set), a far jump to 64-bit code.
  const LONG_MODE_PROLOGUE = `
    .code32
  start:
    lgdt [gdtr]
    mov edi, 0x2f0000
    mov dword ptr [edi], 0x2f1003
    mov dword ptr [edi + 0x1000], 0x2f2003
    xor ecx, ecx
  0:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [edi + 0x2000 + ecx * 8], eax
    inc ecx
    cmp ecx, 512
    jne 0b
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov cr3, edi
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    .byte 0xea
    .long long64
    .word 0x08
    .balign 8
  gdt:
    .quad 0, 0x00af9b000000ffff
  gdtr:
    .word 15
    .long gdt
    .code64
  long64:`;
  const dir = mkdtempSync(join(tmpdir(), 'minivisor-fw-'));
  const build = (name: string, source: string): string => {
    // The reset vector at 0xFFFFFFF0 (the last 16 bytes of the firmware volume) jumps to start.
    const resetVector = '.section .reset, "ax"\n.code32\n.globl reset\nreset:\nmov eax, offset start\njmp eax\n.text\n';
    writeFileSync(join(dir, `${name}.S`), `.intel_syntax noprefix\n${resetVector}.globl start\n${LONG_MODE_PROLOGUE}\n${source}\n`);
    execFileSync('as', ['--64', '-o', join(dir, `${name}.o`), join(dir, `${name}.S`)]);
    execFileSync('ld', ['-m', 'elf_x86_64', '-nostdlib', '-N', '--no-warn-rwx-segments', '-e', 'reset', '-Ttext=0x301000', '--section-start=.reset=0xfffffff0', '-o', join(dir, `${name}.elf`), join(dir, `${name}.o`)]);
    return join(dir, `${name}.elf`);
  };

  it('boots a user firmware ELF on the emulated TDX platform', () => {
    // Prints the protocol lines through TDVMCALL Instruction.IO (GHCI), then halts.
    const firmware = build('hello', `
      lea rsi, [rip + message]
    1:
      movzx r15, byte ptr [rsi]
      test r15, r15
      jz 2f
      xor eax, eax              # TDG.VP.VMCALL
      mov ecx, 0xfc00           # expose R10-R15
      xor r10, r10
      mov r11, 30               # Instruction.IO
      mov r12, 1                # size
      mov r13, 1                # out
      mov r14, 0x3f8
      .byte 0x66, 0x0f, 0x01, 0xcc
      inc rsi
      jmp 1b
    2:
      ${TDVMCALL_HLT}
    message:
      .ascii "hello from user firmware\\n@mv stage firmware\\n@mv stage decompressor\\n@mv stage kernel\\n@mv done\\n"
      .byte 0`);
    const run = bootGuest(parseBootOptions({ platform: 'tdx', memory: '256M', firmware }));
    expect(run.result.outcome).toBe('done');
    expect(run.result.console).toMatch(/hello from user firmware/);
    expect(run.result.acceptedBytes.total).toBe(0);
    run.platform.machine.close();
  });

  it('rejects a firmware file that is not a loadable ELF with a clear error', () => {
    const junk = join(dir, 'junk.elf');
    writeFileSync(junk, Buffer.from('not an elf at all, just text'));
    expect(() => bootGuest(parseBootOptions({ platform: 'tdx', memory: '256M', firmware: junk }))).toThrow(GuestImageError);
    expect(() => bootGuest(parseBootOptions({ platform: 'tdx', memory: '256M', firmware: join(dir, 'missing.elf') }))).toThrow(/does not exist/);
  });

  // The decompressor's two silent stops (no platform known yet, so nothing to report through):
  // boot params that are not there, and boot params naming no platform.
  it.each([
    ['without boot params', 'mov rdi, 0x1234'],
    ['with boot params naming no platform', `mov dword ptr [0x${ABI.MV_BOOT_PARAMS_GPA.toString(16)}], 0x${ABI.MV_BOOT_PARAMS_MAGIC.toString(16)}
      mov word ptr [0x${(ABI.MV_BOOT_PARAMS_GPA + 4n).toString(16)}], 1
      mov dword ptr [0x${(ABI.MV_BOOT_PARAMS_GPA + 8n).toString(16)}], 7
      mov rdi, 0x${ABI.MV_BOOT_PARAMS_GPA.toString(16)}`],
  ])('a firmware that enters the decompressor %s stops it before it prints anything', (name, setup) => {
    const entry = loadBootImages(parseBootOptions({ platform: 'tdx', memory: '256M' })).guestImage.entry;
    const firmware = build(name.replace(/ /g, '-'), `${setup}\nmov rax, 0x${entry.toString(16)}\njmp rax`);
    const run = bootGuest(parseBootOptions({ platform: 'tdx', memory: '256M', firmware }));
    // Not knowing it is in a TD, it halts with a plain HLT, which raises #VE (tdx_td_dispatcher.c):
    // the TD shuts down, or, with the decompressor's IDT loaded, stops through its fatal path.
    expect(['terminated', 'guest-fatal']).toContain(run.result.outcome);
    // It stopped inside the guest image (the decompressor), having printed nothing.
    const rip = run.platform.machine.vcpu.regs.rip;
    expect(rip >= ABI.MV_GUEST_IMAGE_GPA && rip < ABI.MV_GUEST_IMAGE_LIMIT).toBe(true);
    expect(run.result.console).toBe('');
    run.platform.machine.close();
  });

  it('reports a firmware that halts without finishing as guest-fatal, not done', () => {
    const firmware = build('quiet', TDVMCALL_HLT);
    const run = bootGuest(parseBootOptions({ platform: 'tdx', memory: '256M', firmware }));
    expect(run.result.outcome).toBe('guest-fatal');
    expect(run.result.outcomeReason).toMatch(/without reporting done/);
    run.platform.machine.close();
  });
});
