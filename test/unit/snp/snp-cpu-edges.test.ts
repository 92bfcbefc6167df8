// SnpPlatform paths the guest suites rarely take, driven as single exits and host operations:
// intercepted WRMSRs, accesses outside RAM, RMPADJUST of a 2 MiB page, pages of ASID 0, and a
// launch of nothing. Expected values come from the AMD APM, the GHCB spec and KVM, cited per test.
import { describe, expect, it } from 'vitest';
import { SnpPlatform, VC_VECTOR } from '../../../src/platform/snp/snp-cpu.js';
import { PAGE_2M, PAGE_4K } from '../../../src/platform/snp/rmp.js';
import type { VmExit } from '../../../src/cpu/exits.js';

const MEMORY = 16n << 20n;
const REGION = 0x400000n; // 2 MiB aligned
const RIP = 0x1000n;
const PAGE_4K_N = Number(PAGE_4K);

function platform(): SnpPlatform {
  return SnpPlatform.create({ memoryBytes: MEMORY, countInstructions: false });
}

/** RMPADJUST's RDX: target VMPL in [7:0], permission mask in [15:8] (APM Vol. 3 RMPADJUST). */
const rmpadjustRdx = (vmpl: number, perms: number) => BigInt(vmpl | (perms << 8));

function rmpadjust(p: SnpPlatform, gva: bigint, size: '4k' | '2m', rdx: bigint): void {
  const regs = p.machine.vcpu.regs;
  regs.rip = RIP;
  regs.rax = gva; regs.rcx = size === '2m' ? 1n : 0n; regs.rdx = rdx;
  p.handleExit({ kind: 'rmpadjust', rip: RIP, length: 4, codeBits: 64, cs: 0x8 });
}

describe('WRMSR in an SNP guest', () => {
  // An SEV-ES/SNP guest's intercepted MSR access raises #VC with the exit code as error code:
  // SVM_EXIT_MSR 0x7C (GHCB spec §4.1 "MSR_PROT" NAE event; Linux vc_handle_msr), RIP left at the
  // WRMSR so the handler can emulate it and step over it.
  it('to an intercepted MSR (IA32_APIC_BASE) raises #VC with error code 0x7C and does not complete', () => {
    const p = platform();
    const regs = p.machine.vcpu.regs;
    regs.rip = RIP;
    const ghcbBefore = p.ghcbMsr;
    p.handleExit({ kind: 'wrmsr', rip: RIP, length: 2, msr: 0x1b, value: 0xfee00900n });
    expect(p.trace.ofType('inject-vc').at(-1)).toMatchObject({ vector: VC_VECTOR, errorCode: 0x7cn, rip: RIP });
    expect(p.trace.ofType('wrmsr')).toHaveLength(0);
    expect(p.ghcbMsr).toBe(ghcbBefore);
    p.machine.close();
  });

  // SEV_STATUS (MSR C001_0131) is read-only (APM Vol. 2 §15.34.10 "SEV_STATUS MSR"); a write is
  // the architectural #GP(0) of a WRMSR to a read-only MSR, not a #VC the guest could emulate.
  it('to SEV_STATUS is #GP(0), no #VC, and SEV_STATUS still reads SEV|SEV-ES|SNP (0x7)', () => {
    const p = platform();
    const regs = p.machine.vcpu.regs;
    regs.rip = RIP;
    p.handleExit({ kind: 'wrmsr', rip: RIP, length: 2, msr: 0xc0010131, value: 0n });
    expect(p.trace.ofType('inject').at(-1)).toMatchObject({ vector: 13, errorCode: 0n });
    expect(p.trace.ofType('inject-vc')).toHaveLength(0);
    regs.rip = RIP;
    p.handleExit({ kind: 'rdmsr', rip: RIP, length: 2, msr: 0xc0010131 });
    expect([regs.rax, regs.rdx]).toEqual([0x7n, 0n]);
    expect(regs.rip).toBe(RIP + 2n);
    p.machine.close();
  });
});

