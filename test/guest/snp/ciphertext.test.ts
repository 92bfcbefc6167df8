// Issue 9 row 16: a shared (C=0) read of a private page returns its ciphertext, through real
// guest loads; the host reads the same ciphertext (APM Vol. 2 §15.34.1, §15.36).
import { describe, expect, it } from 'vitest';
import { C_BIT, PVALIDATE, snpGuest } from '../../helpers/snp-guest.js';

const T = 0x400000n;       // private page, validated by the guest
const SHARED_VA = 0x40000000n; // T's 2 MiB mapped without the C-bit
const SHARED_VA2 = 0x60000000n; // T mapped once more without the C-bit (a fresh translation)
const PLAIN = 0x1122334455667788n;

function guest(extra = '', keySeed?: bigint) {
  return snpGuest(`
    mov rax, 0x${T.toString(16)}
    xor ecx, ecx
    mov edx, 1
    ${PVALIDATE}
    mov rax, 0x${PLAIN.toString(16)}
    mov [0x${T.toString(16)}], rax
    mov [0x${(T + 0x1000n).toString(16)}], rax
    mov r8, [0x${T.toString(16)}]
    mov r9, [0x${SHARED_VA.toString(16)}]
    mov r10, [0x${(SHARED_VA + 0x1000n).toString(16)}]
    ${extra}
    hlt`, {
    mappings: [
      { va: 0n, pa: 0n, size: 0x800000n, pageSize: 4096n, extraBits: C_BIT },
      { va: SHARED_VA, pa: T, size: 0x200000n, pageSize: 4096n },
      { va: SHARED_VA2, pa: T, size: 0x1000n, pageSize: 4096n },
    ],
    ...(keySeed !== undefined ? { keySeed } : {}),
  });
}

function setup(g: ReturnType<typeof snpGuest>) {
  g.platform.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: g.platform.asid });
  g.platform.rmpUpdate(T + 0x1000n, { assigned: true, pageSize: '4k', gpa: T + 0x1000n, asid: g.platform.asid });
  g.platform.rmp.setValidated(T + 0x1000n, true);
}

describe('shared reads of private pages', () => {
  it('the guest reads ciphertext through a C=0 mapping, the host reads the same bytes', () => {
    const g = guest();
    setup(g);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const r = g.vm.vcpu.regs;
    expect(r.r8).toBe(PLAIN);          // the private view is the plaintext
    expect(r.r9).not.toBe(PLAIN);      // the shared view is not
    expect(g.platform.hostRead(T, 8).readBigUInt64LE()).toBe(r.r9);
    // Equal plaintext at another address gives other ciphertext (the tweak is the address).
    expect(r.r10).not.toBe(r.r9);
    expect(g.platform.hostRead(T + 0x1000n, 8).readBigUInt64LE()).toBe(r.r10);
    expect(g.trace.ofType('shared-read-ciphertext').map((e) => e.gpa)).toEqual([T, T + 0x1000n]);
  });

  it('is a deterministic function of the VM key: same key same bytes, another key other bytes', () => {
    const a = guest(), b = guest(), other = guest('', 7n);
    for (const g of [a, b, other]) { setup(g); expect(g.run()).toMatchObject({ outcome: 'done' }); }
    expect(a.vm.vcpu.regs.r9).toBe(b.vm.vcpu.regs.r9);
    expect(other.vm.vcpu.regs.r9).not.toBe(a.vm.vcpu.regs.r9);
    expect(other.vm.vcpu.regs.r8).toBe(a.vm.vcpu.regs.r8);
  });

  it('follows the plaintext: after a private write, a new shared translation sees the new ciphertext', () => {
    const g = guest(`
      mov rax, 0x99
      mov [0x${T.toString(16)}], rax
      mov r11, [0x${SHARED_VA2.toString(16)}]`);
    setup(g);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const host = g.platform.hostRead(T, 8).readBigUInt64LE();
    expect(g.vm.vcpu.regs.r11).toBe(host);
    expect(host).not.toBe(g.vm.vcpu.regs.r9); // the plaintext changed, so did the ciphertext
    expect(host).not.toBe(0x99n);
  });

  // The first shared read of a page need not be at its start: DRAM holds the page's ciphertext
  // at every offset, so the read at T+0x2238 gets the host's bytes at T+0x2238 (APM Vol. 2
  // §15.34.1: the guest's C=0 view and the host's are the same DRAM).
  it('a first shared read in the middle of a private page gets the ciphertext at that offset', () => {
    const V = T + 0x2000n, OFFSET = 0x238n;
    const g = guest(`
      mov rax, 0x${PLAIN.toString(16)}
      mov [0x${(V + OFFSET).toString(16)}], rax
      mov r11, [0x${(SHARED_VA + 0x2000n + OFFSET).toString(16)}]`);
    setup(g);
    g.platform.rmpUpdate(V, { assigned: true, pageSize: '4k', gpa: V, asid: g.platform.asid });
    g.platform.rmp.setValidated(V, true);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const host = g.platform.hostRead(V + OFFSET, 8).readBigUInt64LE();
    expect(g.vm.vcpu.regs.r11).toBe(host);
    expect(host).not.toBe(PLAIN);
    expect(g.trace.ofType('shared-read-ciphertext').map((e) => e.gpa)).toEqual([T, T + 0x1000n, V]);
  });

  it('hypervisor-owned (shared) pages read as their bytes from both sides', () => {
    const g = snpGuest(`mov qword ptr [0x${SHARED_VA.toString(16)}], 0x77\nmov r9, [0x${SHARED_VA.toString(16)}]\nhlt`, {
      mappings: [{ va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n, extraBits: C_BIT }, { va: SHARED_VA, pa: T, size: 0x1000n, pageSize: 4096n }],
    });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r9).toBe(0x77n);
    expect(g.platform.hostRead(T, 8).readBigUInt64LE()).toBe(0x77n);
  });
});

