// Issue 9 row 18: the untrusted VMM has no backdoor into private memory. It holds only a handle
// (TdxVmmHandle / SnpVmmHandle). On SNP, host writes to RMP-assigned pages are refused, as an
// RMP-protected write is (AMD APM Vol. 2 §15.36.10), and host reads of them return ciphertext
// (row 16); on TDX the host may use shared memory only. The guest itself keeps reading plaintext.
import { describe, expect, it } from 'vitest';
import { HostAccessRefused } from '../../src/platform/host-memory.js';
import { SnpPlatform } from '../../src/platform/snp/snp-cpu.js';
import type { SnpVmmHandle } from '../../src/platform/snp/vmm-handle.js';
import type { TdxVmmHandle } from '../../src/platform/tdx/vmm-handle.js';
import type { SnpVmmPolicy } from '../../src/vmm/snp/policy.js';
import { honestTdxPolicy, type TdxVmmPolicy, type VmmContext } from '../../src/vmm/tdx/honest-vmm.js';
import { runTd } from '../../src/vmm/tdx/run-td.js';
import { CODE_BASE } from '../helpers/guest-setup.js';
import { GHCB_GPA, msrProtocol, snpGuest } from '../helpers/snp-guest.js';
import { HALT, IRQ_VECTOR, SHARED_VA, TDCALL, tdGuest } from '../helpers/tdx-guest.js';

// Compiled by `npm run typecheck`, never called: each line must fail to compile. If one of them
// compiles, the handle grew a way around the trust boundary and typecheck fails.
export function handlesHaveNoBackdoor(tdx: TdxVmmHandle, snp: SnpVmmHandle, ctx: VmmContext): void {
  // @ts-expect-error the TDX VMM handle does not expose the machine (RAM, vCPU)
  void tdx.machine;
  // @ts-expect-error nor the TDX module's private state (SEPT, MRTD)
  void tdx.module;
  // @ts-expect-error the honest VMM's context carries only the handle
  void ctx.module;
  // @ts-expect-error the SNP VMM handle does not expose the machine
  void snp.machine;
  // @ts-expect-error nor the RMP itself (only RMPUPDATE/PSMASH and read-only entries)
  void snp.rmp;
  // @ts-expect-error the old unchecked writer on the SNP host interface is gone
  snp.writeU64(0n, 0n);
  // @ts-expect-error the host view of memory has no private-write escape
  snp.hostMemory.writePrivate(0n, new Uint8Array(1));
}

