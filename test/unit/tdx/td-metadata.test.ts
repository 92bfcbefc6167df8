// TDG.VM.RD/WR against the TD-scope metadata as intel/tdx-module TDX_1.5.01 has it:
// tdg_vm_rd_wr.c tdg_vm_rd_wr() (version 1, RDX = next field ID), metadata_generic.c
// md_check_as_single_element_id() / md_find_entry_idx() / md_get_next_element_in_context(),
// metadata_td.c md_td_get_element() / md_td_read_element() / md_td_write_element(), and the rows
// of include/auto_gen/tdr_tdcs_fields_lookup.c (field IDs, guest read/write masks).
import { describe, expect, it } from 'vitest';
import type { Gpr } from '../../../src/cpu/registers.js';
import { tdcall, tdxModule, type TdxModule } from '../../helpers/tdx-module.js';
import { TDR_TDCS_ROWS } from '../../helpers/tdr-tdcs-fields.js';
import { tdCpuid } from '../../../src/platform/tdx/td-cpuid.js';

const OPERAND_INVALID_RAX = 0xc000010000000000n;
const OPERAND_INVALID_RCX = 0xc000010000000001n;
const FIELD_ID_INCORRECT = 0xc0000c0000000000n;
const FIELD_NOT_WRITABLE = 0xc0000c0100000000n;
const FIELD_NOT_READABLE = 0xc0000c0200000000n;
const FIELD_VALUE_NOT_VALID = 0xc0000c0300000000n;
const FIRST_FIELD_ID_IN_CONTEXT = 0x00000c0b00000000n;
const MD_FIELD_ID_NA = 0xffff_ffff_ffff_ffffn;
const MASK_ALL = 0xffff_ffff_ffff_ffffn;

const VM_RD = 7n;
const VM_RD_V1 = 7n | (1n << 16n);
const VM_WR = 8n;

// Field IDs from tdr_tdcs_fields_lookup.c.
const Field = {
  TD_UUID: 0x8010000300000020n,
  HKID: 0x8110000100000001n,
  NUM_VCPUS: 0x9010000200000001n,
  ATTRIBUTES: 0x1110000300000000n,
  MAX_VCPUS: 0x1110000200000002n,
  GPAW: 0x1110000000000003n,
  EPTP: 0x1110000300000004n,
  NOTIFY_ENABLES: 0x9110000300000010n,
  CONFIG_FLAGS: 0x1110000300000016n,
  TD_CTLS: 0x1110000300000017n,
  TSC_FREQUENCY: 0x111000010000000Cn,
  MRTD: 0x1310000300000000n,
  MRCONFIGID: 0x1310000300000010n,
  SERVTD_BINDINGS_TABLE: 0x9910000300000080n,
  CPUID_VALUES: 0x9410000300000000n,
  L2_SEPT_ROOT_1: 0x2510000300000000n,
} as const;

/** TDG.VM.RD/WR with `regs` set: its outputs, RAX (status), RDX (field ID) and R8 (value). */
function vmRdWr(m: TdxModule, regs: Partial<Record<Gpr, bigint>>) {
  const { regs: r } = tdcall(m, regs);
  return { rax: r.rax, rdx: r.rdx, r8: r.r8 };
}
const read = (m: TdxModule, field: bigint, rax = VM_RD_V1) => vmRdWr(m, { rax, rcx: 0n, rdx: field, r8: 0x55n });
const write = (m: TdxModule, field: bigint, value: bigint, mask: bigint) => vmRdWr(m, { rax: VM_WR, rcx: 0n, rdx: field, r8: value, r9: mask });

