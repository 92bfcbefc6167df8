// The stubs' fatal checks that no VMM action reaches (guest/DEFENCES.md, test column F): they
// guard against a faulty TDX module or SNP CPU, or a corrupted private page. Each is reached here by
// a fault injected in this file only (a wrapped TdModule.handleExit or SnpPlatform.handleExit: a
// register of a TDCALL, PVALIDATE or RMPADJUST changed, or a private byte written through the
// machine's raw memory), to show the check works and is not dead code. The hardware model and the
// VMM handle in src/ stay as they are: nothing here is an attack a VMM can run.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bootGuest, type BootRun } from '../../../src/boot/boot-guest.js';
import { builtImagePaths } from '../../../src/boot/images.js';
import { ABI, BOOT_PARAMS_GPA } from '../../../src/boot/layout.js';
import { parseBootOptions, type RawBootOptions } from '../../../src/cli/boot-options.js';
import type { VmExit } from '../../../src/cpu/exits.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { TdcallLeaf } from '../../../src/platform/tdx/tdcall.js';
import { TdModule } from '../../../src/platform/tdx/td-module.js';

/** guest/kernel/handover.h */
const KEXEC_REGION = 0x1800000n;
const KEXEC_REGION_BYTES = 0x200000n;
const KEXEC_RECORD = KEXEC_REGION + KEXEC_REGION_BYTES;
const KEXEC_RECORD_MAGIC = 0x4f4448584543454bn;
const CRASH_RECORD_MAGIC = 0x50554d4448534152n;
/** struct mv_kexec_record offsets */
const RECORD_PRESERVED_GPA = 8n;
/** struct mv_boot_params: stats.unaccepted_units (stats at 0x90: accepted_bytes[3], then 4k, 2m, fallbacks, psc, units). */
const BP_UNACCEPTED_UNITS = ABI.MV_BOOT_PARAMS_OFF_STATS + 7n * 8n;
/** TDX GHCI: TDG.VP.VMCALL<MapGPA> sub-function in R11. */
const TDVMCALL_MAP_GPA = 0x10001n;

type Fault = (td: TdModule, exit: VmExit) => void;

const originalHandleExit = TdModule.prototype.handleExit;
const originalSnpHandleExit = SnpPlatform.prototype.handleExit;
afterEach(() => vi.restoreAllMocks());

/**
 * Boots a TDX guest (128 MiB, 4 MiB workload unless told) with `before` run on every exit the
 * TDX module handles, before the module sees it, and `after` once the module has answered.
 */
function bootWithFault(raw: RawBootOptions, before?: Fault, after?: Fault): BootRun {
  vi.spyOn(TdModule.prototype, 'handleExit').mockImplementation(function (this: TdModule, exit: VmExit) {
    before?.(this, exit);
    const step = originalHandleExit.call(this, exit);
    after?.(this, exit);
    return step;
  });
  return bootGuest(parseBootOptions({ platform: 'tdx', memory: '128M', workload: '4M', ...raw }));
}

/** Boots an SNP guest (128 MiB, 4 MiB workload unless told) with `before` run on every exit the SNP CPU model handles, before it does. */
function bootSnpWithFault(raw: RawBootOptions, before: (snp: SnpPlatform, exit: VmExit) => void): BootRun {
  vi.spyOn(SnpPlatform.prototype, 'handleExit').mockImplementation(function (this: SnpPlatform, exit: VmExit) {
    before(this, exit);
    return originalSnpHandleExit.call(this, exit);
  });
  return bootGuest(parseBootOptions({ platform: 'snp', memory: '128M', workload: '4M', ...raw }));
}

function expectFatal(run: BootRun, reason: RegExp): void {
  const { result } = run;
  expect(result.outcome, `${result.outcomeReason}\n${result.console.slice(-1500)}`).toBe('guest-fatal');
  expect(result.outcomeReason).toMatch(reason);
}

const isTdcall = (exit: VmExit, leaf: number): boolean => exit.kind === 'tdcall' && exit.leaf === BigInt(leaf);
const read64 = (td: TdModule, gpa: bigint): bigint => Buffer.from(td.machine.memory.read(gpa, 8)).readBigUInt64LE(0);
function write64(td: TdModule, gpa: bigint, value: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, value));
  td.machine.memory.write(gpa, b);
}

