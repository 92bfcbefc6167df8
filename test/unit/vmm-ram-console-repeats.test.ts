// Small parts of the untrusted VMM layer both platforms share: where the VMM has RAM (its
// memslots), the console's lines, and which SNP exits count as the same fault again.
import { describe, expect, it } from 'vitest';
import { Console } from '../../src/vmm/console.js';
import { inGuestRam } from '../../src/vmm/guest-ram.js';
import { SnpVmm, runSnp, snpVm } from '../../src/vmm/snp/run-snp.js';
import type { SnpVmExit } from '../../src/platform/snp/snp-cpu.js';
import type { SnpVmmHandle } from '../../src/platform/snp/vmm-handle.js';
import { HonestSnpVmm } from '../../src/vmm/snp/honest-vmm.js';
import type { SnpVmmPolicy } from '../../src/vmm/snp/policy.js';
import { snpGuest } from '../helpers/snp-guest.js';

describe('inGuestRam: [gpa, gpa + size) inside one RAM range [start, end)', () => {
  const ram = [{ start: 0x1000n, end: 0x3000n }, { start: 0x5000n, end: 0x6000n }];
  it.each([
    [0x1000n, 0x2000n, true], // exactly the first range
    [0x0n, 0x1000n, false], // just below it
    [0x2000n, 0x1000n, true], // its last page
    [0x2000n, 0x2000n, false], // running past its end
    [0x2fffn, 1n, true], // its last byte
    [0x3000n, 1n, false], // the first byte after it
    [0x2000n, 0x4000n, false], // across the hole into the next range
  ])('%s + %s → %s', (gpa, size, inside) => {
    expect(inGuestRam(ram, gpa, size)).toBe(inside);
  });
});

describe('the VMM console', () => {
  it('echoes each line when its newline arrives, keeps bytes as bytes, and restores the line in progress', () => {
    const echoed: string[] = [];
    const c = new Console((line) => echoed.push(line));
    c.writeBytes(Buffer.from('one\ntw'));
    expect(echoed).toEqual(['one\n']);
    const saved = c.saveState();
    c.write(0x141); // a wider value is its low byte
    expect(c.text).toBe('one\ntwA');
    c.loadState(saved);
    c.writeBytes(Buffer.from('o\n'));
    expect(echoed).toEqual(['one\n', 'two\n']);
    expect(c.text).toBe('one\ntwo\n');
    c.flush();
    expect(echoed).toHaveLength(2); // nothing left to show
    c.write(0x78);
    c.flush();
    c.flush();
    expect(echoed).toEqual(['one\n', 'two\n', 'x']); // a flushed line is shown once
  });

  it('keeps every byte across growth and restores, as a fuzz executor restores it again and again', () => {
    const c = new Console();
    const head = Buffer.from('head\n');
    c.writeBytes(head);
    const saved = c.saveState();
    // Each "execution" prints more than the last; restored, only the head is left.
    for (let run = 1; run <= 4; run++) {
      const body = Buffer.alloc(300 * run, 0x61 + run);
      c.writeBytes(body);
      for (let i = 0; i < 70; i++) c.write(0x30 + (i % 10));
      expect(c.text).toBe(`head\n${body.toString('latin1')}${'0123456789'.repeat(7)}`);
      c.loadState(saved);
      expect(c.text).toBe('head\n');
    }
    // A state saved with more bytes than the console holds reads zeros for the missing ones.
    const other = new Console();
    other.writeBytes(Buffer.from('abcdefgh'));
    const longer = other.saveState();
    const fresh = new Console();
    fresh.write(0x7a);
    fresh.loadState(longer);
    expect(fresh.text).toBe('z\0\0\0\0\0\0\0');
  });
});

describe('the VMM console: bytes and states', () => {
  it('keeps bytes as bytes: the text is one character per byte (latin1), whatever the byte', () => {
    // The console protocol (src/boot/console-protocol.ts) reads lines of bytes; a byte the guest
    // wrote is never merged with the next into one character or replaced.
    const c = new Console();
    c.writeBytes(Uint8Array.from([0xc3, 0xa9, 0xff]));
    c.write(0xe9);
    expect(c.text).toBe('\u00c3\u00a9\u00ff\u00e9');
    expect(c.text).toHaveLength(4);
  });

  it('keeps every byte written one at a time past its first buffer', () => {
    const c = new Console();
    for (let i = 0; i < 1000; i++) c.write(0x61 + (i % 26));
    expect(c.text).toBe(Array.from({ length: 1000 }, (_, i) => String.fromCharCode(0x61 + (i % 26))).join(''));
  });

  it('a state with more bytes than the console holds reads zeros for the rest, also past its buffer and over bytes a restore dropped', () => {
    const big = new Console();
    big.writeBytes(Buffer.alloc(1000, 0x62));
    const thousand = big.saveState();
    const fresh = new Console();
    fresh.loadState(thousand);
    expect(fresh.text).toBe('\0'.repeat(1000));
    // Bytes past a restored count were dropped: a longer state does not bring them back.
    const c = new Console();
    c.writeBytes(Buffer.from('a'));
    const one = c.saveState();
    c.writeBytes(Buffer.from('bc'));
    const three = c.saveState();
    c.loadState(one);
    c.loadState(three);
    expect(c.text).toBe('a\0\0');
  });
});

