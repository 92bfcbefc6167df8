// Every fatal check of the guest stubs, reached by a scripted attack through the real stubs
// (guest/DEFENCES.md is the table check -> attack; each row below is one line of it). A row names
// the check's reason, the platform, the attack as an attack program (the fuzzer's own format, run
// by the fuzzer's executor: the same program can be replayed, mutated or shrunk) and, where the
// check is only reachable that way, the stub variant it runs against (the map-from-config fixture
// firmware, or a planted bug that lets the attack get past an earlier defence).
import { describe, expect, it } from 'vitest';
import { ABI } from '../../../src/boot/layout.js';
import { SNP_C_BIT } from '../../../src/boot/platforms.js';
import type { RawBootOptions } from '../../../src/cli/boot-options.js';
import type { Answer, AttackProgram, CallPoint, Decision, HostAction, LaunchAction } from '../../../src/fuzz/attack-program.js';
import type { FuzzStage } from '../../../src/fuzz/executor.js';
import { ghcbMsr, GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN, REGISTER_GHCB_REFUSED_GFN } from '../../../src/platform/snp/ghcb-msr.js';
import { TdvmcallStatus } from '../../../src/platform/tdx/status.js';
import { configWrite, FOREVER, imageWrite, mapOverride, payloadHeader, program, runAttack } from '../../helpers/attack-programs.js';

const M = 1n << 20n;
const E820 = { ram: 1, reserved: 2, unaccepted: 15 } as const;
const FW_RESERVED = { start: ABI.MV_FIRMWARE_RESERVED_GPA, end: ABI.MV_FIRMWARE_RESERVED_END };
/** The map the honest firmware builds for 128 MiB with 64 MiB pre-accepted. */
const honestMap = (memory = 128n * M) => [
  { addr: 0n, size: FW_RESERVED.start, type: E820.ram },
  { addr: FW_RESERVED.start, size: FW_RESERVED.end - FW_RESERVED.start, type: E820.reserved },
  { addr: FW_RESERVED.end, size: 64n * M - FW_RESERVED.end, type: E820.ram },
  { addr: 64n * M, size: memory - 64n * M, type: E820.unaccepted },
];
const TERM = (set: number, code: number) => new RegExp(`GHCB termination request: reason set ${set}, code ${code}$`);
const PAGE_IN_USE = 0x1000n; // the kernel's first workload chunk: its tag is read again at the end
const LAZY_PAGE_IN_USE = 0x4100000n; // with 256M/64M: a workload chunk above the 64 MiB pre-accept, accepted by the kernel
const LAZY_EXIT = 1; // the kernel stage's second exit: after the workload's lazy accepts (a 256M guest's kernel stage has 11)
/** MapGPA calls: the firmware's console page, then the kernel's 2 MiB buffer to shared and back, then its 16 KiB buffer to shared. */
const SMALL_BUFFER_TO_SHARED = 3;
/** With 2 vCPUs, 128M, workload 4M: the page the kernel makes AP 1's VMSA (the trace's rmpadjust with vmsa set). */
const AP1_VMSA = 0x7000n;
/** The kernel stage's exit 2 (with 2 vCPUs): the PSC sharing AP 1's GHCB page; the next is the AP Creation request. */
const LAST_EXIT_BEFORE_VMSA = 2;

export interface DefenceAttack {
  /** The fatal check (its reason string, or the termination it sends before a console exists). */
  check: string;
  platform: 'tdx' | 'snp';
  attack: string;
  /** The attack as an attack program (the fuzzer's format), run by the fuzzer's executor. */
  program: () => AttackProgram;
  /** Where the program's exit indices start counting (default: the boot's first exit). */
  stage?: FuzzStage;
  expected: RegExp;
  flags?: RawBootOptions;
}

const tdx = (decisions: Decision[], launch: LaunchAction[] = []) => program('tdx', decisions, launch);
const snp = (decisions: Decision[], launch: LaunchAction[] = []) => program('snp', decisions, launch);
const always = (point: CallPoint, answer: Answer): Decision => ({ at: 'call', point, occurrence: 0, repeat: FOREVER, answer });
const once = (point: CallPoint, answer: Answer, occurrence = 0): Decision => ({ at: 'call', point, occurrence, answer });
const atExit = (exitIndex: number, action: HostAction): Decision => ({ at: 'exit', exitIndex, action });
const GHCB_GFN = ABI.MV_GHCB_GPA >> 12n;
/** Offsets in the payload header (struct mv_payload_header). */
const payloadWrite = (offset: number, value: (h: Buffer) => bigint, size: 4 | 8) => (): AttackProgram => {
  const h = payloadHeader();
  return tdx([], [imageWrite(h.gpa + BigInt(offset), value(h.bytes), size)]);
};