describe('TDG.VM.RD version 1: RDX = the next field ID the guest can read', () => {
  it('CONFIG_FLAGS → TD_CTLS → MRTD: rows the guest cannot read (CPUID_VALID … REFCOUNT) are skipped', () => {
    const m = tdxModule();
    expect(read(m, Field.CONFIG_FLAGS)).toEqual({ rax: 0n, rdx: Field.TD_CTLS, r8: 0n });
    expect(read(m, Field.TD_CTLS)).toEqual({ rax: 0n, rdx: Field.MRTD, r8: 0n });
  });

  // md_get_next_item_with_iterator(): inside a row only FIELD_CODE advances (the guest's other bits
  // stay); moving to the next row takes that row's ID from the table.
  it('inside a multi-element field the next ID is the guest\'s own ID + 1; past its last element, the table\'s next ID', () => {
    const m = tdxModule();
    const mrtd2SizeCode0 = (Field.MRTD & ~(3n << 32n)) | 2n; // element size code is ignored on input
    expect(read(m, mrtd2SizeCode0).rdx).toBe(mrtd2SizeCode0 + 1n);
    expect(read(m, Field.MRTD | 5n).rdx).toBe(Field.MRCONFIGID);
    // tdg_vm_rd_wr() sets CONTEXT_CODE to TD (1) before the lookup, so the next ID carries it.
    const mrtd2ContextVp = (Field.MRTD & ~(7n << 52n)) | (2n << 52n) | 2n;
    expect(read(m, mrtd2ContextVp).rdx).toBe(Field.MRTD | 3n);
  });

  it('the null field ID → METADATA_FIRST_FIELD_ID_IN_CONTEXT, RDX = TD_UUID (the first readable row), R8 = 0', () => {
    const m = tdxModule();
    expect(read(m, MD_FIELD_ID_NA)).toEqual({ rax: FIRST_FIELD_ID_IN_CONTEXT, rdx: Field.TD_UUID, r8: 0n });
    // CONTEXT_CODE is ignored on input: all ones apart from it is still the null ID.
    expect(read(m, MD_FIELD_ID_NA & ~(7n << 52n)).rdx).toBe(Field.TD_UUID);
    // Version 0 has no null-ID case: all ones fails md_check_as_single_element_id.
    expect(read(m, MD_FIELD_ID_NA, VM_RD)).toEqual({ rax: FIELD_ID_INCORRECT, rdx: MD_FIELD_ID_NA, r8: 0n });
  });

  it('after the last readable element (SERVTD_BINDINGS_TABLE[15]) RDX = -1 and the read succeeds', () => {
    expect(read(tdxModule(), Field.SERVTD_BINDINGS_TABLE + 15n)).toEqual({ rax: 0n, rdx: MD_FIELD_ID_NA, r8: 0n });
  });

  it('walking from the null ID reads every guest-readable element once (89) and ends at -1', () => {
    const m = tdxModule();
    let next = read(m, MD_FIELD_ID_NA).rdx;
    let count = 0;
    while (next !== MD_FIELD_ID_NA && count < 200) {
      const r = read(m, next);
      expect(r.rax).toBe(0n);
      next = r.rdx;
      count++;
    }
    expect(count).toBe(89);
  });

  it('the walk names each readable row by its table ID (element size code included), then that ID + 1 for each further element', () => {
    // The L2_SEPT_ROOT rows are counted out while the TD has no L2 VMs (md_get_lookup_table).
    const expected = TDR_TDCS_ROWS.filter(([name, , , readable]) => readable && !name.startsWith('L2_'))
      .flatMap(([, id, elements]) => Array.from({ length: elements }, (_, i) => id + BigInt(i)));
    const m = tdxModule();
    const walked: bigint[] = [];
    for (let next = read(m, MD_FIELD_ID_NA).rdx; next !== MD_FIELD_ID_NA && walked.length < 200; next = read(m, next).rdx) walked.push(next);
    expect(walked.map((id) => id.toString(16))).toEqual(expected.map((id) => id.toString(16)));
  });

  it('any error leaves RDX = MD_FIELD_ID_NA (set before the checks); version 0 leaves RDX alone', () => {
    const m = tdxModule();
    expect(read(m, 0x1234n)).toEqual({ rax: FIELD_ID_INCORRECT, rdx: MD_FIELD_ID_NA, r8: 0n });
    expect(vmRdWr(m, { rax: VM_RD_V1, rcx: 1n, rdx: Field.TD_CTLS })).toEqual({ rax: OPERAND_INVALID_RCX, rdx: MD_FIELD_ID_NA, r8: 0n });
    expect(read(m, Field.CONFIG_FLAGS, VM_RD).rdx).toBe(Field.CONFIG_FLAGS);
  });

  // td_call() lets any TDG.VM.RD version through; tdg_vm_rd_wr() rejects version > 1 after its defaults.
  it('version 2 → OPERAND_INVALID|RAX with RDX = -1 and R8 = 0; TDG.VM.WR version 1 is refused by the dispatcher', () => {
    const m = tdxModule();
    expect(read(m, Field.TD_CTLS, VM_RD | (2n << 16n))).toEqual({ rax: OPERAND_INVALID_RAX, rdx: MD_FIELD_ID_NA, r8: 0n });
    expect(vmRdWr(m, { rax: VM_WR | (1n << 16n), rcx: 0n, rdx: Field.TD_CTLS, r8: 0x55n, r9: 1n })).toEqual({ rax: OPERAND_INVALID_RAX, rdx: Field.TD_CTLS, r8: 0x55n });
  });
});