/** The acceptance bitmap's bit for `gpa` set: the guest's record now calls that unit unaccepted. */
function markUnaccepted(td: TdModule, gpa: bigint): void {
  const bp = Buffer.from(td.machine.memory.read(BOOT_PARAMS_GPA, 0x100));
  const bitmap = bp.readBigUInt64LE(Number(ABI.MV_BOOT_PARAMS_OFF_BITMAP_GPA));
  const bit = gpa / BigInt(bp.readUInt32LE(Number(ABI.MV_BOOT_PARAMS_OFF_ACCEPT_UNIT)));
  const byte = td.machine.memory.read(bitmap + bit / 8n, 1)[0]!;
  td.machine.memory.write(bitmap + bit / 8n, Uint8Array.of(byte | (1 << Number(bit % 8n))));
}

/** Runs `corrupt` once, at the first exit after the first kernel wrote its handover record (`magic`). */
function onceRecordWritten(magic: bigint, corrupt: (td: TdModule) => void): Fault {
  let done = false;
  return (td) => {
    if (done || read64(td, KEXEC_RECORD) !== magic) return;
    done = true;
    corrupt(td);
  };
}

/** A symbol's address and size in an ELF (binutils' nm, which the stubs' build needs anyway). */
function symbol(elf: string, name: string): { addr: bigint; size: bigint } {
  const line = execFileSync('nm', ['-S', elf], { encoding: 'utf8' }).split('\n').find((l) => l.endsWith(` ${name}`));
  if (line === undefined) throw new Error(`no symbol ${name} in ${elf}`);
  const fields = line.split(' '); // address, size (absent for a label), type, name
  return { addr: BigInt(`0x${fields[0]}`), size: fields.length === 4 ? BigInt(`0x${fields[1]}`) : 0n };
}
/** The kernel ELF of the honest stubs or of a handover / tracking build. */
const kernelElf = (handover?: 'kexec' | 'crash', tracking?: 'memmap') => join(dirname(builtImagePaths(undefined, handover, tracking).guestImage), 'kernel.elf');

describe('platform checks behind a trusted TDX module (guest/lib/platform.c), reached by a faulty module', () => {
  it('tdx_vp_info_failed: TDG.VP.INFO with its RAX version field flipped to 1 is refused (OPERAND_INVALID)', () => {
    // The module's own dispatcher answers: only TDG.VM.RD has versions beyond 0 (tdx_td_dispatcher.c).
    let flipped = false;
    const run = bootWithFault({}, (td, exit) => {
      if (flipped || !isTdcall(exit, TdcallLeaf.VP_INFO)) return;
      flipped = true;
      td.machine.vcpu.regs.rax |= 1n << 16n;
    });
    expectFatal(run, /^tdx_vp_info_failed 0xc000010000000000/);
  });

  for (const gpaw of [50, 47]) {
    it(`tdx_bad_gpaw: TDG.VP.INFO answers GPAW ${gpaw} (the module sets 48 or 52 only, TDH.MNG.INIT)`, () => {
      let lied = false;
      const run = bootWithFault({}, undefined, (td, exit) => {
        if (lied || !isTdcall(exit, TdcallLeaf.VP_INFO)) return;
        lied = true;
        td.machine.vcpu.regs.rcx = BigInt(gpaw);
      });
      expectFatal(run, new RegExp(`^tdx_bad_gpaw 0x${gpaw.toString(16)}\\b`));
    });
  }

  it('tdx_vmcall_failed: the kernel\'s first MapGPA TDG.VP.VMCALL with RAX exposed in its RCX mask is refused (OPERAND_INVALID)', () => {
    // tdg_vp_vmcall.c: RCX bits 0 (RAX), 1 (RCX), 4 (RSP) may not be exposed. The firmware's
    // MapGPA of its console page is left alone so the reason reaches the console.
    let mapGpas = 0;
    const run = bootWithFault({}, (td, exit) => {
      const regs = td.machine.vcpu.regs;
      if (!isTdcall(exit, TdcallLeaf.VP_VMCALL) || regs.r11 !== TDVMCALL_MAP_GPA || mapGpas++ !== 1) return;
      regs.rcx |= 1n;
    });
    expectFatal(run, /^tdx_vmcall_failed 0xc000010000000001/);
  });
});