export const DEFENCE_ATTACKS: DefenceAttack[] = [
  // ---- firmware: the VMM-written config page (part of the initial image it loads) ----
  { check: 'fw_config_bad_magic', platform: 'tdx', attack: 'config magic flipped', program: () => tdx([], [configWrite(0, ABI.MV_FW_CONFIG_MAGIC ^ 1n, 4)]), expected: /^fw_config_bad_magic/ },
  { check: 'fw_config_bad_magic', platform: 'snp', attack: 'config magic flipped', program: () => snp([], [configWrite(0, ABI.MV_FW_CONFIG_MAGIC ^ 1n, 4)]), expected: /^fw_config_bad_magic/ },
  { check: 'fw_config_bad_version', platform: 'tdx', attack: 'config version 2', program: () => tdx([], [configWrite(4, 2n, 2)]), expected: /^fw_config_bad_version/ },
  { check: 'fw_config_bad_version', platform: 'tdx', attack: 'config size 0', program: () => tdx([], [configWrite(6, 0n, 2)]), expected: /^fw_config_bad_version/ },
  { check: 'fw_config_bad_memory_bytes', platform: 'tdx', attack: 'memory size not 4K aligned (the memory description)', program: () => ({ ...tdx([]), memoryDescription: { memoryBytes: 128n * M + 1n } }), expected: /^fw_config_bad_memory_bytes/ },
  { check: 'fw_config_bad_memory_bytes', platform: 'tdx', attack: 'config memory 16 MiB, below the minimum', program: () => tdx([], [configWrite(8, 16n * M)]), expected: /^fw_config_bad_memory_bytes/ },
  { check: 'fw_config_bad_memory_bytes', platform: 'tdx', attack: 'config memory one page past the largest guest', program: () => tdx([], [configWrite(8, ABI.MV_MAX_MEMORY_BYTES + 0x1000n)]), expected: /^fw_config_bad_memory_bytes/ },
  { check: 'fw_config_bad_accept_mode', platform: 'tdx', attack: 'accept mode 7', program: () => tdx([], [configWrite(0x28, 7n, 4)]), expected: /^fw_config_bad_accept_mode/ },
  { check: 'fw_config_bad_accept_unit', platform: 'tdx', attack: 'accept unit 12K', program: () => tdx([], [configWrite(0x2c, 0x3000n, 4)]), expected: /^fw_config_bad_accept_unit/ },
  { check: 'fw_config_bad_flags', platform: 'tdx', attack: 'flags 2 (bit 0 is MV_FW_CONFIG_FLAG_LINUX)', program: () => tdx([], [configWrite(0x34, 2n, 4)]), expected: /^fw_config_bad_flags/ },
  { check: 'fw_config_bad_linux_entry', platform: 'tdx', attack: 'the Linux flag with an entry inside the firmware range', program: () => tdx([], [configWrite(0x34, 1n, 4)]), expected: /^fw_config_bad_linux_entry/ },
  { check: 'fw_config_bad_linux_entry', platform: 'tdx', attack: 'the Linux flag with an entry at the end of RAM', program: () => tdx([], [configWrite(0x34, 1n, 4), configWrite(0x38, 128n * M)]), expected: /^fw_config_bad_linux_entry/ },
  { check: 'fw_config_bad_guest_image_entry', platform: 'tdx', attack: 'entry point 0', program: () => tdx([], [configWrite(0x38, 0n)]), expected: /^fw_config_bad_guest_image_entry/ },
  { check: 'fw_config_bad_guest_image_entry', platform: 'tdx', attack: 'entry point at the end of the guest-image window', program: () => tdx([], [configWrite(0x38, ABI.MV_GUEST_IMAGE_LIMIT)]), expected: /^fw_config_bad_guest_image_entry/ },

  // ---- firmware entry (firmware/entry.S): the C-bit the VMM gives before any #VC handler exists ----
  // GHCB spec §2.3.1 (MSR protocol CPUID): the response is 0x005 with GHCBData[31:30] naming the register
  // asked for; Linux __sev_cpuid_hv_msr refuses anything else, and a C-bit outside [32, 51] (the E row has 5).
  { check: 'SNP entry: C-bit above 51', platform: 'snp', attack: 'the entry code\'s CPUID 0x8000001F EBX request (the first MSR-protocol CPUID) answered with C-bit 52; no console yet', program: () => snp([once('snp.msr.cpuid', { kind: 'vmgexit', effect: 'none', msr: ghcbMsr.cpuidResp(52, 1) })]), expected: TERM(0, 0) },
  { check: 'SNP entry: malformed CPUID answer', platform: 'snp', attack: 'the entry code\'s CPUID request answered with the honest C-bit under response code 0x007 (not 0x005); no console yet', program: () => snp([once('snp.msr.cpuid', { kind: 'vmgexit', effect: 'none', msr: (ghcbMsr.cpuidResp(SNP_C_BIT, 1) & ~0xfffn) | 0x007n })]), expected: TERM(0, 0) },
  { check: 'SNP entry: malformed CPUID answer', platform: 'snp', attack: 'the entry code\'s CPUID request for EBX answered with the honest C-bit as the answer for EAX (GHCBData[31:30] = 0); no console yet', program: () => snp([once('snp.msr.cpuid', { kind: 'vmgexit', effect: 'none', msr: ghcbMsr.cpuidResp(SNP_C_BIT, 0) })]), expected: TERM(0, 0) },

  // ---- platform protocols (guest/lib/platform.c) ----
  { check: 'tdx_accept_already_accepted', platform: 'tdx', attack: 'PAGE.ADD of a page inside the pre-accepted range before launch', program: () => tdx([], [{ kind: 'tdx.page-add', gpa: 0x600000n, fill: 0 }]), expected: /^tdx_accept_already_accepted gpa=0x600000/ },
  { check: 'tdx_accept_failed', platform: 'tdx', attack: 'a host SEAMCALL keeps the SEPT entry of GPA 0 locked (OPERAND_BUSY on every retry)', program: () => tdx([], [{ kind: 'tdx.lock-entry', gpa: 0n, level: 1 }]), expected: /^tdx_accept_failed gpa=0x0 status=0x80000200/ },
  { check: 'tdx_map_gpa_failed', platform: 'tdx', attack: 'MapGPA answers INVALID_OPERAND', program: () => tdx([always('tdx.mapGpa', { kind: 'vmcall-return', effect: 'none', regs: { r10: TdvmcallStatus.INVALID_OPERAND } })]), expected: /^tdx_map_gpa_failed/ },
  { check: 'tdx_map_gpa_retry_out_of_range', platform: 'tdx', attack: 'MapGPA RETRY with a resume address before the range', program: () => tdx([always('tdx.mapGpa', { kind: 'map-gpa', convertBytes: 0n, status: TdvmcallStatus.RETRY, resumeDelta: -0x1000n })]), expected: /^tdx_map_gpa_retry_out_of_range/ },
  // TDX GHCI TDG.VP.VMCALL<MapGPA>: a RETRY's R11 is where to resume, inside [start, end) (Linux tdx.c tdx_map_gpa).
  { check: 'tdx_map_gpa_retry_out_of_range', platform: 'tdx', attack: 'the first MapGPA (the firmware\'s 4 KiB console page) answered RETRY with the resume address at the end of the range, nothing converted', program: () => tdx([once('tdx.mapGpa', { kind: 'map-gpa', convertBytes: 0n, status: TdvmcallStatus.RETRY, resumeDelta: 0x1000n })]), expected: /^tdx_map_gpa_retry_out_of_range 0x/ },
  { check: 'tdx_map_gpa_no_progress', platform: 'tdx', attack: 'MapGPA RETRY at the start address, forever', program: () => tdx([always('tdx.mapGpa', { kind: 'map-gpa', convertBytes: 0n, status: TdvmcallStatus.RETRY, resumeDelta: 0n })]), expected: /^tdx_map_gpa_no_progress/ },
  { check: 'snp_psc_failed (MSR protocol)', platform: 'snp', attack: 'the GHCB page\'s own PSC (MSR protocol) answers error 1; no console yet', program: () => snp([once('snp.msr.psc', { kind: 'vmgexit', effect: 'none', msr: ghcbMsr.pscResp(1) })]), expected: TERM(1, 1) },
  // GHCB spec §2.3.1: the PSC response code is 0x015; Linux early_set_pages_state terminates on another.
  { check: 'snp_psc_failed (MSR protocol)', platform: 'snp', attack: 'the GHCB page\'s own PSC (MSR protocol) done, but answered with no error under the registration response code (0x013, not 0x015); no console yet', program: () => snp([once('snp.msr.psc', { kind: 'vmgexit', effect: 'honest', msr: (ghcbMsr.pscResp(0) & ~0xfffn) | 0x013n })]), expected: TERM(1, 1) },
  { check: 'snp_psc_ghcb_error', platform: 'snp', attack: 'PSC answered with SW_EXITINFO1 = 1', program: () => snp([always('snp.ghcb.psc', { kind: 'vmgexit', effect: 'honest', ghcb: { swExitInfo1: 1n } })]), expected: /^snp_psc_ghcb_error/ },
  { check: 'snp_psc_failed', platform: 'snp', attack: 'PSC answered with an error in SW_EXITINFO2', program: () => snp([always('snp.ghcb.psc', { kind: 'vmgexit', effect: 'honest', ghcb: { swExitInfo2: (1n << 32n) | 2n } })]), expected: /^snp_psc_failed/ },
  { check: 'snp_psc_header_reserved', platform: 'snp', attack: 'PSC header reserved field set', program: () => snp([always('snp.ghcb.psc', { kind: 'vmgexit', effect: 'honest', pscHeader: { reserved: 1 } })]), expected: /^snp_psc_header_reserved/ },
  { check: 'snp_psc_backwards', platform: 'snp', attack: 'PSC end_entry grows', program: () => snp([always('snp.ghcb.psc', { kind: 'vmgexit', effect: 'honest', pscHeader: { endEntry: 0xffff } })]), expected: /^snp_psc_backwards/ },
  // GHCB spec §4.1.6 (Page State Change): the hypervisor advances cur_entry; Linux vmgexit_psc refuses one that goes back.
  { check: 'snp_psc_backwards', platform: 'snp', attack: 'the second GHCB PSC (the firmware\'s, of many 2M entries) done, answered with cur_entry 1; the guest\'s retry from entry 1 answered with cur_entry 0', program: () => snp([once('snp.ghcb.psc', { kind: 'vmgexit', effect: 'honest', pscHeader: { curEntry: 1 } }, 1), once('snp.ghcb.psc', { kind: 'vmgexit', effect: 'honest', pscHeader: { curEntry: 0 } }, 2)]), expected: /^snp_psc_backwards .*cur_entry=0x0/ },
  { check: 'snp_psc_no_progress', platform: 'snp', attack: 'every GHCB PSC answered without doing anything (no progress, no error)', program: () => snp([always('snp.ghcb.psc', { kind: 'vmgexit', effect: 'none' })]), expected: /^snp_psc_no_progress/ },
  { check: 'snp_pvalidate_unchanged (validate)', platform: 'snp', attack: 'an extra page validated at launch; the PSC leaves it alone (it is private already)', program: () => snp([], [{ kind: 'snp.launch-page', gpa: 0x600000n, fill: 0xa5 }]), expected: /^snp_pvalidate_unchanged va=0x600000 rc=255 validate/ },
  { check: 'snp_pvalidate_unchanged (rescind)', platform: 'snp', attack: 'the GHCB page re-assigned before launch (not validated); its rescind finds nothing to change; no console yet', program: () => snp([], [{ kind: 'snp.rmpupdate', spa: ABI.MV_GHCB_GPA, assigned: true, pageSize: '4k', gpa: ABI.MV_GHCB_GPA }]), expected: TERM(1, 2) },
  { check: 'snp register GHCB', platform: 'snp', attack: 'GHCB registration answered with (and registered at) the next GFN; no console yet', program: () => snp([always('snp.msr.registerGhcb', { kind: 'ghcb-registration', response: 'other-gfn', gfnDelta: 1n })]), expected: TERM(1, 0) },
  // A hypervisor refuses a GHCB GPA by answering the registration with a GFN of all ones (GHCB spec
  // "GHCB GPA Registration"; KVM commit 0c76b1d08280: "otherwise return -1"). Linux
  // snp_register_ghcb_early terminates on any GFN but its own, so a refusal is fatal: for the
  // firmware's GHCB (the BSP's first registration) and for an AP's own GHCB (the kernel's
  // second registration with 2 vCPUs, guest/kernel/smp.c).
  // The same refusal as the GHCB MSR value itself (what a finding that lied with the raw response shows).
  { check: 'snp register GHCB', platform: 'snp', attack: 'GHCB registration answered 0x013 with GFN all ones as a raw MSR value; no console yet', program: () => snp([always('snp.msr.registerGhcb', { kind: 'vmgexit', effect: 'none', msr: ghcbMsr.registerResp(REGISTER_GHCB_REFUSED_GFN) })]), expected: TERM(1, 0) },
  { check: 'snp register GHCB', platform: 'snp', attack: 'GHCB registration refused (GFN all ones); no console yet', program: () => snp([always('snp.msr.registerGhcb', { kind: 'ghcb-registration', response: 'refuse' })]), expected: TERM(1, 0) },
  { check: 'snp register GHCB', platform: 'snp', attack: 'AP 1\'s GHCB registration refused (GFN all ones), 2 vCPUs; the BSP\'s was registered', flags: { vcpus: '2' }, program: () => snp([once('snp.msr.registerGhcb', { kind: 'ghcb-registration', response: 'refuse' }, 1)]), expected: TERM(1, 0) },
  // GHCB spec §2.3.1: the registration response code is 0x013; Linux snp_register_ghcb_early terminates on another.
  { check: 'snp register GHCB', platform: 'snp', attack: 'GHCB registration done, answered with its GFN under the PSC response code (0x015, not 0x013); no console yet', program: () => snp([always('snp.msr.registerGhcb', { kind: 'vmgexit', effect: 'honest', msr: (ghcbMsr.registerResp(GHCB_GFN) & ~0xfffn) | 0x015n })]), expected: TERM(1, 0) },
  { check: 'snp SEV info: protocol', platform: 'snp', attack: 'SEV_INFO offers GHCB protocol 1 only', program: () => snp([always('snp.msr.sevInfo', { kind: 'vmgexit', effect: 'none', msr: ghcbMsr.sevInfoResp(1, 1, SNP_C_BIT) })]), expected: TERM(0, 1) },
  // GHCB spec §2.3.1: the SEV_INFO response code is 0x001; Linux sev_es_negotiate_protocol refuses another.
  { check: 'snp SEV info: protocol', platform: 'snp', attack: 'SEV_INFO\'s honest protocols and C-bit under the HV features response code (0x081, not 0x001)', program: () => snp([always('snp.msr.sevInfo', { kind: 'vmgexit', effect: 'none', msr: (ghcbMsr.sevInfoResp(GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN, SNP_C_BIT) & ~0xfffn) | 0x081n })]), expected: TERM(0, 1) },
  { check: 'snp SEV info: C-bit', platform: 'snp', attack: 'SEV_INFO reports another C-bit position than CPUID', program: () => snp([always('snp.msr.sevInfo', { kind: 'vmgexit', effect: 'none', msr: ghcbMsr.sevInfoResp(GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN, SNP_C_BIT - 1) })]), expected: TERM(0, 0) },
  // Linux setup_cpuid_table: no table, or COUNT 0, terminates with (SEV_TERM_SET_LINUX,
  // GHCB_TERM_CPUID) rather than asking the hypervisor. The C-bit range check on the table's
  // answer, and an empty table launched as page type CPUID, are S rows (they need table bytes).
  { check: 'CPUID table empty', platform: 'snp', attack: 'no CPUID page (launched as a ZERO page): the first CPUID after the #VC handler exists finds COUNT 0', program: () => snp([], [{ kind: 'snp.cpuid-page', type: 'ZERO' }]), expected: TERM(1, 4) },
  // GHCB spec §2.3.1: HV features response 0x081; Linux get_hv_features terminates on another code.
  { check: 'snp HV features answer', platform: 'snp', attack: 'the HV features request (MSR protocol) answered with SNP and AP creation under the SEV_INFO response code (0x001, not 0x081), 2 vCPUs', flags: { vcpus: '2' }, program: () => snp([always('snp.msr.hvFeatures', { kind: 'vmgexit', effect: 'honest', msr: (ghcbMsr.hvFeaturesResp(3n) & ~0xfffn) | 0x001n })]), expected: TERM(0, 0) },
  // TDX module tdg_mem_page_accept.c: a 4K ACCEPT of a page already accepted is TDX_PAGE_ALREADY_ACCEPTED.
  { check: 'tdx_accept_already_accepted (4K ACCEPT)', platform: 'tdx', attack: 'MapGPA(shared) of the kernel\'s 16 KiB conversion buffer flips only the VMM\'s shared EPT and keeps the private pages: its re-accept (4K ACCEPTs, the range is under 2 MiB) finds them accepted', program: () => tdx([once('tdx.mapGpa', { kind: 'map-gpa', convertBytes: 1n << 40n, status: 0n, sharedEptOnly: true }, SMALL_BUFFER_TO_SHARED)]), expected: /^tdx_accept_already_accepted gpa=0x[0-9a-f]+ status=/ },
  { check: 'snp_pvalidate_unchanged (2M PVALIDATE)', platform: 'snp', attack: 'a memory map that also lists the kernel range as unaccepted, past the planted e820-unchecked decompressor: its 2M PVALIDATE of memory the firmware validated at 2M gives CF=1', flags: { variant: 'e820-unchecked' }, program: () => snp([], mapOverride([...honestMap().slice(0, 3), { addr: 16n * M, size: 16n * M, type: E820.unaccepted }, honestMap()[3]!])), expected: /^snp_pvalidate_unchanged va=0x1000000 rc=255 validate/ },
  { check: 'accept_unaligned_range', platform: 'tdx', attack: 'a memory map with an unaligned unaccepted entry, past the planted e820-unchecked decompressor', program: () => tdx([], mapOverride([...honestMap().slice(0, 3), { addr: 64n * M, size: 0x1800n, type: E820.unaccepted }, { addr: 64n * M + 0x2000n, size: 64n * M - 0x2000n, type: E820.unaccepted }])), flags: { variant: 'e820-unchecked' }, expected: /^accept_unaligned_range/ },

  // ---- exceptions (guest/lib/cpu.c): every one is fatal ----
  { check: 'unexpected_ve', platform: 'tdx', attack: 'an accepted page in use is removed and re-added (BLOCK, TRACK, REMOVE, AUG) at the kernel stage\'s first exit', stage: 'kernel', program: () => tdx([atExit(0, { kind: 'tdx.replay-zeroed', gpa: PAGE_IN_USE, level: 0 })]), expected: /^unexpected_ve vector=20 .* ve_reason=48 ve_gpa=0x1/ },
  { check: 'unexpected_vc', platform: 'snp', attack: 'a validated page in use is PSMASHed and re-assigned (RMPUPDATE) at the kernel stage\'s first exit', stage: 'kernel', program: () => snp([atExit(0, { kind: 'snp.unvalidate', spa: PAGE_IN_USE })]), expected: /^unexpected_vc vector=29 error=0x404 / },

  // ---- decompressor: the firmware's memory map (via the map-from-config fixture firmware) ----
  ...([
    ['e820_bad_entry_count', 'entry count 129', { e820: honestMap(), count: 129 }],
    ['e820_empty_entry', 'an entry of size 0', { e820: [...honestMap(), { addr: 128n * M, size: 0n, type: E820.ram }] }],
    ['e820_unaligned_entry', 'an entry at 0x1001', { e820: [{ addr: 0x1001n, size: 0x1000n, type: E820.ram }, ...honestMap().slice(1)] }],
    ['e820_unaligned_entry', 'an entry whose size ends 2 KiB into a page', { e820: [...honestMap().slice(0, 3), { addr: 64n * M, size: 64n * M - 0x800n, type: E820.unaccepted }] }],
    ['e820_entry_out_of_range', 'an entry that wraps around 2^64', { e820: [...honestMap(), { addr: (1n << 64n) - 0x1000n, size: 0x2000n, type: E820.reserved }] }],
    ['e820_entry_out_of_range', 'an entry that ends past the largest guest', { e820: [...honestMap(), { addr: ABI.MV_MAX_MEMORY_BYTES - 0x1000n, size: 0x2000n, type: E820.reserved }] }],
    ['e820_entry_beyond_memory', 'unaccepted RAM past the end of memory', { e820: [...honestMap().slice(0, 3), { addr: 64n * M, size: 128n * M, type: E820.unaccepted }] }],
    ['e820_unknown_type', 'type 7', { e820: [...honestMap().slice(0, 3), { addr: 64n * M, size: 64n * M, type: 7 }] }],
    ['e820_reserved_field_set', 'reserved field 1', { e820: [...honestMap().slice(0, 3), { addr: 64n * M, size: 64n * M, type: E820.unaccepted, reserved: 1 }] }],
    ['e820_unsorted', 'entries out of order', { e820: [honestMap()[0]!, honestMap()[3]!, honestMap()[1]!, honestMap()[2]!] }],
    ['e820_overlap', 'unaccepted RAM overlapping accepted RAM', { e820: [...honestMap().slice(0, 3), { addr: 62n * M, size: 66n * M, type: E820.unaccepted }] }],
    ['e820_usable_over_firmware', 'the firmware range as RAM', { e820: [{ addr: 0n, size: 64n * M, type: E820.ram }, honestMap()[3]!] }],
    ['bad_accept_unit', 'accept unit 12K in the boot params', { e820: honestMap(), acceptUnit: 0x3000 }],
    ['kernel_range_not_usable_ram', 'no RAM at the kernel load address', { e820: [honestMap()[0]!, honestMap()[1]!, { addr: FW_RESERVED.end, size: 8n * M, type: E820.ram }] }],
  ] as const).map(([check, attack, map]): DefenceAttack => ({
    check, platform: 'tdx', attack: `memory map: ${attack}`, flags: { variant: 'map-from-config' },
    program: () => tdx([], mapOverride(map.e820, { ...('count' in map ? { count: map.count } : {}), ...('acceptUnit' in map ? { acceptUnit: map.acceptUnit } : {}) })),
    expected: new RegExp(`^${check}`),
  })),
  { check: 'no_room_for_acceptance_bitmap', platform: 'tdx', attack: 'memory map: RAM ends where the kernel does', flags: { variant: 'map-from-config' }, program: () => {
    const kernelEnd = ABI.MV_KERNEL_LOAD_GPA + ((BigInt(payloadHeader({ variant: 'map-from-config' }).bytes.readUInt32LE(12)) + 0x1fffffn) & ~0x1fffffn);
    return tdx([], mapOverride([honestMap()[0]!, honestMap()[1]!, { addr: FW_RESERVED.end, size: kernelEnd - FW_RESERVED.end, type: E820.ram }]));
  }, expected: /^no_room_for_acceptance_bitmap/ },

  // ---- decompressor: the compressed kernel in the initial image the VMM loads ----
  { check: 'payload_bad_magic', platform: 'tdx', attack: 'payload magic flipped', program: payloadWrite(0, (h) => BigInt(h.readUInt32LE(0) ^ 1), 4), expected: /^payload_bad_magic/ },
  { check: 'payload_truncated', platform: 'tdx', attack: 'compressed size beyond the image', program: payloadWrite(4, () => 0x7fffffffn, 4), expected: /^payload_truncated/ },
  { check: 'payload_bad_layout', platform: 'tdx', attack: 'load address moved', program: payloadWrite(16, () => 0x2000000n, 8), expected: /^payload_bad_layout/ },
  { check: 'payload_bad_layout', platform: 'tdx', attack: 'image larger than the memory it occupies', program: payloadWrite(8, (h) => BigInt(h.readUInt32LE(12) + 0x1000), 4), expected: /^payload_bad_layout/ },
  { check: 'payload_bad_layout', platform: 'tdx', attack: 'memory (with the stack) past the kernel window', program: payloadWrite(12, () => ABI.MV_KERNEL_MAX_BYTES, 4), expected: /^payload_bad_layout/ },
  { check: 'payload_bad_entry', platform: 'tdx', attack: 'entry point outside the image', program: payloadWrite(24, () => 0x100n, 8), expected: /^payload_bad_entry/ },
  { check: 'payload_bad_entry', platform: 'tdx', attack: 'entry point at the end of the image', program: payloadWrite(24, (h) => h.readBigUInt64LE(16) + BigInt(h.readUInt32LE(8)), 8), expected: /^payload_bad_entry/ },
  { check: 'payload_reserved_field_set', platform: 'tdx', attack: 'reserved field 1', program: payloadWrite(36, () => 1n, 4), expected: /^payload_reserved_field_set/ },
  { check: 'kernel_decompress_failed', platform: 'tdx', attack: 'LZ4 block cut to 3 bytes', program: payloadWrite(4, () => 3n, 4), expected: /^kernel_decompress_failed/ },
  { check: 'kernel_decompress_short', platform: 'tdx', attack: 'image size claims 16 more bytes than the block holds', program: payloadWrite(8, (h) => BigInt(h.readUInt32LE(8) + 16), 4), expected: /^kernel_decompress_short/ },
  { check: 'kernel_crc_mismatch', platform: 'tdx', attack: 'CRC-32 flipped', program: payloadWrite(32, (h) => BigInt((h.readUInt32LE(32) ^ 1) >>> 0), 4), expected: /^kernel_crc_mismatch/ },

  // ---- kernel ----
  { check: 'workload_too_large', platform: 'tdx', attack: 'config workload 8 GiB (more than 4096 chunks)', program: () => tdx([], [configWrite(0x18, 8n << 30n)]), expected: /^workload_too_large/ },
  { check: 'out_of_memory', platform: 'tdx', attack: 'config workload as large as the guest', program: () => tdx([], [configWrite(0x18, 128n * M)]), expected: /^out_of_memory/ },
  { check: 'tdx_accepted_page_not_zero', platform: 'tdx', attack: 'a non-zero page PAGE.ADDed in the kernel\'s lazy range, past the planted ALREADY_ACCEPTED-as-success', flags: { variant: 'accept-already-accepted', memory: '256M', workload: '64M' }, program: () => tdx([], [{ kind: 'tdx.page-add', gpa: 0x4200000n, fill: 0x5a }]), expected: /^tdx_accepted_page_not_zero 0x4200000/ },
  { check: 'tdx_reaccepted_page_not_zero', platform: 'tdx', attack: 'MapGPA(shared) keeps the private pages; the re-accept finds them, past the planted ALREADY_ACCEPTED-as-success', flags: { variant: 'accept-already-accepted' }, program: () => tdx([always('tdx.mapGpa', { kind: 'map-gpa', convertBytes: 1n << 40n, status: 0n, sharedEptOnly: true })]), expected: /^tdx_reaccepted_page_not_zero/ },
  { check: 'workload_tag_mismatch', platform: 'tdx', attack: 'a workload page removed and re-added, past the planted #VE trust (which accepts it again, zeroed)', flags: { variant: 'trusts-injected-exception' }, stage: 'kernel', program: () => tdx([atExit(0, { kind: 'tdx.replay-zeroed', gpa: PAGE_IN_USE, level: 0 })]), expected: /^workload_tag_mismatch 0x1000/ },
  { check: 'workload_pattern_mismatch', platform: 'tdx', attack: 'a filled workload page removed and re-added before it is verified, at the kernel stage\'s first exit (the workload\'s first lazy ACCEPT, an EPT violation at 64 MiB), past the planted #VE trust', flags: { variant: 'trusts-injected-exception', memory: '256M', workload: '64M' }, stage: 'kernel', program: () => tdx([atExit(0, { kind: 'tdx.replay-zeroed', gpa: PAGE_IN_USE, level: 0 })]), expected: /^workload_pattern_mismatch 0x1000/ },
  { check: 'map_range_out_of_bounds', platform: 'snp', attack: 'an unaccepted entry past the largest guest, past the planted e820-unchecked decompressor', flags: { variant: 'e820-unchecked' }, program: () => snp([], mapOverride([...honestMap(), { addr: ABI.MV_MAX_MEMORY_BYTES - 0x1000n, size: 0x2000n, type: E820.unaccepted }])), expected: /^map_range_out_of_bounds/ },
  { check: 'page_table_pool_exhausted', platform: 'snp', attack: 'a memory map with 124 small unaccepted ranges 1 GiB apart: each accepted one needs a page table of its own', flags: { variant: 'map-from-config', memory: '128G' }, program: () => {
    const map: { addr: bigint; size: bigint; type: number }[] = honestMap(1n << 30n);
    for (let k = 1n; k <= 124n; k++) map.push({ addr: k << 30n, size: 0x1000n, type: E820.unaccepted });
    return snp([], mapOverride(map));
  }, expected: /^page_table_pool_exhausted/ },
  { check: 'allocator_double_free', platform: 'tdx', attack: 'overlapping RAM entries, past the planted e820-unchecked decompressor', flags: { variant: 'e820-unchecked' }, program: () => tdx([], mapOverride([...honestMap().slice(0, 3), { addr: 60n * M, size: 68n * M, type: E820.unaccepted }])), expected: /^(allocator_double_free|tdx_accept_already_accepted)/ },

  // ---- several vCPUs on SNP: the kernel creates the APs (guest/kernel/smp.c start_aps_snp) ----
  { check: 'snp_no_ap_creation', platform: 'snp', attack: 'HV features (MSR protocol) without AP creation, 2 vCPUs', flags: { vcpus: '2' }, program: () => snp([always('snp.msr.hvFeatures', { kind: 'vmgexit', effect: 'honest', msr: ghcbMsr.hvFeaturesResp(1n) })]), expected: /^snp_no_ap_creation/ },
  { check: 'snp_ap_create_failed', platform: 'snp', attack: 'the AP Creation request answered with SW_EXITINFO1 = 2 (error), 2 vCPUs', flags: { vcpus: '2' }, program: () => snp([always('snp.ghcb.other', { kind: 'vmgexit', effect: 'none', ghcb: { swExitInfo1: 2n } })]), expected: /^snp_ap_create_failed 0x1/ },
  { check: 'ap_start_timeout', platform: 'snp', attack: 'the AP Creation request acknowledged but the AP never run, 2 vCPUs', flags: { vcpus: '2' }, program: () => snp([always('snp.ghcb.other', { kind: 'vmgexit', effect: 'none', ghcb: { swExitInfo1: 0n } })]), expected: /^ap_start_timeout 0x1/ },
  // snp_set_vmsa_failed is not VMM-reachable (guest/DEFENCES.md): the hypervisor's strongest move
  // on the VMSA page, at its last chance before the kernel writes the page and RMPADJUSTs it.
  { check: 'unexpected_vc (the VMSA page)', platform: 'snp', attack: 'AP 1\'s VMSA page re-assigned unvalidated (PSMASH, RMPUPDATE) at the kernel\'s last exit before it writes the page and RMPADJUSTs it (the PSC sharing AP 1\'s GHCB), 2 vCPUs: the first write faults, no RMPADJUST runs', flags: { vcpus: '2' }, stage: 'kernel', program: () => snp([atExit(LAST_EXIT_BEFORE_VMSA, { kind: 'snp.unvalidate', spa: AP1_VMSA })]), expected: /^unexpected_vc vector=29 error=0x404 rip=0x[0-9a-f]+ cr2=0x7000 / },
  { check: 'unsupported_vcpu_count', platform: 'snp', attack: 'the CPU table in the config page claims 65 vCPUs', flags: { vcpus: '2' }, program: () => snp([], [configWrite(Number(ABI.MV_CPU_TABLE_OFFSET) + 4, 65n, 4)]), expected: /^unsupported_vcpu_count 0x41/ },

  // ---- --tracking memmap (Kleen's variant): decompressor/memmap-record.c, kernel/memmap-state.c ----
  { check: 'memmap_record_full', platform: 'tdx', attack: 'a 128-entry memory map whose unaccepted entry under the kernel range cannot be split, via map-from-config', flags: { tracking: 'memmap', variant: 'map-from-config' }, program: () => {
    const map: { addr: bigint; size: bigint; type: number }[] = [
      ...honestMap().slice(0, 2), { addr: FW_RESERVED.end, size: 4n * M, type: E820.ram }, { addr: 8n * M, size: 56n * M, type: E820.unaccepted },
    ];
    for (let k = 0n; k < 124n; k++) map.push({ addr: 64n * M + k * 0x2000n, size: 0x1000n, type: E820.unaccepted });
    return tdx([], mapOverride(map));
  }, expected: /^memmap_record_full 0x80/ },
  { check: 'memmap_validate_accepted', platform: 'tdx', attack: 'a page the map shows accepted removed and re-added at the kernel stage\'s first exit: the planted #VE trust asks to validate it again', flags: { tracking: 'memmap', variant: 'trusts-injected-exception' }, stage: 'kernel', program: () => tdx([atExit(0, { kind: 'tdx.replay-zeroed', gpa: PAGE_IN_USE, level: 0 })]), expected: /^memmap_validate_accepted 0x1000/ },
  { check: 'memmap_validate_accepted', platform: 'snp', attack: 'a page the map shows validated PSMASHed and re-assigned at the kernel stage\'s first exit: the planted #VC trust asks to validate it again', flags: { tracking: 'memmap', variant: 'trusts-injected-exception' }, stage: 'kernel', program: () => snp([atExit(0, { kind: 'snp.unvalidate', spa: PAGE_IN_USE })]), expected: /^memmap_validate_accepted 0x1000/ },
  { check: 'memmap_validate_reserved', platform: 'tdx', attack: 'the boot params page (E820-reserved) removed and re-added at the kernel stage\'s first exit: the planted #VE trust asks to validate it', flags: { tracking: 'memmap', variant: 'trusts-injected-exception' }, stage: 'kernel', program: () => tdx([atExit(0, { kind: 'tdx.replay-zeroed', gpa: FW_RESERVED.start, level: 0 })]), expected: /^memmap_validate_reserved 0x200000/ },
  { check: 'memmap_validate_accepted_privately', platform: 'tdx', attack: 'a workload page the kernel accepted lazily removed and re-added: the map still says unaccepted, the kernel\'s own state says accepted', flags: { tracking: 'memmap', variant: 'trusts-injected-exception', memory: '256M', workload: '64M' }, stage: 'kernel', program: () => tdx([atExit(LAZY_EXIT, { kind: 'tdx.replay-zeroed', gpa: LAZY_PAGE_IN_USE, level: 0 })]), expected: /^memmap_validate_accepted_privately 0x4100000/ },
];

describe('every fatal check of the stubs is reached by an attack', () => {
  it.each(DEFENCE_ATTACKS.map((a) => [`${a.platform} ${a.check}: ${a.attack}`, a] as const))('%s', (_name, a) => {
    const attack = a.program();
    expect(attack.platform).toBe(a.platform);
    const { execution, outcome } = runAttack(attack, { ...a.flags }, a.stage);
    expect(outcome.outcome, outcome.reason).toBe('guest-fatal');
    expect(outcome.reason).toMatch(a.expected);
    // Against the honest stubs the oracle agrees: the guest noticed, nothing got past it.
    if (!a.flags?.variant) expect(execution.judgement.verdict).toBe('detected');
  });
});