describe('field ID matching (md_check_as_single_element_id, md_find_entry_idx)', () => {
  it('element size, inc size, write-mask-valid, context code and non-arch bits are ignored', () => {
    const m = tdxModule({ attributes: 0x10000000n });
    const ignored = [3n << 32n, 1n << 50n, 1n << 51n, 7n << 52n, 1n << 63n];
    for (const bits of ignored) expect(read(m, Field.ATTRIBUTES ^ bits, VM_RD)).toEqual({ rax: 0n, rdx: Field.ATTRIBUTES ^ bits, r8: 0x10000000n });
  });

  it('reserved bits and last-element / last-field bits → FIELD_ID_INCORRECT', () => {
    const m = tdxModule();
    const mustBeZero = [1n << 24n, 1n << 31n, 1n << 34n, 1n << 38n, 1n << 46n, 1n << 47n, 1n << 49n, 1n << 55n, 1n << 62n];
    for (const bit of mustBeZero) expect(read(m, Field.TD_CTLS | bit).rax).toBe(FIELD_ID_INCORRECT);
  });

  it('a field the guest may not read → FIELD_NOT_READABLE; may not write → FIELD_NOT_WRITABLE; no such row → FIELD_ID_INCORRECT', () => {
    const m = tdxModule();
    expect(read(m, Field.EPTP)).toEqual({ rax: FIELD_NOT_READABLE, rdx: MD_FIELD_ID_NA, r8: 0n });
    expect(read(m, Field.HKID).rax).toBe(FIELD_NOT_READABLE);
    expect(write(m, Field.ATTRIBUTES, 1n, 1n)).toMatchObject({ rax: FIELD_NOT_WRITABLE, r8: 0n });
    expect(write(m, Field.EPTP, 1n, 1n).rax).toBe(FIELD_NOT_WRITABLE); // no read check on the write path
    expect(read(m, Field.MRTD | 6n).rax).toBe(FIELD_ID_INCORRECT); // MRTD has 6 elements
    expect(read(m, Field.L2_SEPT_ROOT_1).rax).toBe(FIELD_ID_INCORRECT); // a TD without L2 VMs has no such row
  });

  // CPUID_VALUES field code: element bit 0, subleaf 7:1, subleaf-NA 8, leaf 15:9, leaf bit 31 at 16.
  it('CPUID_VALUES: a leaf the lookup has → NOT_READABLE / NOT_WRITABLE (faulting: NOT_READABLE); one it lacks → FIELD_ID_INCORRECT', () => {
    const m = tdxModule();
    const cpuid = (leaf: number, subleafNa = true) => Field.CPUID_VALUES | BigInt(((leaf & 0x7f) << 9) | (subleafNa ? 0x100 : 0) | ((leaf >>> 31) << 16));
    expect(read(m, cpuid(0)).rax).toBe(FIELD_NOT_READABLE);
    expect(write(m, cpuid(0), 0n, 1n).rax).toBe(FIELD_NOT_WRITABLE);
    expect(write(m, cpuid(6), 0n, 1n).rax).toBe(FIELD_NOT_READABLE); // leaf 6 is faulting
    expect(read(m, cpuid(2)).rax).toBe(FIELD_ID_INCORRECT); // leaf 2 is not in cpuid_lookup
    expect(read(m, cpuid(4)).rax).toBe(FIELD_ID_INCORRECT); // leaf 4 has subleaf entries only
    expect(read(m, cpuid(0x80000008)).rax).toBe(FIELD_NOT_READABLE);
    expect(read(m, cpuid(0x80000003)).rax).toBe(FIELD_ID_INCORRECT); // leaf 3 is in cpuid_lookup; 0x80000003 (bit 16 set) is not
    expect(read(m, cpuid(0) | (1n << 17n)).rax).toBe(FIELD_ID_INCORRECT); // reserved field-code bit
    // A subleaf in bits 7:1 (subleaf-NA clear): get_cpuid_lookup_entry matches leaf and subleaf.
    const sub = (leaf: number, subleaf: number) => Field.CPUID_VALUES | BigInt(((leaf & 0x7f) << 9) | (subleaf << 1));
    expect(read(m, sub(4, 4)).rax).toBe(FIELD_NOT_READABLE); // leaf 4 subleaf 4 is in cpuid_lookup
    expect(read(m, sub(4, 5)).rax).toBe(FIELD_ID_INCORRECT); // subleaf 5 is not
    expect(read(m, sub(0xd, 0x40)).rax).toBe(FIELD_ID_INCORRECT); // leaf 0xD has subleaves 0..0x12: all 7 subleaf bits count
    expect(read(m, sub(0x1f, 2)).rax).toBe(FIELD_NOT_READABLE); // faulting
    expect(read(m, sub(1, 0)).rax).toBe(FIELD_NOT_READABLE); // a leaf without subleaves matches any subleaf
  });
});

