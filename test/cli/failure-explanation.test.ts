// A run that does not end `done` explains itself: the first fault of the chain that ended it, the
// guest's stage, and a register dump (issue 13). Tried through the CLI with a tiny user firmware
// that reads an address nobody accepted, as a new user's first firmware might.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { capture } from '../helpers/captured-io.js';

/**
 * A TDX firmware ELF at the firmware load address (0x301000), reached from the reset vector at
 * 0xFFFFFFF0: from the TD entry state (32-bit, paging off, no IDT) it reads GPA 0x12345678, which
 * is PENDING in the Secure EPT, so the TDX module injects #VE (TDX module spec, "EPT violation on
 * a pending page"); with no IDT the #VE escalates to #DF and a triple fault.
 */
function unacceptedReadFirmware(dir: string): string {
  const src = join(dir, 'fw.S');
  writeFileSync(src, [
    '.intel_syntax noprefix', '.code32',
    '.section .reset, "ax"', '.globl reset', 'reset:', '  mov eax, offset _start', '  jmp eax',
    '.text', '.globl _start', '_start:',
    '  mov ebx, 0xabcdef', '  mov eax, [0x12345678]', '  hlt', '',
  ].join('\n'));
  execFileSync('as', ['--64', '-o', join(dir, 'fw.o'), src]);
  const elf = join(dir, 'fw.elf');
  execFileSync('ld', ['-m', 'elf_x86_64', '-nostdlib', '-N', '--no-warn-rwx-segments', '-e', 'reset', '-Ttext=0x301000', '--section-start=.reset=0xfffffff0', '-o', elf, join(dir, 'fw.o')]);
  return elf;
}

describe('explaining a run that does not end done', () => {
  let firmware = '';
  beforeAll(() => {
    firmware = unacceptedReadFirmware(mkdtempSync(join(tmpdir(), 'mv-failure-')));
  });

  it('--json names the #VE for the unaccepted address as the first cause, not the triple fault', async () => {
    const io = capture();
    expect(await main(['boot', '--json', '--memory', '512M', '--firmware', firmware], io)).toBe(1);
    const r = JSON.parse(io.stdout[0]!);
    expect(r.outcome).toBe('terminated');
    expect(r.outcomeReason).toMatch(/triple fault/);
    const [first, ...rest] = r.failure.causeChain;
    // The EPT violation reports the 4 KiB page's GPA; RIP is the faulting `mov` (5 bytes after `mov ebx, imm32`).
    expect(first).toMatchObject({ source: 'hw', type: 've-injected', gpa: '0x12345000', rip: '0x301005' });
    expect(rest.map((e: { type: string; vector: number }) => [e.type, e.vector])).toEqual([['injection-failed', 20], ['injection-failed', 8]]);
    expect(r.failure.stage).toBeNull();
    expect(r.failure.registers).toMatchObject({ rip: '0x301005', rbx: '0xabcdef', efer: '0x901' });
    // CR0: PE and NE set, PG clear: the TD entry state (TDX module td_vmcs_init.c).
    expect(BigInt(r.failure.registers.cr0) & 0x80000001n).toBe(1n);
  });

  it('the human output prints the chain and a QEMU-style register dump', async () => {
    const io = capture();
    expect(await main(['boot', '--memory', '512M', '--firmware', firmware], io)).toBe(1);
    const text = io.stdout.join('\n');
    expect(text).toMatch(/-> #\d+ hw ve-injected .*gpa 0x12345000 rip 0x301005/);
    expect(text).toMatch(/RIP=0000000000301005 RFL=/);
    expect(text).toMatch(/RBX=0000000000abcdef/);
    expect(text).toMatch(/CR0=\S+ CR2=\S+ CR3=\S+ CR4=\S+/);
  });

  it('a run out of budget has no fault chain but still shows where the guest was', async () => {
    const io = capture();
    expect(await main(['boot', '--json', '--memory', '256M', '--max-instructions', '800000'], io)).toBe(1); // the kernel runs from ~0.5M to ~1.1M
    const r = JSON.parse(io.stdout[0]!);
    expect(r.outcome).toBe('budget');
    expect(r.failure.causeChain).toEqual([]);
    expect(r.failure.stage).toBe('kernel');
    expect(r.failure.lastConsoleLine).toMatch(/@mv stage kernel/);
    expect(Object.keys(r.failure.registers)).toEqual(expect.arrayContaining(['rax', 'rip', 'rflags', 'cr0', 'cr2', 'cr3', 'cr4', 'efer', 'cs', 'ss']));
  });

  it('a run that ends done carries no failure object', async () => {
    const io = capture();
    expect(await main(['boot', '--json', '--memory', '256M', '--workload', '4M'], io)).toBe(0);
    expect(JSON.parse(io.stdout[0]!)).not.toHaveProperty('failure');
  });
});