describe('SNP: guest memory as the host sees it', () => {
  const SECRET = 0x0123456789abcdefn;
  // The code page is launched (pre-validated, guest-owned). The guest reads a secret from it and
  // writes another value into it.
  const program = `
    mov rax, [rip + secret]
    mov rbx, 0x1122334455667788
    mov [rip + scratch], rbx
    hlt
  .align 8
  secret: .quad 0x${SECRET.toString(16)}
  scratch: .quad 0`;

  it('the guest reads plaintext; the host reads stable ciphertext of the same page and cannot write it', () => {
    const g = snpGuest(program);
    const host = g.platform.handle;
    const before = host.hostMemory.read(CODE_BASE, 4096);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.rax).toBe(SECRET);

    const plaintext = g.vm.memory.read(CODE_BASE, 4096);
    const seen = host.hostMemory.read(CODE_BASE, 4096);
    expect(Buffer.from(seen).equals(Buffer.from(plaintext))).toBe(false);
    expect(Buffer.from(seen).indexOf(Buffer.from('efcdab8967452301', 'hex'))).toBe(-1);
    // Stable: reading again gives the same bytes, and a sub-range is a slice of the page's.
    expect(Buffer.from(host.hostMemory.read(CODE_BASE, 4096)).equals(Buffer.from(seen))).toBe(true);
    expect([...host.hostMemory.read(CODE_BASE + 0x10n, 8)]).toEqual([...seen.subarray(0x10, 0x18)]);
    // The guest changed the page (scratch), so its ciphertext changed too.
    expect(Buffer.from(before).equals(Buffer.from(seen))).toBe(false);

    expect(() => host.hostMemory.writeU64(CODE_BASE + 0x40n, 0n)).toThrow(HostAccessRefused);
    expect(() => host.hostMemory.fill(CODE_BASE, 4096n, 0xcc)).toThrow(/RMP-protected/);
    expect(Buffer.from(g.vm.memory.read(CODE_BASE, 4096)).equals(Buffer.from(plaintext))).toBe(true);
  });

  it('the same plaintext at another page reads as different ciphertext (address tweak)', () => {
    const platform = SnpPlatform.create({ memoryBytes: 4n << 20n });
    const host = platform.handle;
    const page = new Uint8Array(4096).fill(0x5a);
    for (const gpa of [0x1000n, 0x2000n]) {
      host.rmpUpdate(gpa, { assigned: true, pageSize: '4k', immutable: true, gpa, asid: host.asid });
      expect(host.launchUpdatePage(gpa, 'NORMAL', page).rc).toBe(0);
    }
    expect(Buffer.from(host.hostMemory.read(0x1000n, 4096)).equals(Buffer.from(host.hostMemory.read(0x2000n, 4096)))).toBe(false);
    platform.machine.close();
  });

  it('hypervisor-owned (shared) pages read and write normally', () => {
    const g = snpGuest('mov rax, [0x30000]\nhlt');
    const host = g.platform.handle;
    host.hostMemory.writeU64(GHCB_GPA, 0xfeedn);
    expect(host.hostMemory.readU64(GHCB_GPA)).toBe(0xfeedn);
  });

  it('SNP_LAUNCH_UPDATE copies the source page into the guest and measures it like the in-place form', () => {
    const source = new Uint8Array(4096).map((_, i) => i & 0xff);
    const launch = (withSource: boolean) => {
      const platform = SnpPlatform.create({ memoryBytes: 4n << 20n });
      const host = platform.handle;
      // In place: the host writes the page while it still owns it, then assigns it.
      if (!withSource) host.hostMemory.write(0x1000n, source);
      host.rmpUpdate(0x1000n, { assigned: true, pageSize: '4k', immutable: true, gpa: 0x1000n, asid: host.asid });
      expect(host.launchUpdatePage(0x1000n, 'NORMAL', withSource ? source : undefined).rc).toBe(0);
      const inGuest = platform.machine.memory.read(0x1000n, 4096);
      const digest = host.launchFinish();
      platform.machine.close();
      return { inGuest, digest };
    };
    const copied = launch(true);
    expect([...copied.inGuest]).toEqual([...source]);
    expect(copied.digest).toBe(launch(false).digest);
  });

  it('a source page that is not 4 KiB is refused', () => {
    const platform = SnpPlatform.create({ memoryBytes: 4n << 20n });
    const host = platform.handle;
    host.rmpUpdate(0x1000n, { assigned: true, pageSize: '4k', immutable: true, gpa: 0x1000n, asid: host.asid });
    expect(host.launchUpdatePage(0x1000n, 'NORMAL', new Uint8Array(100)).result).toBe('FAIL_INPUT');
    platform.machine.close();
  });

  it('a VMM that writes private memory ends the run as a VMM error, and the page is untouched', () => {
    const g = snpGuest(`${msrProtocol(0x080n)}\nhlt`);
    const page = g.vm.memory.read(CODE_BASE, 4096);
    const writer: SnpVmmPolicy = {
      onNpf: (host, exit) => g.vmm.onNpf(host, exit),
      onHlt: () => g.vmm.onHlt(),
      onVmgexit(host) {
        host.hostMemory.writeU64(CODE_BASE, 0x90909090n);
        return 'resume';
      },
    };
    expect(g.run(writer)).toMatchObject({ outcome: 'vmm-error', reason: expect.stringMatching(/RMP-protected/) });
    expect([...g.vm.memory.read(CODE_BASE, 4096)]).toEqual([...page]);
  });

  // A VMM that answers HLT by resuming (a spurious wake) instead of blocking the vCPU.
  it.each([
    ['cli', 64, { outcome: 'vmm-error', reason: expect.stringMatching(/^no progress: the same exit 65 times in a row \(HLT with interrupts blocked at RIP 0x[0-9a-f]+\)$/) }],
    ['sti', 101, { outcome: 'done', reason: 'enough' }],
  ] as const)('HLT after %s, resumed again and again: no progress only with interrupts blocked', (flag, wakes, outcome) => {
    const g = snpGuest(`1: ${flag}\n hlt\n jmp 1b`);
    let n = 0;
    const waker: SnpVmmPolicy = {
      onNpf: (host, exit) => g.vmm.onNpf(host, exit),
      onVmgexit: (host, exit) => g.vmm.onVmgexit(host, exit),
      onHlt: () => (n++ < 100 ? 'resume' : { outcome: 'done', reason: 'enough' }),
    };
    expect(g.run(waker)).toEqual(outcome);
    expect(n).toBe(wakes);
  });

  it('the VMM can inject any vector, #VC included (no restricted injection)', () => {
    const g = snpGuest(`${msrProtocol(0x080n)}\nhlt`);
    const injector: SnpVmmPolicy = {
      onNpf: (host, exit) => g.vmm.onNpf(host, exit),
      onHlt: () => g.vmm.onHlt(),
      onVmgexit(host, exit) {
        const answer = g.vmm.onVmgexit(host, exit);
        host.inject(29, 0x404n);
        return answer;
      },
    };
    expect(g.run(injector)).toMatchObject({ outcome: 'done' });
    // The default #VC handler: R13 = vector, R15 = error code.
    expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.r15]).toEqual([29n, 0x404n]);
    expect(() => g.platform.handle.inject(256)).toThrow(RangeError);
  });
});