describe('kexec hand-over checks (guest/kernel/kexec.c), reached by corrupting private memory between the two kernels', () => {
  const kexec = (corrupt: (td: TdModule) => void) => bootWithFault({ handover: 'kexec' }, onceRecordWritten(KEXEC_RECORD_MAGIC, corrupt));

  it('kexec_record_missing: a bit of the record\'s magic flipped', () => {
    expectFatal(kexec((td) => write64(td, KEXEC_RECORD, KEXEC_RECORD_MAGIC ^ 1n)), /^kexec_record_missing 0x4f4448584543454a/);
  });

  it('kexec_preserved_region_invalid: the preserved region\'s GPA moved off a page boundary', () => {
    let moved = 0n;
    const run = kexec((td) => {
      moved = read64(td, KEXEC_RECORD + RECORD_PRESERVED_GPA) + 8n;
      write64(td, KEXEC_RECORD + RECORD_PRESERVED_GPA, moved);
    });
    expectFatal(run, new RegExp(`^kexec_preserved_region_invalid 0x${moved.toString(16)}\\b`));
  });

  it('kexec_preserved_region_unaccepted: the acceptance table marks the preserved region\'s unit unaccepted', () => {
    let preserved = 0n;
    const run = kexec((td) => {
      preserved = read64(td, KEXEC_RECORD + RECORD_PRESERVED_GPA);
      markUnaccepted(td, preserved);
    });
    expectFatal(run, new RegExp(`^kexec_preserved_region_unaccepted 0x${preserved.toString(16)}\\b`));
  });

  it('kexec_preserved_data_mismatch: a byte of the preserved data\'s second page changed', () => {
    let page = 0n;
    const run = kexec((td) => {
      page = read64(td, KEXEC_RECORD + RECORD_PRESERVED_GPA) + 0x1000n;
      td.machine.memory.write(page + 0x800n, Uint8Array.of(0x5a));
      write64(td, page, read64(td, page) ^ 0x100n);
    });
    expectFatal(run, new RegExp(`^kexec_preserved_data_mismatch 0x${page.toString(16)}\\b`));
  });

  it('kexec_acceptance_table_changed: one unit the first kernel left unaccepted marked accepted in the table handed over (its count kept in step)', () => {
    let units = 0n;
    const run = kexec((td) => {
      const bp = Buffer.from(td.machine.memory.read(BOOT_PARAMS_GPA, 0x100));
      const bitmap = bp.readBigUInt64LE(Number(ABI.MV_BOOT_PARAMS_OFF_BITMAP_GPA));
      const bytes = Number(bp.readBigUInt64LE(Number(ABI.MV_BOOT_PARAMS_OFF_BITMAP_BYTES)));
      const table = td.machine.memory.read(bitmap, bytes);
      let at = table.length - 1;
      while (at >= 0 && table[at] === 0) at--;
      expect(at).toBeGreaterThanOrEqual(0); // 128 MiB with a 4 MiB workload leaves units unaccepted
      td.machine.memory.write(bitmap + BigInt(at), Uint8Array.of(table[at]! & (table[at]! - 1)));
      units = read64(td, BOOT_PARAMS_GPA + BP_UNACCEPTED_UNITS) - 1n;
      write64(td, BOOT_PARAMS_GPA + BP_UNACCEPTED_UNITS, units);
    });
    expectFatal(run, new RegExp(`^kexec_acceptance_table_changed 0x${units.toString(16)}\\b`));
  });
});

describe('crash hand-over checks (guest/kernel/crash.c)', () => {
  it('crash_record_missing: a bit of the crash record\'s magic flipped before the panic', () => {
    const run = bootWithFault({ handover: 'crash' }, onceRecordWritten(CRASH_RECORD_MAGIC, (td) => write64(td, KEXEC_RECORD, CRASH_RECORD_MAGIC ^ 1n)));
    expectFatal(run, /^crash_record_missing 0x50554d4448534153/);
  });
});

/**
 * Patches the immediate of `mov $mv_kexec_image_end, %eax` in the first kernel's
 * `function` (where it computes the second kernel's image size) once the kernel's code is in
 * memory, so the size it computes is `bytes`: a corrupted instruction in private memory.
 */
function imageSizeFault(handover: 'kexec' | 'crash', fn: string, bytes: bigint): Fault {
  const elf = kernelElf(handover);
  const at = symbol(elf, fn).addr;
  const start = symbol(elf, 'mv_kexec_image_start').addr;
  const movEnd = Buffer.alloc(5);
  movEnd[0] = 0xb8; // mov imm32, %eax
  movEnd.writeUInt32LE(Number(symbol(elf, 'mv_kexec_image_end').addr), 1);
  let done = false;
  return (td) => {
    if (done) return;
    const code = Buffer.from(td.machine.memory.read(at, 0x40));
    const offset = code.indexOf(movEnd);
    if (offset < 0) return; // not decompressed yet
    done = true;
    const patched = Buffer.from(movEnd);
    patched.writeUInt32LE(Number(start + bytes), 1);
    td.machine.memory.write(at + BigInt(offset), patched);
  };
}

