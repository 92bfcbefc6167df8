// The TD-scope metadata (TDR and TDCS fields) as TDG.VM.RD/WR reach it: how a field ID is
// checked and matched (`metadata_generic.c` md_check_as_single_element_id, md_find_entry_idx),
// what a guest may read and write (`metadata_td.c` md_td_get_element / md_td_read_element /
// md_td_write_element), and which element comes next (md_get_next_element_in_context), over the
// rows of `include/auto_gen/tdr_tdcs_fields_lookup.c` (intel/tdx-module TDX_1.5.01).
//
// Field ID layout (`tdx_api_defs.h` md_field_id_t): 23:0 field code, 31:24 reserved, 33:32 element
// size code, 37:34 last element in field, 46:38 last field in sequence, 49:47 reserved, 50 inc
// size, 51 write mask valid, 54:52 context code, 55 reserved, 61:56 class code, 62 reserved,
// 63 non-arch.
import { TdxStatus } from './status.js';
import { TD_CPUID_TABLE, TD_XFAM, tdCpuid } from './td-cpuid.js';
import { CONFIG_FLAGS_FLEXIBLE_PENDING_VE, TD_CTLS_PENDING_VE_DISABLE, type TdModule } from './td-module.js';
import { TDCS_VIRTUAL_VMX_MSRS } from './virtual-vmx-msrs.js';
import { MASK64 } from '../../shared/u64.js';

/** MD_FIELD_ID_NA: "no field" (after the last readable element, and the RDX of a failed version-1 read). */
export const MD_FIELD_ID_NA = 0xffff_ffff_ffff_ffffn;

const FIELD_CODE_MASK = 0xff_ffffn;
const CONTEXT_CODE_MASK = 0x7n << 52n;
const MD_CTX_TD = 1n << 52n;
/**
 * md_check_as_single_element_id(): reserved bits 31:24, 49:47, 55 and 62, last-element-in-field
 * 37:34 and last-field-in-sequence 46:38 must be 0. Element size, inc size, write-mask-valid and
 * context code are ignored; so is the non-arch bit 63 (neither checked nor compared).
 */
const MUST_BE_ZERO_FOR_ONE_ELEMENT = (0xffn << 24n) | (0xffffn << 34n) | (1n << 55n) | (1n << 62n);

const CPUID_CLASS = 0x14;

interface TdFieldRow {
  readonly name: string;
  /** The row's field ID as the table has it (context TD, element size code, non-arch bit). */
  readonly id: bigint;
  /** num_of_fields × num_of_elem: inc_size is 0 in every TD-scope row, so one field code per element. */
  readonly elements: number;
  /** guest_rd_mask / guest_wr_mask, already narrowed to the element size. */
  readonly guestRd: bigint;
  readonly guestWr: bigint;
}

const ALL = -1n;
function row(name: string, id: bigint, elements: number, guestRd = 0n, guestWr = 0n): TdFieldRow {
  const size = elementSizeMask(id);
  return { name, id, elements, guestRd: guestRd & size, guestWr: guestWr & size };
}

function elementSizeMask(id: bigint): bigint {
  const code = (id >> 32n) & 3n;
  return code === 3n ? MASK64 : (1n << (8n << code)) - 1n;
}