describe('SNP: the same fault again (the run loop\'s no-progress guard)', () => {
  const vmm = new SnpVmm({} as SnpVmmHandle, new HonestSnpVmm());
  const npf = (rip: bigint, gpa: bigint, reason = 'rmp'): SnpVmExit => ({ kind: 'npf', rip, gpa, access: 'write', errorCode: 0n, reason });
  const hlt = (rip: bigint, interruptsBlocked: boolean): SnpVmExit => ({ kind: 'hlt', rip, interruptsBlocked });
  it('an NPF repeats only with the same RIP, GPA and reason', () => {
    expect(vmm.sameFault(npf(1n, 0x1000n), npf(1n, 0x1000n))).toBe(true);
    expect(vmm.sameFault(npf(1n, 0x1000n), npf(2n, 0x1000n))).toBe(false);
    expect(vmm.sameFault(npf(1n, 0x1000n), npf(1n, 0x2000n))).toBe(false);
    expect(vmm.sameFault(npf(1n, 0x1000n, 'rmp'), npf(1n, 0x1000n, 'size'))).toBe(false);
  });
  it('a HLT repeats only with interrupts blocked both times (an interrupt could end an open one)', () => {
    expect(vmm.sameFault(hlt(1n, true), hlt(1n, true))).toBe(true);
    expect(vmm.sameFault(hlt(1n, false), hlt(1n, true))).toBe(false);
    expect(vmm.sameFault(hlt(1n, true), hlt(1n, false))).toBe(false);
    expect(vmm.sameFault(hlt(1n, true), hlt(2n, true))).toBe(false);  // another HLT: the guest moved on
  });
  it('names the fault it gives up on with its RIP, GPA and reason', () => {
    expect(vmm.describeFault(npf(0x1234n, 0x5000n, 'size'))).toBe('NPF at RIP 0x1234 GPA 0x5000 (size)');
    expect(vmm.describeFault(hlt(0x10n, true))).toBe('HLT with interrupts blocked at RIP 0x10');
  });
});

describe('SNP: the VMM in a VM', () => {
  it('the VM\'s console is the policy\'s own (what the guest printed is in the VM\'s snapshots)', () => {
    const g = snpGuest('hlt');
    expect(snpVm(g.platform, g.vmm).console).toBe(g.vmm.console);
    g.vm.close();
  });

  it('runSnp takes its limits from its options: the repeat limit, then the exit guard', () => {
    // The guest reads a page the RMP gives the hypervisor (nothing launched there): an NPF; a VMM
    // that resumes without changing anything gets the same NPF again and again.
    const g = snpGuest('mov rax, [0x400000]\n hlt');
    let npfs = 0;
    const resumer: SnpVmmPolicy = { onNpf: () => { npfs++; return 'resume'; }, onVmgexit: (host, exit) => g.vmm.onVmgexit(host, exit), onHlt: () => g.vmm.onHlt() };
    expect(runSnp(g.platform, resumer, { npfRepeatLimit: 3 })).toEqual({ outcome: 'vmm-error', reason: expect.stringMatching(/^no progress: the same exit 4 times in a row \(NPF at RIP 0x[0-9a-f]+ GPA 0x400000 /) });
    expect(npfs).toBe(3);
    // A new run of the same guest: 5 exits handled, and the 6th is past the guard.
    expect(runSnp(g.platform, resumer, { maxExits: 5 })).toEqual({ outcome: 'vmm-error', reason: 'more than 5 exits' });
    expect(npfs).toBe(3 + 5);
    g.vm.close();
  });

  it('runSnp gives up after 1,000,000 exits by default: a guard against a guest and VMM that never stop', () => {
    const g = snpGuest('1: sti\n hlt\n jmp 1b');  // interrupts open: a HLT an interrupt could end is no repeat
    let wakes = 0;
    const waker: SnpVmmPolicy = { onNpf: (host, exit) => g.vmm.onNpf(host, exit), onVmgexit: (host, exit) => g.vmm.onVmgexit(host, exit), onHlt: () => { wakes++; return 'resume'; } };
    expect(runSnp(g.platform, waker)).toEqual({ outcome: 'vmm-error', reason: 'more than 1000000 exits' });
    expect(wakes).toBe(1_000_000);
    g.vm.close();
  });

  it('a restore gives a policy with state of its own the state it had when saved', () => {
    let count = 0;
    const policy: SnpVmmPolicy = { onNpf: () => 'resume', onVmgexit: () => 'resume', onHlt: () => 'resume', saveState: () => count, loadState: (state) => { count = state as number; } };
    const vmm = new SnpVmm({} as SnpVmmHandle, policy);
    count = 5;
    const saved = vmm.saveState();
    count = 9;
    vmm.loadState(saved);
    expect(count).toBe(5);
  });
});