describe('guest-readable TD fields: values and the writable NOTIFY_ENABLES', () => {
  it('reads NUM_VCPUS, MAX_VCPUS, GPAW (a bool: 1 for GPAW 52) and MRTD from the TD', () => {
    const m = tdxModule({ gpaWidth: 52 });
    expect(read(m, Field.NUM_VCPUS).r8).toBe(1n);
    expect(read(m, Field.MAX_VCPUS).r8).toBe(1n);
    expect(read(m, Field.GPAW).r8).toBe(1n);
    m.mrtd = Buffer.from(Array.from({ length: 48 }, (_, i) => i));
    expect(read(m, Field.MRTD | 1n).r8).toBe(0x0f0e0d0c0b0a0908n);
  });

  it('NOTIFY_ENABLES: the guest may set bit 0 (old value in R8); bit 1 is not writable', () => {
    const m = tdxModule();
    expect(write(m, Field.NOTIFY_ENABLES, 1n, 1n)).toMatchObject({ rax: 0n, r8: 0n });
    expect(read(m, Field.NOTIFY_ENABLES).r8).toBe(1n);
    expect(write(m, Field.NOTIFY_ENABLES, 2n, 2n).rax).toBe(FIELD_NOT_WRITABLE);
    expect(write(m, Field.NOTIFY_ENABLES, 2n, 3n).rax).toBe(FIELD_VALUE_NOT_VALID);
  });
});