// tdr_tdcs_lookup[] in table order (the order md_get_next_element_in_context walks). The last
// three rows, L2_SEPT_ROOT_1..3, are counted out of the table while NUM_L2_VMS is below their VM
// index (md_get_lookup_table); the model's TDs have no L2 VMs, so they are left out.
const TD_FIELD_ROWS: readonly TdFieldRow[] = [
  row('FATAL', 0x8010000000000001n, 1),
  row('NUM_TDCX', 0x8010000200000002n, 1),
  row('CHLDCNT', 0x8010000300000004n, 1),
  row('LIFECYCLE_STATE', 0x8010000200000005n, 1),
  row('TDCX_PA', 0x8010000300000010n, 9),
  row('TD_UUID', 0x8010000300000020n, 4, ALL),
  row('HKID', 0x8110000100000001n, 1),
  row('PKG_CONFIG_BITMAP', 0x8110000300000002n, 1),
  row('HANDOFF_VERSION', 0x8210000100000000n, 1),
  row('SEAMDB_INDEX', 0x8210000300000001n, 1),
  row('SEAMDB_NONCE', 0x8210000300000002n, 4),
  row('NUM_VCPUS', 0x9010000200000001n, 1, ALL),
  row('NUM_ASSOC_VCPUS', 0x9010000200000002n, 1),
  row('OP_STATE', 0x9010000200000004n, 1),
  row('NUM_L2_VMS', 0x9010000100000005n, 1, ALL),
  row('ATTRIBUTES', 0x1110000300000000n, 1, ALL),
  row('XFAM', 0x1110000300000001n, 1, ALL),
  row('MAX_VCPUS', 0x1110000200000002n, 1, ALL),
  row('GPAW', 0x1110000000000003n, 1, ALL),
  row('EPTP', 0x1110000300000004n, 1),
  row('TSC_OFFSET', 0x111000030000000An, 1),
  row('TSC_MULTIPLIER', 0x111000030000000Bn, 1),
  row('TSC_FREQUENCY', 0x111000010000000Cn, 1, ALL),
  row('VIRTUAL_TSC', 0x111000030000000Dn, 1),
  row('NUM_CPUID_VALUES', 0x911000010000000En, 1),
  row('XBUFF_SIZE', 0x911000020000000Fn, 1),
  row('NOTIFY_ENABLES', 0x9110000300000010n, 1, 1n, 1n),
  row('HP_LOCK_TIMEOUT', 0x9110000300000011n, 1),
  row('VM_CTLS', 0x9110000300000012n, 4),
  row('CONFIG_FLAGS', 0x1110000300000016n, 1, ALL),
  row('TD_CTLS', 0x1110000300000017n, 1, ALL, 1n),
  row('CPUID_VALID', 0x9110000000000080n, 80),
  row('XBUFF_OFFSETS', 0x9110000200000800n, 19),
  row('TD_EPOCH', 0x9210000300000000n, 1),
  row('REFCOUNT', 0x9210000100000001n, 2),
  row('MRTD', 0x1310000300000000n, 6, ALL),
  row('MRCONFIGID', 0x1310000300000010n, 6, ALL),
  row('MROWNER', 0x1310000300000018n, 6, ALL),
  row('MROWNERCONFIG', 0x1310000300000020n, 6, ALL),
  row('RTMR', 0x1310000300000040n, 4 * 6, ALL),
  row('CPUID_VALUES', 0x9410000300000000n, 80 * 2),
  row('VIRTUAL_IA32_ARCH_CAPABILITIES', 0x961000030000010An, 1),
  // The field code is the MSR index; neither host nor guest may read or write them (masks 0): the
  // TD sees them only through RDMSR (virtual-vmx-msrs.ts).
  ...TDCS_VIRTUAL_VMX_MSRS.map(({ msr, name }) => row(`VIRTUAL_IA32_VMX_${name}`, 0x9610000300000000n | BigInt(msr), 1)),
  row('MIG_DEC_KEY_SET', 0x9810000000000001n, 1),
  row('EXPORT_COUNT', 0x9810000200000002n, 1),
  row('IMPORT_COUNT', 0x9810000200000003n, 1),
  row('MIG_EPOCH', 0x9810000200000004n, 1),
  row('BW_EPOCH', 0x9810000300000005n, 1),
  row('TOTAL_MB_COUNT', 0x9810000300000006n, 1),
  row('MIG_DEC_KEY', 0x9810000300000010n, 4),
  row('MIG_DEC_WORKING_KEY', 0x9810000300000014n, 4),
  row('MIG_ENC_KEY', 0x9810000300000018n, 4),
  row('MIG_ENC_WORKING_KEY', 0x981000030000001Cn, 4),
  row('MIG_VERSION', 0x9810000100000020n, 1),
  row('MIG_WORKING_VERSION', 0x9810000100000021n, 1),
  row('DIRTY_COUNT', 0x9810000300000030n, 1),
  row('MIG_COUNT', 0x9810000300000031n, 1),
  row('NUM_MIGS', 0x9810000100000032n, 1),
  row('NUM_MIGRATED_VCPUS', 0x9810000200000034n, 1),
  row('PRE_IMPORT_UUID', 0x9810000300000040n, 4, ALL),
  row('SERVTD_HASH', 0x9910000300000000n, 6, ALL),
  row('SERVTD_NUM', 0x9910000100000006n, 1, ALL),
  row('SERVTD_BINDINGS_TABLE', 0x9910000300000080n, 16, ALL),
  row('MIGSC_LINKS', 0x9A10000300000000n, 512),
  row('MSR_BITMAPS', 0x2010000300000000n, 512),
  row('SEPT_ROOT', 0x2110000300000000n, 512),
];

const fieldCodeOf = (id: bigint): number => Number(id & FIELD_CODE_MASK);
const classCodeOf = (id: bigint): number => Number((id >> 56n) & 0x3fn);

/** The row whose class matches and whose field-code range holds `id` (md_find_entry_idx), or -1. */
function findRow(id: bigint): number {
  const cls = classCodeOf(id);
  // A CPUID_VALUES field code encodes leaf/subleaf; the search uses only its element bit (0 or 1).
  const code = cls === CPUID_CLASS ? fieldCodeOf(id) & 1 : fieldCodeOf(id);
  return TD_FIELD_ROWS.findIndex((r) => {
    const first = fieldCodeOf(r.id);
    return classCodeOf(r.id) === cls && code >= first && code < first + r.elements;
  });
}