describe('the second kernel\'s image size (linked in at build time), reached by a corrupted instruction', () => {
  it('kexec_image_too_large: the first kernel computes a 3 MiB image (the region holds 2 MiB)', () => {
    const run = bootWithFault({ handover: 'kexec' }, imageSizeFault('kexec', 'mv_handover_kexec', 0x300000n));
    expectFatal(run, /^kexec_image_too_large 0x300000\b/);
  });
  it('crash_kernel_image_too_large: the first kernel computes a 3 MiB crash kernel image', () => {
    const run = bootWithFault({ handover: 'crash' }, imageSizeFault('crash', 'mv_handover_boot', 0x300000n));
    expectFatal(run, /^crash_kernel_image_too_large 0x300000\b/);
  });
});

describe('the kernel\'s private bookkeeping (guest/kernel/main.c, memmap-state.c), reached by corrupting it', () => {
  /** Runs `corrupt` at the kernel's first MapGPA (its 2 MiB buffer to shared): the workload is allocated, verified, not yet freed. */
  const atKernelFirstMapGpa = (corrupt: (td: TdModule) => void): Fault => {
    let mapGpas = 0;
    return (td, exit) => {
      if (isTdcall(exit, TdcallLeaf.VP_VMCALL) && td.machine.vcpu.regs.r11 === TDVMCALL_MAP_GPA && mapGpas++ === 1) corrupt(td);
    };
  };
  const chunksArray = () => symbol(kernelElf(), 'chunks').addr;

  it('allocator_extent_table_full: the free-extent count set to the table\'s size before the workload frees every other chunk', () => {
    const freeList = symbol(kernelElf(), 'free_list');
    const freeCount = symbol(kernelElf(), 'free_count').addr;
    const full = Number(freeList.size / 16n); // struct extent { u64 start, end; }
    let chunk1 = 0n;
    const run = bootWithFault({}, atKernelFirstMapGpa((td) => {
      chunk1 = read64(td, chunksArray() + 8n); // the first chunk freed: its extent is the first insert
      const b = Buffer.alloc(4);
      b.writeUInt32LE(full);
      td.machine.memory.write(freeCount, b);
    }));
    expectFatal(run, new RegExp(`^allocator_extent_table_full 0x${chunk1.toString(16)}\\b`));
  });

  it('reallocated_memory_not_accepted: the bitmap marks a workload chunk unaccepted before it is freed and allocated again (unit 4K)', () => {
    let chunk1 = 0n;
    const run = bootWithFault({ unit: '4K' }, atKernelFirstMapGpa((td) => {
      chunk1 = read64(td, chunksArray() + 8n); // freed first, and first fit allocates it first again
      markUnaccepted(td, chunk1);
    }));
    expectFatal(run, new RegExp(`^reallocated_memory_not_accepted 0x${chunk1.toString(16)}\\b`));
  });

  it('reallocation_accepted_again: a page inside a freed chunk marked unaccepted, and the module answers its re-accept as a fresh accept (SUCCESS, zeroed)', () => {
    let page = -1n;
    const run = bootWithFault({ unit: '4K' }, atKernelFirstMapGpa((td) => {
      page = read64(td, chunksArray() + 8n) + 0x80000n; // neither the chunk's first nor its last page
      markUnaccepted(td, page);
    }), (td, exit) => {
      const regs = td.machine.vcpu.regs;
      if (!isTdcall(exit, TdcallLeaf.MEM_PAGE_ACCEPT) || regs.rcx !== page || regs.rax >> 32n !== 0xb0an /* TDX_PAGE_ALREADY_ACCEPTED */) return;
      td.machine.memory.fill(page, 0x1000n);
      regs.rax = 0n;
    });
    expectFatal(run, /^reallocation_accepted_again 0x/);
  });

  it('memmap_state_full (--tracking memmap): the unaccepted-extent count set to the table\'s size, the extent being accepted grown by a page below', () => {
    const elf = kernelElf(undefined, 'memmap');
    const table = symbol(elf, 'unaccepted');
    const count = symbol(elf, 'unaccepted_count').addr;
    let split = 0n;
    const run = bootWithFault({ tracking: 'memmap', memory: '256M', workload: '64M' }, (td, exit) => {
      if (split !== 0n || !isTdcall(exit, TdcallLeaf.MEM_PAGE_ACCEPT)) return;
      const gpa = td.machine.vcpu.regs.rcx & ~0xfffn;
      const n = Buffer.from(td.machine.memory.read(count, 4)).readUInt32LE(0);
      for (let i = 0n; i < BigInt(n); i++) {
        if (read64(td, table.addr + i * 16n) !== gpa) continue;
        // The accept's removal now splits [gpa - 4K, end) with no slot left.
        split = gpa;
        write64(td, table.addr + i * 16n, gpa - 0x1000n);
        const b = Buffer.alloc(4);
        b.writeUInt32LE(Number(table.size / 16n));
        td.machine.memory.write(count, b);
        return;
      }
    });
    expectFatal(run, new RegExp(`^memmap_state_full 0x${split.toString(16)}\\b`));
  });
});