// Every row of tdr_tdcs_lookup[] (test/helpers/tdr-tdcs-fields.ts, taken from the module's table, not
// the model's): md_find_entry_idx() finds a field code in [first, first + num_of_fields × num_of_elem)
// of a row of its class; the guest then reads it if guest_rd_mask is non-zero (else
// METADATA_FIELD_NOT_READABLE) and writes it only where guest_wr_mask allows (else NOT_WRITABLE); a code
// past every row of its class is METADATA_FIELD_ID_INCORRECT. CPUID_VALUES (class 0x14) encodes a leaf
// in its field code and is tested above; the L2_SEPT_ROOT rows are counted out of the table while
// NUM_L2_VMS is below their VM index (md_get_lookup_table), 0 here.
describe('TDG.VM.RD/WR over every row of tdr_tdcs_lookup[]', () => {
  const classOf = (id: bigint) => Number((id >> 56n) & 0x3fn);
  const codeOf = (id: bigint) => Number(id & 0xffffffn);
  const rows = TDR_TDCS_ROWS.filter(([name, id]) => classOf(id) !== 0x14 && !name.startsWith('L2_SEPT_ROOT'));
  const covered = (id: bigint) => TDR_TDCS_ROWS.some(([, rowId, elements]) =>
    classOf(rowId) === classOf(id) && codeOf(id) >= codeOf(rowId) && codeOf(id) < codeOf(rowId) + elements);

  it('reads the first and the last element of each row, and finds nothing past a row\'s end where no other row of its class starts', () => {
    const m = tdxModule();
    for (const [name, id, elements, readable] of rows) {
      const expected = readable ? 0n : FIELD_NOT_READABLE;
      expect([name, read(m, id, VM_RD).rax]).toEqual([name, expected]);
      expect([name, read(m, id + BigInt(elements - 1), VM_RD).rax]).toEqual([name, expected]);
      const past = id + BigInt(elements);
      if (!covered(past)) expect([name, read(m, past, VM_RD).rax]).toEqual([name, FIELD_ID_INCORRECT]);
    }
  });

  it('refuses a write of any bit to every row without guest-writable bits (METADATA_FIELD_NOT_WRITABLE)', () => {
    const m = tdxModule();
    for (const [name, id, , , writable] of rows) {
      if (writable) continue;
      expect([name, write(m, id, 0n, MASK_ALL).rax]).toEqual([name, FIELD_NOT_WRITABLE]);
    }
  });
});

describe('TD fields the module derives', () => {
  it('RTMR is four fields of six 8-byte elements: element 6 i + j is bytes 8 j .. 8 j + 7 of RTMR[i]', () => {
    const m = tdxModule();
    const RTMR = 0x1310000300000040n;
    for (let i = 0; i < 4; i++) m.rtmr[i] = Buffer.from(Array.from({ length: 48 }, (_, b) => 48 * i + b)); // every byte distinct
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 6; j++) {
        expect(read(m, RTMR + BigInt(6 * i + j), VM_RD).r8, `RTMR[${i}] element ${j}`).toBe(m.rtmr[i]!.readBigUInt64LE(8 * j));
      }
    }
  });

  it('GPAW reads 0 for a GPAW-48 TD (TDCS.GPAW is a bool)', () => {
    expect(read(tdxModule({ gpaWidth: 48 }), Field.GPAW).r8).toBe(0n);
  });

  // tdh_mng_init.c: CPUID(0x15).EBX is TSC_FREQUENCY (units of 25 MHz), EAX the fixed denominator 1,
  // ECX the fixed 25,000,000 Hz; the guest reads the same number from both.
  it('TSC_FREQUENCY is what the TD\'s CPUID(0x15) gives in EBX, over EAX = 1 and ECX = 25 MHz', () => {
    const m = tdxModule();
    const leaf15 = tdCpuid(0x15, 0, { vcpuIndex: 0, cr4: 0n, in64BitMode: true });
    if (leaf15.kind !== 'answer') throw new Error('CPUID(0x15) does not answer in a TD');
    expect([leaf15.regs[0], leaf15.regs[2]]).toEqual([1, 25_000_000]);
    const value = read(m, Field.TSC_FREQUENCY);
    expect(value.rax).toBe(0n);
    expect(value.r8).toBe(BigInt(leaf15.regs[1]));
    expect(value.r8).not.toBe(1n);
  });
});