describe('a guest access outside its RAM', () => {
  it('ends the run as a fault naming the GPA and RIP; no NPF goes to the VMM', () => {
    const p = platform();
    const gpa = MEMORY + 0x2000n;
    const exit: VmExit = {
      kind: 'gate-fault', rip: 0x301005n, gpa, gva: gpa, access: 'read', space: 'private', pageWalk: false,
      outsideRam: true, exactAddress: true, ciphertext: false,
    };
    const step = p.handleExit(exit);
    expect(step).toEqual({ kind: 'outcome', outcome: { outcome: 'fault', reason: 'access to 0x1002000 outside guest RAM at rip 0x301005' } });
    expect(p.trace.ofType('npf')).toHaveLength(0);
    p.machine.close();
  });
});

describe('RMPADJUST of a 2 MiB page', () => {
  // A 2 MiB RMPADJUST adjusts the one 2 MiB RMP entry, so every 4 KiB page of the region gets the
  // new VMPL permissions (APM Vol. 2 §15.36.7; §15.36.11: the request size must match the RMP
  // entry and the nested page size). EAX = 0 on success.
  it('on a validated 2 MiB entry under a 2 MiB nested mapping: EAX 0, the whole region gets VMPL1\'s permissions', () => {
    const p = platform();
    expect(p.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: REGION, asid: p.asid }).rc).toBe(0);
    p.setNptPageSize(REGION, '2m');
    p.rmp.setValidated(REGION, true);
    rmpadjust(p, REGION, '2m', rmpadjustRdx(1, 0x3));
    expect(p.machine.vcpu.regs.rax).toBe(0n);
    for (const page of [REGION, REGION + PAGE_4K, REGION + PAGE_2M - PAGE_4K]) {
      expect(p.rmp.lookup(page)).toMatchObject({ pageSize: '2m', validated: true, vmplPerms: [0x1f, 0x3, 0, 0] });
    }
    expect(p.trace.ofType('rmpadjust').at(-1)).toMatchObject({ size: '2m', targetVmpl: 1, perms: 3, gpa: REGION, rc: 0 });
    p.machine.close();
  });

  // FAIL_SIZEMISMATCH is 6 (Linux arch/x86/include/asm/sev.h; MS __rmpadjust docs): a 2 MiB
  // request where the RMP or the nested page table maps 4 KiB; nothing changes.
  it('over 4 KiB RMP entries, or under a 4 KiB nested mapping, is FAIL_SIZEMISMATCH (6) and changes nothing', () => {
    const p = platform();
    for (let k = 0n; k < 512n; k++) {
      const gpa = REGION + k * PAGE_4K;
      p.rmpUpdate(gpa, { assigned: true, pageSize: '4k', gpa, asid: p.asid });
      p.rmp.setValidated(gpa, true);
    }
    rmpadjust(p, REGION, '2m', rmpadjustRdx(1, 0x3));
    expect(p.machine.vcpu.regs.rax).toBe(6n);
    expect(p.rmp.lookup(REGION).vmplPerms).toEqual([0x1f, 0, 0, 0]);

    const q = platform();
    const big = REGION + PAGE_2M;
    q.rmpUpdate(big, { assigned: true, pageSize: '2m', gpa: big, asid: q.asid });
    q.rmp.setValidated(big, true);  // the nested mapping stays 4 KiB
    rmpadjust(q, big, '2m', rmpadjustRdx(1, 0x3));
    expect(q.machine.vcpu.regs.rax).toBe(6n);
    expect(q.rmp.lookup(big).vmplPerms).toEqual([0x1f, 0, 0, 0]);
    p.machine.close();
    q.machine.close();
  });

  it('a 2 MiB request at a GVA that is not 2 MiB aligned is FAIL_INPUT (1) (APM RMPADJUST: RAX aligned to the page size)', () => {
    const p = platform();
    p.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: REGION, asid: p.asid });
    p.setNptPageSize(REGION, '2m');
    p.rmp.setValidated(REGION, true);
    rmpadjust(p, REGION + PAGE_4K, '2m', rmpadjustRdx(1, 0x3));
    expect(p.machine.vcpu.regs.rax).toBe(1n);
    expect(p.rmp.lookup(REGION).vmplPerms).toEqual([0x1f, 0, 0, 0]);
    p.machine.close();
  });
});