/**
 * A CPUID_VALUES element (md_td_get_element): reserved field-code bits 23:17 set, or a leaf /
 * subleaf the CPUID lookup lacks → FIELD_ID_INCORRECT. Otherwise the guest may neither read it
 * (guest_rd_mask 0, or a faulting leaf) nor write it.
 */
function cpuidElementStatus(id: bigint, write: boolean): bigint {
  const code = fieldCodeOf(id);
  if ((code >> 17) !== 0) return TdxStatus.METADATA_FIELD_ID_INCORRECT;
  const leaf = (((code >> 9) & 0x7f) | ((code >> 16) << 31)) >>> 0;
  const subleaf = ((code >> 8) & 1) !== 0 ? 0xffff_ffff : (code >> 1) & 0x7f;
  // get_cpuid_lookup_entry(): an entry for any subleaf, or for exactly this one.
  const entry = TD_CPUID_TABLE.find((e) => e.leaf === leaf && (e.subleaf === undefined || e.subleaf === subleaf));
  if (entry === undefined) return TdxStatus.METADATA_FIELD_ID_INCORRECT;
  // CPUID_VALID is !faulting for every leaf (tdh_mng_init.c); invalid reads fail before the mask check.
  if (entry.faulting || !write) return TdxStatus.METADATA_FIELD_NOT_READABLE;
  return TdxStatus.METADATA_FIELD_NOT_WRITABLE;
}

/** The value of one readable element, where the model holds it (every guest-readable row). */
function elementValue(td: TdModule, name: string, element: number): bigint | undefined {
  const c = td.config;
  switch (name) {
    case 'NUM_VCPUS': return BigInt(c.numVcpus);
    case 'MAX_VCPUS': return BigInt(c.maxVcpus);
    case 'ATTRIBUTES': return c.attributes;
    case 'XFAM': return TD_XFAM;
    case 'GPAW': return c.gpaWidth === 52 ? 1n : 0n; // TDCS.GPAW is a bool: 1 for GPAW 52
    // In 25 MHz units: CPUID 0x15 EBX, which the module computes from it (the crystal is 25 MHz, EAX 1).
    case 'TSC_FREQUENCY': {
      const leaf15 = tdCpuid(0x15, 0, { vcpuIndex: 0, cr4: 0n, in64BitMode: true });
      return leaf15.kind === 'answer' ? BigInt(leaf15.regs[1]) : undefined;
    }
    case 'NOTIFY_ENABLES': return td.notifyEnables;
    case 'CONFIG_FLAGS': return c.configFlags;
    case 'TD_CTLS': return td.tdCtls;
    case 'MRTD': return td.mrtd?.readBigUInt64LE(8 * element) ?? 0n;
    // RTMR[0..3], six 8-byte elements each (the field's 4 * 6 elements), as TDG.MR.RTMR.EXTEND left them.
    case 'RTMR': return td.rtmr[Math.floor(element / 6)]!.readBigUInt64LE(8 * (element % 6));
    // TDH.MNG.CREATE draws TD_UUID at random; the model has no TDH.MNG.CREATE and gives every TD
    // the UUID 0, so that a run stays a function of its input.
    case 'TD_UUID':
    // TD_PARAMS inputs the model's TDs leave 0 (it has no TDH.MNG.INIT).
    case 'MRCONFIGID':
    case 'MROWNER':
    case 'MROWNERCONFIG':
    // No L2 VMs, no import (PRE_IMPORT_UUID is never written), no service TDs (TDH.MR.FINALIZE
    // zeroes SERVTD_HASH when none is bound).
    case 'NUM_L2_VMS':
    case 'PRE_IMPORT_UUID':
    case 'SERVTD_HASH':
    case 'SERVTD_NUM':
    case 'SERVTD_BINDINGS_TABLE':
      return 0n;
    default: return undefined;
  }
}

export type VmRdResult = { status: bigint; value: bigint; next: bigint };

/** `field` with CONTEXT_CODE forced to TD: tdg_vm_rd_wr() ignores the guest's context code. */
function inTdContext(field: bigint): bigint {
  return (field & ~CONTEXT_CODE_MASK) | MD_CTX_TD;
}

/** is_null_field_id(): every bit set apart from the context code. */
function isNull(id: bigint): boolean {
  return (id | CONTEXT_CODE_MASK) === MD_FIELD_ID_NA;
}

