import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Machine } from '../../../src/cpu/machine.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { HOST_OPS, RMP_LEGALITY, TARGET_STATES, classifyTarget, type HostOp, type TargetState } from '../../../src/platform/snp/rmp-legality.js';
import { decodeGhcbMsr, ghcbMsr } from '../../../src/platform/snp/ghcb-msr.js';
import { decodePscEntry, encodePscEntry } from '../../../src/platform/snp/ghcb-page.js';
import { pvalidateFlags } from '../../../src/platform/snp/pvalidate.js';
import { LaunchDigest } from '../../../src/platform/snp/launch.js';
import { RFLAGS } from '../../../src/cpu/registers.js';

const R = 0x400000n;

/** Puts the target of `op` at R (or the address returned) into `state`. */
function arrange(p: SnpPlatform, op: HostOp, state: TargetState): bigint {
  const big = op === 'rmpupdate-2m' || op === 'psmash';
  switch (state) {
    // SNP_LAUNCH_UPDATE tells a misaligned address (INVALID_PARAM) from one the RMP does not cover (a DEFAULT page).
    case 'misaligned': return big ? R + 0x1000n : op === 'launch-update' ? R + 0x10n : p.memoryBytes + 0x1000n;
    case 'immutable': p.rmpUpdate(R, { assigned: true, pageSize: '4k', immutable: true, gpa: R, asid: p.asid }); return R;
    case 'hv-owned': return R;
    case 'assigned-4k': p.rmpUpdate(R, { assigned: true, pageSize: '4k', gpa: R, asid: p.asid }); return R;
    case 'assigned-2m': p.rmpUpdate(R, { assigned: true, pageSize: '2m', gpa: R, asid: p.asid }); return big ? R : R + 0x3000n;
  }
}

function perform(p: SnpPlatform, op: HostOp, spa: bigint) {
  switch (op) {
    case 'rmpupdate-4k': return p.rmpUpdate(spa, { assigned: true, pageSize: '4k', gpa: spa, asid: p.asid });
    case 'rmpupdate-2m': return p.rmpUpdate(spa, { assigned: true, pageSize: '2m', gpa: spa, asid: p.asid });
    case 'psmash': return p.psmash(spa);
    case 'launch-update': return p.launchUpdatePage(spa);
  }
}

describe('RMP legality table', () => {
  const vm = new Machine({ memoryBytes: 16n << 20n });
  for (const op of HOST_OPS) {
    for (const state of TARGET_STATES) {
      it(`${op} on ${state} -> ${RMP_LEGALITY[op][state]}`, () => {
        const snap = vm.snapshot();
        const p = new SnpPlatform(vm);
        const spa = arrange(p, op, state);
        expect(classifyTarget(p.rmp, op, spa)).toBe(state);
        const before = p.rmp.lookup(spa);
        const r = perform(p, op, spa);
        expect(r.result).toBe(RMP_LEGALITY[op][state]);
        if (r.result !== 'SUCCESS') expect(p.rmp.lookup(spa)).toEqual(before);
        expect(p.trace.ofType(op.startsWith('rmpupdate') ? 'rmpupdate' : op).at(-1)).toMatchObject({ result: r.result });
        vm.restore(snap);
      });
    }
  }

  it('RMPUPDATE always clears Validated; PSMASH keeps it', () => {
    const vm2 = new Machine({ memoryBytes: 16n << 20n });
    const p = new SnpPlatform(vm2);
    p.rmpUpdate(R, { assigned: true, pageSize: '2m', gpa: R, asid: 1 });
    p.rmp.setValidated(R, true);
    expect(p.psmash(R).rc).toBe(0);
    expect(p.rmp.lookup(R + 0x5000n)).toMatchObject({ validated: true, pageSize: '4k', gpa: R + 0x5000n });
    p.rmpUpdate(R + 0x5000n, { assigned: true, pageSize: '4k', gpa: R + 0x5000n, asid: 1 });
    expect(p.rmp.lookup(R + 0x5000n).validated).toBe(false);
    expect(vm2.gate.get('private', R + 0x5000n)).toBe('none');
    expect(vm2.gate.get('private', R + 0x6000n)).toBe('readwrite');
    expect(vm2.gate.get('shared', R + 0x6000n)).toBe('ciphertext'); // C=0 reads of a guest page see ciphertext
  });
});

describe('SNP_LAUNCH_UPDATE VMPLn_PERMS', () => {
  it('grants the lower VMPLs their permissions, measures them, and refuses bits that do not exist', () => {
    const digests: string[] = [];
    for (const perms of [[0, 0, 0], [0xf, 0, 0]] as const) {
      const vm = new Machine({ memoryBytes: 16n << 20n });
      const p = new SnpPlatform(vm);
      p.rmpUpdate(R, { assigned: true, pageSize: '4k', immutable: true, gpa: R, asid: 1 });
      expect(p.launchUpdatePage(R, 'NORMAL', undefined, perms).rc).toBe(0);
      expect(p.rmp.lookup(R).vmplPerms).toEqual([0x1f, ...perms]);
      digests.push(p.launchFinish());
      vm.close();
    }
    expect(digests[0]).not.toBe(digests[1]);
    const vm = new Machine({ memoryBytes: 16n << 20n });
    const p = new SnpPlatform(vm);
    p.rmpUpdate(R, { assigned: true, pageSize: '4k', immutable: true, gpa: R, asid: 1 });
    expect(p.launchUpdatePage(R, 'NORMAL', undefined, [0x20, 0, 0]).result).toBe('FAIL_INPUT');
    vm.close();
  });
});