describe('host writes to assigned pages (APM Vol. 2 §15.36.10: a hypervisor write to an assigned page is an RMP violation)', () => {
  it('are refused, naming the owner: the firmware for ASID 0, the ASID otherwise; nothing is written', () => {
    const p = platform();
    p.rmpUpdate(REGION, { assigned: true, pageSize: '4k', gpa: REGION, asid: 0 });
    p.rmpUpdate(REGION + PAGE_4K, { assigned: true, pageSize: '4k', gpa: REGION + PAGE_4K, asid: 7 });
    const host = p.handle.hostMemory;
    expect(() => host.write(REGION, Buffer.from('x'))).toThrow('RMP-protected (firmware page)');
    expect(() => host.write(REGION + PAGE_4K, Buffer.from('x'))).toThrow('RMP-protected (assigned to ASID 7)');
    expect(p.machine.memory.read(REGION, 1)[0]).toBe(0);
    expect(p.machine.memory.read(REGION + PAGE_4K, 1)[0]).toBe(0);
    p.machine.close();
  });
});

describe('pageState of an ASID 0 page', () => {
  // ASID 0 owns firmware and hypervisor-private pages that are assigned in the RMP (APM Vol. 2
  // §15.36.3, tdx-snp-architecture.md B3): private to the guest's view, never its accepted memory.
  it('is private, neither accepted nor pending, raw "firmware"', () => {
    const p = platform();
    expect(p.rmpUpdate(REGION, { assigned: true, pageSize: '4k', gpa: REGION, asid: 0 }).rc).toBe(0);
    expect(p.pageState(REGION + 0x80n)).toEqual({
      gpa: REGION, visibility: 'private', accepted: false, pending: false, pageSize: '4k', raw: 'firmware',
    });
    p.rmp.setValidated(REGION, true);
    expect(p.pageState(REGION)).toMatchObject({ accepted: false, pending: false, raw: 'firmware-validated' });
    p.machine.close();
  });
});

describe('a launch of no pages', () => {
  // KVM_SEV_SNP_LAUNCH_UPDATE refuses a zero length (KVM sev.c snp_launch_update: !params.len ->
  // -EINVAL) before any RMPUPDATE: the model answers FAIL_INPUT at the first step, nothing measured.
  it('launchRange of 0 bytes is FAIL_INPUT from the RMPUPDATE step, the RMP and digest untouched', () => {
    const p = platform();
    const before = p.launch.saveState();
    const r = p.launchRange(REGION, 0n, 'NORMAL');
    expect(r).toMatchObject({ rc: 1, result: 'FAIL_INPUT', op: 'rmpupdate', at: REGION });
    expect(p.rmp.lookup(REGION).assigned).toBe(false);
    expect(p.launch.saveState()).toEqual(before);
    expect(p.trace.ofType('rmpupdate')).toHaveLength(0);
    p.machine.close();
  });

  it('launchUpdateRange names the page and the step that failed', () => {
    const p = platform();
    p.launchFinish();
    // After SNP_LAUNCH_FINISH the RMPUPDATE still succeeds, the firmware's LAUNCH_UPDATE does not.
    expect(() => p.launchUpdateRange(REGION + 0x10n, 0x100n)).toThrow('SNP_LAUNCH_UPDATE of 0x400000 failed: INVALID_GUEST_STATE');
    // A page beyond the RMP's reach fails the RMPUPDATE itself.
    expect(() => p.launchUpdateRange(1n << 50n, 0x1000n)).toThrow(`launch RMPUPDATE of 0x${(1n << 50n).toString(16)} failed: FAIL_INPUT`);
    p.machine.close();
  });
});