describe('the wakeup mailbox (guest/kernel/smp.c), reached by a module that miscounts the vCPUs', () => {
  it('ap_wakeup_timeout: TDG.VP.INFO reports 2 vCPUs (R8 NUM_VCPUS) in a TD with one: nobody answers the mailbox', () => {
    // A --firmware whose APs never poll the mailbox reaches it too, but then every PAUSE of the
    // waiting BSP hands the turn to the spinning AP, and a 2-vCPU boot runs out of its default
    // instruction budget (2e9) before the BSP's 2^22 polls end.
    const run = bootWithFault({}, undefined, (td, exit) => {
      if (isTdcall(exit, TdcallLeaf.VP_INFO)) td.machine.vcpu.regs.r8 = 2n | (2n << 32n); // NUM_VCPUS | MAX_VCPUS << 32
    });
    expectFatal(run, /^ap_wakeup_timeout 0x1\b/);
  });
});

// PVALIDATE and RMPADJUST return codes: APM Vol. 3 (tdx-snp-architecture.md B2; Linux sev.h, MS
// __pvalidate/__rmpadjust docs): 0 SUCCESS, 1 FAIL_INPUT, 2 FAIL_PERMISSION, 6 FAIL_SIZEMISMATCH.
describe('RMP instruction results behind the SNP CPU (guest/lib/platform.c, guest/kernel/smp.c), reached by a faulty CPU', () => {
  /** Whether `exit` is a PVALIDATE of that page size (RCX bit 0) and direction (RDX bit 0). */
  const isPvalidate = (snp: SnpPlatform, exit: VmExit, size2m: boolean, validate: boolean): boolean => {
    const regs = snp.machine.vcpu.regs;
    return exit.kind === 'pvalidate' && ((regs.rcx & 1n) === 1n) === size2m && ((regs.rdx & 1n) === 1n) === validate;
  };

  // The stub's own address is reported (va=), not RAX: PVALIDATE overwrites RAX with the code.
  for (const validate of [true, false]) {
    it(`snp_pvalidate_failed (${validate ? 'validate' : 'rescind'}): the first 2M PVALIDATE to ${validate ? 'validate' : 'rescind'} reads its address 4 KiB off the 2 MiB boundary (FAIL_INPUT)`, () => {
      // The first 2M validate is the firmware's of [0, 2M) (after its GHCB, so the reason is
      // printed); the first 2M rescind is the kernel's of its 2 MiB conversion buffer.
      let gpa = -1n;
      const run = bootSnpWithFault({}, (snp, exit) => {
        if (gpa >= 0n || !isPvalidate(snp, exit, true, validate)) return;
        gpa = snp.machine.vcpu.regs.rax;
        snp.machine.vcpu.regs.rax += 0x1000n;
      });
      expect(gpa).toBeGreaterThanOrEqual(0n);
      expectFatal(run, new RegExp(`^snp_pvalidate_failed va=0x${gpa.toString(16)} rc=1 ${validate ? 'validate' : 'rescind'}\\b`));
    });
  }

  it('snp_set_vmsa_failed: the RMPADJUST that makes AP 1\'s VMSA page reads target VMPL 0 for 1 at VMPL0 (FAIL_PERMISSION), 2 vCPUs', () => {
    // Only a less privileged (numerically higher) VMPL can be adjusted (APM Vol. 2 §15.36.7).
    const VMSA_BIT = 1n << 16n;
    let changed = false;
    const run = bootSnpWithFault({ vcpus: '2' }, (snp, exit) => {
      const regs = snp.machine.vcpu.regs;
      if (changed || exit.kind !== 'rmpadjust' || (regs.rdx & VMSA_BIT) === 0n) return;
      changed = true;
      regs.rdx &= ~0xffn;
    });
    expect(changed).toBe(true);
    expectFatal(run, /^snp_set_vmsa_failed 0x2\b/);
  });
});