describe('sparseness', () => {
  it('a 1 TiB guest costs only what is assigned', () => {
    const vm = new Machine({ memoryBytes: 1n << 40n, countInstructions: false });
    const p = new SnpPlatform(vm);
    expect(p.rmp.storedRegions).toBe(0);
    const high = (1n << 40n) - 0x200000n;
    p.rmpUpdate(high, { assigned: true, pageSize: '2m', gpa: high, asid: 1 });
    p.rmpUpdate(0x1000n, { assigned: true, pageSize: '4k', gpa: 0x1000n, asid: 1 });
    expect(p.rmp.storedRegions).toBe(2);
    expect(p.rmp.assignedPages()).toBe(513);
    p.rmpUpdate(0x1000n, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 });
    expect(p.rmp.storedRegions).toBe(1);
    vm.close();
  });
});

describe('codecs', () => {
  it('GHCB MSR requests round-trip', () => {
    expect(decodeGhcbMsr(ghcbMsr.pscReq(0x12345n, 2))).toEqual({ kind: 'psc', gfn: 0x12345n, op: 2 });
    expect(decodeGhcbMsr(ghcbMsr.termReq(1, 2))).toEqual({ kind: 'terminate', reasonSet: 1, reasonCode: 2 });
    expect(decodeGhcbMsr(ghcbMsr.registerReq(0x30n))).toEqual({ kind: 'register-ghcb', gfn: 0x30n });
    expect(decodeGhcbMsr(0x30000n)).toEqual({ kind: 'ghcb-gpa', gpa: 0x30000n });
    expect(decodeGhcbMsr(0xabcn)).toMatchObject({ kind: 'unknown', info: 0xabc });
  });
  it('PSC entries round-trip', () => {
    const e = { curPage: 17, gfn: 0x600n, op: 1, size2m: true, reserved: 0 };
    expect(decodePscEntry(encodePscEntry(e))).toEqual(e);
  });
  it('PVALIDATE flags', () => {
    expect(pvalidateFlags(0n, 0, true) & (RFLAGS.CF | RFLAGS.ZF)).toBe(RFLAGS.CF | RFLAGS.ZF);
    expect(pvalidateFlags(RFLAGS.CF, 6, false) & (RFLAGS.CF | RFLAGS.ZF)).toBe(0n);
  });
  it('launch digest is a deterministic SHA-384 chain', () => {
    const a = new LaunchDigest(), b = new LaunchDigest();
    a.extend('NORMAL', 0x1000n, new Uint8Array(4096).fill(1));
    b.extend('NORMAL', 0x1000n, new Uint8Array(4096).fill(1));
    expect(a.hex).toBe(b.hex);
    expect(a.hex).toHaveLength(96);
    b.extend('ZERO', 0x2000n, new Uint8Array(4096));
    expect(a.hex).not.toBe(b.hex);
  });
  it('launch digest: each page is SHA-384 of the PAGE_INFO layout (DIGEST_CUR, CONTENTS, LENGTH, PAGE_TYPE, VMPL1..3 perms, GPA)', () => {
    // SEV-SNP Firmware ABI 8.17 PAGE_INFO, built here field by field.
    const info = (cur: Buffer, contents: Buffer, type: number, perms: number[], gpa: bigint) => {
      const b = Buffer.alloc(0x70);
      cur.copy(b, 0);
      contents.copy(b, 0x30);
      b.writeUInt16LE(0x70, 0x60);
      b.writeUInt8(type, 0x62);
      perms.forEach((p, i) => b.writeUInt8(p, 0x65 + i));
      b.writeBigUInt64LE(gpa, 0x68);
      return b;
    };
    const sha384 = (data: Buffer) => createHash('sha384').update(data).digest();
    const page = Buffer.alloc(4096, 0x3c);
    const d = new LaunchDigest();
    d.extend('NORMAL', 0x7000n, page, [1, 2, 3]);
    d.extend('ZERO', 0x12345000n, undefined);
    d.extend('NORMAL', 0x9000n, new Uint8Array(4096));  // a NORMAL page of zeros is measured by its bytes too
    let expected = sha384(info(Buffer.alloc(48), sha384(page), 1, [1, 2, 3], 0x7000n));
    expected = sha384(info(expected, Buffer.alloc(48), 3, [0, 0, 0], 0x12345000n));
    expected = sha384(info(expected, sha384(Buffer.alloc(4096)), 1, [0, 0, 0], 0x9000n));
    expect(d.hex).toBe(expected.toString('hex'));
    expect(() => d.extend('NORMAL', 0x8000n, undefined)).toThrow(/measured by its contents/);
  });
});