describe('launchUpdateRange of bytes that do not fill whole pages', () => {
  // KVM_SEV_SNP_LAUNCH_UPDATE takes whole pages: a GFN and a length KVM refuses unless
  // PAGE_ALIGNED (KVM sev.c snp_launch_update). A VMM launching bytes that straddle a page
  // boundary launches both pages they touch.
  it('launches every page the bytes touch: 32 bytes across a page boundary are two pages', () => {
    const p = platform();
    p.launchUpdateRange(REGION + PAGE_4K - 0x10n, 0x20n);
    expect([REGION, REGION + PAGE_4K, REGION + 2n * PAGE_4K].map((gpa) => p.rmp.lookup(gpa).validated)).toEqual([true, true, false]);
    p.machine.close();
  });
});

describe('a launch range the fast path must not take', () => {
  // RMPUPDATE of a 4 KiB entry inside an assigned 2 MiB entry is FAIL_OVERLAP (4) (Linux
  // arch/x86/include/asm/sev.h RMPUPDATE_FAIL_OVERLAP; rmp-legality.ts): launching a page there
  // fails at its RMPUPDATE and leaves the 2 MiB entry as it was.
  it('over a region the RMP holds as one 2 MiB entry: FAIL_OVERLAP at the RMPUPDATE, the 2 MiB entry kept', () => {
    const p = platform();
    p.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: REGION, asid: p.asid });
    expect(p.launchRange(REGION + PAGE_4K, PAGE_4K, 'NORMAL')).toMatchObject({ rc: 4, result: 'FAIL_OVERLAP', op: 'rmpupdate', at: REGION + PAGE_4K });
    expect(p.rmp.lookup(REGION + PAGE_4K)).toMatchObject({ pageSize: '2m', immutable: false, validated: false });
    expect(p.trace.ofType('launch-update')).toHaveLength(0);
    p.machine.close();
  });

  // SNP_LAUNCH_UPDATE's VMPL permission masks are 5-bit masks (APM Vol. 2 §15.36.7 b0..b4): a value
  // that is not one is bad input, however the range is launched.
  it('with a VMPL permission that is not an integer mask: FAIL_INPUT at the LAUNCH_UPDATE, nothing validated', () => {
    const p = platform();
    expect(p.launchRange(REGION, 2n * PAGE_4K, 'NORMAL', undefined, [1.5, 0, 0])).toMatchObject({ rc: 1, result: 'FAIL_INPUT', op: 'launch-update', at: REGION });
    expect(p.rmp.lookup(REGION).validated).toBe(false);
    p.machine.close();
  });

  // The same masks' largest value, every permission (Read, Write, Execute-User,
  // Execute-Supervisor, Supervisor Shadow Stack), is good input, on either path.
  it('with every VMPL permission (0x1F) for VMPL1-3: launched, each lower VMPL holding all of them', () => {
    const p = platform();
    expect(p.launchRange(REGION, 2n * PAGE_4K, 'UNMEASURED', undefined, [0x1f, 0x1f, 0x1f])).toMatchObject({ rc: 0, op: 'launch-update' });
    // A page the host assigned first goes page by page (launchUpdatePage's own checks).
    const third = REGION + 2n * PAGE_4K;
    p.rmpUpdate(third, { assigned: true, pageSize: '4k', immutable: true, gpa: third, asid: p.asid });
    expect(p.launchUpdatePage(third, 'NORMAL', undefined, [0x1f, 0x1f, 0x1f])).toMatchObject({ rc: 0, result: 'SUCCESS' });
    for (const gpa of [REGION, REGION + PAGE_4K, third]) expect(p.rmp.lookup(gpa)).toMatchObject({ validated: true, vmplPerms: [0x1f, 0x1f, 0x1f, 0x1f] });
    expect(p.launchRange(REGION + 3n * PAGE_4K, PAGE_4K, 'NORMAL', undefined, [0x20, 0, 0])).toMatchObject({ rc: 1, result: 'FAIL_INPUT' });
    p.machine.close();
  });

  // RMPUPDATE takes a page-aligned system-physical address; any other is FAIL_INPUT (rmp-legality.ts
  // 'misaligned'; Linux asm/sev.h RMPUPDATE_FAIL_INPUT). A range that starts inside a page fails at
  // its first RMPUPDATE: nothing is assigned, measured or validated.
  it('starting inside a page: FAIL_INPUT at the first RMPUPDATE, nothing assigned or measured', () => {
    const p = platform();
    const before = p.launch.saveState();
    expect(p.launchRange(REGION + 0x10n, PAGE_4K, 'ZERO')).toMatchObject({ rc: 1, result: 'FAIL_INPUT', op: 'rmpupdate', at: REGION + 0x10n });
    expect([REGION, REGION + PAGE_4K].map((gpa) => p.rmp.lookup(gpa).assigned)).toEqual([false, false]);
    expect(p.launch.saveState()).toEqual(before);
    p.machine.close();
  });

  // KVM's sev_gmem_post_populate makes each page pre-guest with RMPUPDATE and stops at the first
  // that fails; RMPUPDATE of an address the RMP does not cover fails (FAIL_INPUT). A range that
  // runs past the end of RAM launches the pages before it and stops at the first page beyond.
  it('running past the end of RAM: the pages inside launched, FAIL_INPUT at the RMPUPDATE of the first page beyond', () => {
    const p = platform();
    const first = MEMORY - 2n * PAGE_4K;
    expect(p.launchRange(first, 4n * PAGE_4K, 'ZERO')).toMatchObject({ rc: 1, result: 'FAIL_INPUT', op: 'rmpupdate', at: MEMORY });
    expect([first, first + PAGE_4K].map((gpa) => p.rmp.lookup(gpa).validated)).toEqual([true, true]);
    expect(p.trace.ofType('launch-update').map((e) => e.gpa)).toEqual([first, first + PAGE_4K]);
    p.machine.close();
  });
});