// RMPUPDATE changes no byte of DRAM: what the host can do with a page's ciphertext once it owns
// the page (APM Vol. 2 §15.34.1: the tweak is the system-physical address; snp-cpu.ts #changeOwner).
describe('ownership changes: DRAM keeps the ciphertext', () => {
  const U = T + 0x1000n;
  const run = (keySeed?: bigint) => {
    const g = guest('', keySeed);
    setup(g);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    return { g, host: g.platform.handle, plain: (gpa: bigint) => Buffer.from(g.platform.machine.memory.read(gpa, 8)) };
  };
  const toHost = (g: ReturnType<typeof guest>, gpa: bigint) => expect(g.platform.rmpUpdate(gpa, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 }).rc).toBe(0);
  const toGuest = (g: ReturnType<typeof guest>, gpa: bigint) => expect(g.platform.rmpUpdate(gpa, { assigned: true, pageSize: '4k', gpa, asid: g.platform.asid }).rc).toBe(0);

  it('a validated page the hypervisor takes reads as its ciphertext, and comes back as the guest left it', () => {
    const { g, host, plain } = run();
    const ciphertext = host.hostMemory.read(T, 4096);
    toHost(g, T);
    expect(Buffer.from(host.hostMemory.read(T, 4096))).toEqual(Buffer.from(ciphertext)); // not the plaintext
    toGuest(g, T);
    expect(plain(T).readBigUInt64LE()).toBe(PLAIN);
    expect(g.platform.rmpEntry(T).validated).toBe(false); // …which the guest must validate again
  });

  it('a replay: the page\'s own old ciphertext put back decrypts to the old plaintext; moved to another page, or the host\'s own bytes, to garbage', () => {
    const results = [run(), run()].map(({ g, host, plain }) => {
      const oldT = host.hostMemory.read(T, 4096);
      toHost(g, T);
      toHost(g, U);
      host.hostMemory.write(T, oldT);                          // back where it came from
      host.hostMemory.write(U, oldT);                          // moved to the neighbour
      toGuest(g, T);
      toGuest(g, U);
      const replayed = plain(T).readBigUInt64LE();
      const moved = plain(U).readBigUInt64LE();
      toHost(g, U);
      host.hostMemory.write(U, Buffer.alloc(4096, 0x42));     // the host's own plaintext
      toGuest(g, U);
      return { replayed, moved, hostBytes: plain(U).readBigUInt64LE() };
    });
    const [a, b] = results as [typeof results[0], typeof results[0]];
    expect(a.replayed).toBe(PLAIN);
    expect(a.moved).not.toBe(PLAIN);
    expect(a.hostBytes).not.toBe(0x4242424242424242n);
    expect(a.hostBytes).not.toBe(a.moved);
    // Deterministic: the same VM (key) gives the same garbage.
    expect(b).toEqual(a);
  });

  it('a 2 MiB RMPUPDATE decrypts the host-written pages inside it like 4 KiB ones: the replay back, the moved page as garbage', () => {
    const { g, host, plain } = run();
    const oldT = host.hostMemory.read(T, 4096);
    toHost(g, T);
    toHost(g, U);
    host.hostMemory.write(T, oldT);
    host.hostMemory.write(U, oldT);
    expect(g.platform.rmpUpdate(T, { assigned: true, pageSize: '2m', gpa: T, asid: g.platform.asid }).rc).toBe(0);
    expect(plain(T).readBigUInt64LE()).toBe(PLAIN);
    const moved = plain(U).readBigUInt64LE();
    expect(moved).not.toBe(PLAIN);
    expect(moved).not.toBe(Buffer.from(oldT).readBigUInt64LE());
  });

  // RMPUPDATE changes the RMP entries of its own range (APM Vol. 3 "RMPUPDATE": 2 MiB when
  // PAGE_SIZE is set), nothing past it: the page after the range stays the hypervisor's, and a
  // hypervisor-owned page reads back as the host wrote it.
  it('a 2 MiB RMPUPDATE leaves the host-written page just past its range as the host wrote it', () => {
    const { g, host } = run();
    const next = T + 0x200000n;
    toHost(g, T);
    toHost(g, U);
    host.hostMemory.write(next, Buffer.alloc(4096, 0x42));
    expect(g.platform.rmpUpdate(T, { assigned: true, pageSize: '2m', gpa: T, asid: g.platform.asid }).rc).toBe(0);
    expect(g.platform.rmpEntry(next).assigned).toBe(false);
    expect(Buffer.from(host.hostMemory.read(next, 4096))).toEqual(Buffer.alloc(4096, 0x42));
  });

  // RMPUPDATE writes the RMP, not memory (APM Vol. 3 "RMPUPDATE"), and what a guest reads is its
  // key's decryption of DRAM at that address (APM Vol. 2 §15.34.1): while nobody writes the page,
  // every assignment to the same guest reads the same bytes.
  it('a host-written page assigned, taken back unvalidated and unwritten, and assigned again reads as it did the first time', () => {
    const { g, host, plain } = run();
    const P = 0x500000n;
    host.hostMemory.write(P, Buffer.alloc(4096, 0x42));
    toGuest(g, P);
    const first = plain(P);
    expect(first.readBigUInt64LE()).not.toBe(0x4242424242424242n);
    toHost(g, P);
    toGuest(g, P);
    expect(plain(P)).toEqual(first);
  });

  // Which pages the host wrote elsewhere changes nothing in this range.
  it('a 2 MiB RMPUPDATE decrypts the host-written page inside it when the host has written 512 pages elsewhere too', () => {
    const { g, host, plain } = run();
    const oldT = host.hostMemory.read(T, 4096);
    toHost(g, T);
    toHost(g, U);
    host.hostMemory.write(U, oldT);
    host.hostMemory.write(0x800000n, Buffer.alloc(0x200000, 0x42));
    expect(g.platform.rmpUpdate(T, { assigned: true, pageSize: '2m', gpa: T, asid: g.platform.asid }).rc).toBe(0);
    const moved = plain(U).readBigUInt64LE();
    expect(moved).not.toBe(PLAIN);
    expect(moved).not.toBe(Buffer.from(oldT).readBigUInt64LE());
  });

  it('the hardware model\'s snapshot carries which pages hold DRAM content', () => {
    const { g, plain } = run();
    toHost(g, T);
    const saved = g.platform.saveState(); // T: the hypervisor's, holding the ciphertext
    toGuest(g, T);
    g.platform.loadState(saved);
    expect(plain(T).readBigUInt64LE()).not.toBe(PLAIN);
    toGuest(g, T);
    expect(plain(T).readBigUInt64LE()).toBe(PLAIN);
  });
});