/** The first readable row's first element at or after row `from`, or MD_FIELD_ID_NA. */
function firstReadableFrom(from: number): bigint {
  for (let i = from; i < TD_FIELD_ROWS.length; i++) if (TD_FIELD_ROWS[i]!.guestRd !== 0n) return TD_FIELD_ROWS[i]!.id;
  return MD_FIELD_ID_NA;
}

/**
 * md_get_next_element_in_context() after a read of `id` in row `index`: within the row, the next
 * field code with the rest of the guest's ID kept as given; past the row's last element, the
 * table's ID of the next row the guest can read; past the last, MD_FIELD_ID_NA.
 */
function nextReadableElement(id: bigint, index: number): bigint {
  const r = TD_FIELD_ROWS[index]!;
  if (fieldCodeOf(id) - fieldCodeOf(r.id) < r.elements - 1) return id + 1n;
  return firstReadableFrom(index + 1);
}

/** Looks `field` up for a guest access: the row, or a status that ends the access. */
function lookup(id: bigint, write: boolean): { index: number } | { status: bigint } {
  if ((id & MUST_BE_ZERO_FOR_ONE_ELEMENT) !== 0n) return { status: TdxStatus.METADATA_FIELD_ID_INCORRECT };
  const index = findRow(id);
  if (index < 0) return { status: TdxStatus.METADATA_FIELD_ID_INCORRECT };
  if (classCodeOf(id) === CPUID_CLASS) return { status: cpuidElementStatus(id, write) };
  return { index };
}

/**
 * TDG.VM.RD of `field` (tdg_vm_rd_wr(), version 0 or 1): status, value (0 on error) and, for
 * version 1, the next field ID (MD_FIELD_ID_NA on error). A null field ID asks version 1 for the
 * first readable field: status METADATA_FIRST_FIELD_ID_IN_CONTEXT.
 */
export function guestReadTdField(td: TdModule, field: bigint, version: number): VmRdResult {
  const id = inTdContext(field);
  if (version > 0 && isNull(id)) return { status: TdxStatus.METADATA_FIRST_FIELD_ID_IN_CONTEXT, value: 0n, next: firstReadableFrom(0) };
  const fail = (status: bigint): VmRdResult => ({ status, value: 0n, next: MD_FIELD_ID_NA });
  const found = lookup(id, false);
  if ('status' in found) return fail(found.status);
  const r = TD_FIELD_ROWS[found.index]!;
  if (r.guestRd === 0n) return fail(TdxStatus.METADATA_FIELD_NOT_READABLE);
  const value = elementValue(td, r.name, fieldCodeOf(id) - fieldCodeOf(r.id));
  if (value === undefined) throw new Error(`TD field ${r.name} is guest-readable but the model holds no value for it`);
  return { status: TdxStatus.SUCCESS, value: value & r.guestRd, next: version > 0 ? nextReadableElement(id, found.index) : MD_FIELD_ID_NA };
}

/**
 * TDG.VM.WR of `field` (md_td_write_element()): status and the old value (0 on error). Only
 * TD_CTLS and NOTIFY_ENABLES have guest-writable bits.
 */
export function guestWriteTdField(td: TdModule, field: bigint, value: bigint, requestMask: bigint): { status: bigint; old: bigint } {
  const fail = (status: bigint) => ({ status, old: 0n });
  const found = lookup(inTdContext(field), true);
  if ('status' in found) return fail(found.status);
  const r = TD_FIELD_ROWS[found.index]!;
  const writeMask = r.guestWr & requestMask;
  if (writeMask === 0n) return fail(TdxStatus.METADATA_FIELD_NOT_WRITABLE);
  const old = elementValue(td, r.name, 0)!;
  // md_check_forbidden_bits_unchanged(): requested bits the guest may not write are refused only
  // when their value would change.
  const forbidden = requestMask & ~r.guestWr;
  if (((old ^ value) & forbidden) !== 0n) return fail(TdxStatus.METADATA_FIELD_VALUE_NOT_VALID);
  const updated = (old & ~writeMask) | (value & writeMask);
  if (r.name === 'TD_CTLS') {
    // TD_CTLS special write: without CONFIG_FLAGS.FLEXIBLE_PENDING_VE the guest may rewrite
    // PENDING_VE_DISABLE but not change it (Linux disable_sept_ve() relies on the flag).
    const flexible = (td.config.configFlags & CONFIG_FLAGS_FLEXIBLE_PENDING_VE) !== 0n;
    if (!flexible && ((updated ^ old) & TD_CTLS_PENDING_VE_DISABLE) !== 0n) return fail(TdxStatus.METADATA_FIELD_VALUE_NOT_VALID);
    td.tdCtls = updated;
  } else {
    td.notifyEnables = updated;
  }
  return { status: TdxStatus.SUCCESS, old: old & r.guestRd };
}