describe('a launch range taken page by page', () => {
  // KVM_SEV_SNP_LAUNCH_UPDATE covers exactly [uaddr, uaddr + len) (KVM sev.c snp_launch_update:
  // npages = len >> PAGE_SHIFT); a SECRETS page goes page by page (secrets-page.ts) and stops there.
  it('launches exactly its pages: the page after a one-page SECRETS range stays the hypervisor\'s', () => {
    const p = platform();
    expect(p.launchRange(REGION, PAGE_4K, 'SECRETS')).toMatchObject({ rc: 0, op: 'launch-update', at: REGION });
    expect(p.rmp.lookup(REGION)).toMatchObject({ assigned: true, validated: true });
    expect(p.rmp.lookup(REGION + PAGE_4K).assigned).toBe(false);
    expect(p.trace.ofType('launch-update')).toHaveLength(1);
    p.machine.close();
  });
});

describe('host bytes in hypervisor-owned pages', () => {
  // RMPUPDATE writes the RMP entry, not memory (APM Vol. 3 RMPUPDATE): assigning a 2 MiB region
  // to the guest leaves the host's own bytes in the page right after it as the host wrote them.
  it('survive the assignment of the neighbouring 2 MiB region (with more host-written pages than the region has)', () => {
    const p = platform();
    const host = p.handle.hostMemory;
    const next = REGION + PAGE_2M;
    for (let page = REGION; page < next; page += PAGE_4K) host.write(page, Buffer.from('guest-to-be'));
    host.write(next, Buffer.from('host data'));
    expect(p.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: REGION, asid: p.asid }).rc).toBe(0);
    expect(Buffer.from(host.read(next, 9)).toString('latin1')).toBe('host data');
    p.machine.close();
  });
});