// The content watch (src/platform/foreign-content.ts): a page the host took and gave back holds
// DRAM content the host decided (here the page's own old ciphertext: a replay), so after the guest
// validates it again, its reads of bytes it has not written since are foreign-content reads.
describe('foreign content: a page the host re-assigned', () => {
  const revalidate = `
    mov rax, 0x${T.toString(16)}
    xor ecx, ecx
    mov edx, 1
    ${PVALIDATE}`;
  const reassigned = (afterRevalidate: string) => {
    const g = guest(`hlt\n${revalidate}\n${afterRevalidate}`);
    setup(g);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.platform.rmpUpdate(T, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 }).rc).toBe(0);
    expect(g.platform.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: g.platform.asid }).rc).toBe(0);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    return g;
  };

  it('the first read of it is recorded, with the byte and the reading instruction', () => {
    const g = reassigned(`mov r12, [0x${(T + 0x10n).toString(16)}]`);
    expect(g.vm.vcpu.regs.r12).toBe(0n); // the replayed plaintext: the guest wrote only the first qword
    const reads = g.trace.ofType('foreign-read');
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatchObject({ gpa: T + 0x10n });
    expect(typeof reads[0]!.rip).toBe('bigint');
  });

  it('nothing is recorded when the guest does not read it, or writes the whole page before reading it', () => {
    expect(reassigned(`mov r12, [0x${(T + 0x1000n).toString(16)}]`).trace.ofType('foreign-read')).toEqual([]);
    const g = reassigned(`
      mov rdi, 0x${T.toString(16)}
      mov rcx, 512
      xor eax, eax
      rep stosq
      mov r12, [0x${(T + 0x10n).toString(16)}]`);
    expect(g.vm.vcpu.regs.r12).toBe(0n);
    expect(g.trace.ofType('foreign-read')).toEqual([]);
    expect(g.vm.watchedContentPages(T, 0x1000n)).toBe(0);
  });
});