describe('TDX: the VMM uses shared memory only', () => {
  const SHARED_PAGE = 0x400000n;

  it('host accesses to TD-private pages are refused; shared pages work both ways', () => {
    // The guest reads what the host put in a shared page and writes an answer back.
    const td = tdGuest(`mov rbx, 0x${(SHARED_VA + SHARED_PAGE).toString(16)}\n mov rsi, [rbx]\n mov rax, 0x55aa\n mov [rbx + 8], rax\n ${HALT}`);
    const host = td.platform.handle;
    // [0, 2 MiB) was PAGE.ADDed: private.
    expect(() => host.hostMemory.readU64(CODE_BASE)).toThrow(HostAccessRefused);
    expect(() => host.hostMemory.writeU64(CODE_BASE, 0n)).toThrow(/TD-private/);
    host.setShared(SHARED_PAGE, 0x1000n, true);
    host.hostMemory.writeU64(SHARED_PAGE, 0x1234n);
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.rsi).toBe(0x1234n);
    expect(host.hostMemory.readU64(SHARED_PAGE + 8n)).toBe(0x55aan);
  });

  it('a page the VMM AUGs becomes private: the host loses access to it', () => {
    const td = tdGuest(HALT);
    const host = td.platform.handle;
    host.hostMemory.writeU64(SHARED_PAGE, 1n);
    host.memSeptAdd(0x400000n | 1n);
    expect(host.memPageAug(SHARED_PAGE).status).toBe(0n);
    expect(() => host.hostMemory.readU64(SHARED_PAGE)).toThrow(HostAccessRefused);
    expect(td.platform.pageState(SHARED_PAGE)).toMatchObject({ visibility: 'private', pending: true, accepted: false, raw: 'PENDING' });
  });

  it('only interrupts (vectors 32..255) can be injected, as posted interrupts', () => {
    const policy: TdxVmmPolicy = {
      ...honestTdxPolicy,
      getTdVmCallInfo(ctx, call) {
        ctx.host.injectInterrupt(IRQ_VECTOR);
        return honestTdxPolicy.getTdVmCallInfo(ctx, call);
      },
    };
    // R14 counts interrupts (the helper's IRQ handler); the TDVMCALL exposes only R10–R12.
    const td = tdGuest(`xor r14, r14\n sti\n mov rax, 0\n mov rcx, 0x1c00\n xor r10, r10\n mov r11, 0x10000\n xor r12, r12\n ${TDCALL}\n ${HALT}`, { policy });
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r14).toBe(1n);
    expect(() => td.platform.handle.injectInterrupt(13)).toThrow(/32\.\.255/);
  });
});