// README: guest RAM need not be a multiple of 2 MiB (`--memory 4097M`): the last 2 MiB region then
// holds less RAM than a 2 MiB page. The RMP covers RAM (Rmp.coveredBytes = memoryBytes), and a
// 2 MiB entry there is legal (RMPUPDATE checks alignment and the entries, B2); what the guest can
// reach through it is the RAM in it and nothing past the end.
describe('a 2 MiB page in the last region when RAM ends 1 MiB into it', () => {
  const RAM = MEMORY + (1n << 20n);       // 17 MiB
  const LAST = MEMORY;                    // the region [16 MiB, 18 MiB), half of it RAM
  const LAST_PAGE = RAM - PAGE_4K;

  function pvalidate(p: SnpPlatform, gva: bigint, size: '4k' | '2m', validate: boolean): void {
    const regs = p.machine.vcpu.regs;
    regs.rip = RIP;
    regs.rax = gva; regs.rcx = size === '2m' ? 1n : 0n; regs.rdx = validate ? 1n : 0n;
    p.handleExit({ kind: 'pvalidate', rip: RIP, length: 4, codeBits: 64, cs: 0x8 });
  }

  it('is assigned, validated and given back with the gate set on its RAM and the rest of RAM untouched', () => {
    const p = SnpPlatform.create({ memoryBytes: RAM, countInstructions: false });
    const below = LAST - PAGE_4K;
    const gateBelow = [p.machine.gate.get('private', below), p.machine.gate.get('shared', below)];
    expect(p.rmpUpdate(LAST, { assigned: true, pageSize: '2m', gpa: LAST, asid: p.asid }).rc).toBe(0);
    p.setNptPageSize(LAST, '2m');
    // Assigned, not validated: no private access yet, shared reads see ciphertext (APM §15.36.10).
    expect([p.machine.gate.get('private', LAST_PAGE), p.machine.gate.get('shared', LAST_PAGE)]).toEqual(['none', 'ciphertext']);
    pvalidate(p, LAST, '2m', true);
    expect(p.machine.vcpu.regs.rax).toBe(0n);
    expect(p.pageState(LAST_PAGE)).toMatchObject({ accepted: true, pageSize: '2m' });
    expect(p.machine.gate.get('private', LAST)).toBe('readwrite');
    expect(p.machine.gate.get('private', LAST_PAGE)).toBe('readwrite');
    // The guest writes its data; the host takes the page back (RMPUPDATE to hypervisor-owned).
    p.machine.memory.write(LAST_PAGE, new Uint8Array(PAGE_4K_N).fill(0x5a));
    expect(p.machine.watchedContentPages(LAST, RAM - LAST)).toBe(0);
    expect(p.rmpUpdate(LAST, { assigned: false, pageSize: '2m', gpa: 0n, asid: 0 }).rc).toBe(0);
    expect(p.pageState(LAST_PAGE)).toMatchObject({ visibility: 'shared', accepted: false });
    // Every page of it in RAM is watched from now (what DRAM holds when it comes back may be the host's).
    expect(p.machine.watchedContentPages(LAST, RAM - LAST)).toBe(Number((RAM - LAST) / PAGE_4K));
    expect([p.machine.gate.get('private', LAST_PAGE), p.machine.gate.get('shared', LAST_PAGE)]).toEqual(['none', 'readwrite']);
    // The host now reads the ciphertext the guest's data left in DRAM, not the plaintext.
    expect(Buffer.from(p.handle.hostMemory.read(LAST_PAGE, 16)).equals(Buffer.alloc(16, 0x5a))).toBe(false);
    expect([p.machine.gate.get('private', below), p.machine.gate.get('shared', below)]).toEqual(gateBelow);
    p.machine.close();
  });

  it('a batch of host work there leaves the gate as the same work done one operation at a time', () => {
    const work = (p: SnpPlatform) => {
      for (const region of [LAST - 2n * PAGE_2M, LAST - PAGE_2M, LAST]) {
        expect(p.rmpUpdate(region, { assigned: true, pageSize: '2m', gpa: region, asid: p.asid }).rc).toBe(0);
        p.setNptPageSize(region, '2m');
      }
    };
    const one = SnpPlatform.create({ memoryBytes: RAM, countInstructions: false });
    const batched = SnpPlatform.create({ memoryBytes: RAM, countInstructions: false });
    work(one);
    batched.batchGateSync(() => work(batched));
    for (let page = LAST - 2n * PAGE_2M; page < RAM; page += PAGE_4K) {
      expect([batched.machine.gate.get('private', page), batched.machine.gate.get('shared', page)]).toEqual(['none', 'ciphertext']);
      expect(one.machine.gate.get('shared', page)).toBe('ciphertext');
    }
    one.machine.close();
    batched.machine.close();
  });
});
