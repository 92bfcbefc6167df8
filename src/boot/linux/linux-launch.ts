// Where a bzImage goes in a confidential guest and what is accepted before it runs: the plan the
// VMM launches (measured pages), the firmware pre-accepts, and the zero page's E820 map and
// unaccepted bitmap describe. One pure function of the image and the config, so the tests can
// check the plan without booting.
//
// The model is the EFI flow after ExitBootServices (libstub x86-stub.c): the loader gave the
// kernel a buffer of init_size bytes at its preferred address, and everything the firmware did
// not accept is EFI_UNACCEPTED_MEMORY, i.e. E820 RAM with its units set in the bitmap. What is
// accepted before startup_64 runs:
//   - [0, pre-accept): the firmware's pre-accept (firmware/main.c), which must end below the kernel;
//   - the firmware range [2 MiB, 4 MiB): temporary RAM and the initial image (VMM-launched), which
//     holds the zero page, the command line and the EFI tables at MV_LINUX_BOOT_DATA_GPA;
//   - the protected-mode kernel, launched and measured at the load address (PAGE.ADD+MR.EXTEND,
//     as TDVF/TD-shim launch a payload), rounded up to the 2 MiB unit;
//   - the end of the init_size buffer, where startup_64 copies the decompressor before running
//     it there (arch/x86/boot/compressed/head_64.S: the copy goes to load + init_size - _end).
//     The header does not give the decompressor's _end, so the plan takes the kernel's size
//     plus DECOMPRESSOR_WORK_SLACK for its bss, heap, stack and page tables.
// The middle of the buffer, where the kernel is decompressed to, stays unaccepted: the
// decompressor's own accept_memory(__pa(output), needed_size) (misc.c) must accept it.
import { ABI, guestRamRanges } from '../layout.js';
import { STARTUP_64_OFFSET, type BzImage } from './bzimage.js';
import {
  E820, EFI_MEMORY_WB, EFI_UNACCEPTED_UNIT_SIZE, EfiMemoryType, unacceptedBitmap, type E820Entry, type EfiMemoryDescriptor, type GpaRange, type UnacceptedBitmap,
} from './boot-params.js';

const UNIT = EFI_UNACCEPTED_UNIT_SIZE;
/** bss + boot heap + stack + page tables of the decompressor beyond the image's own bytes (generous: 4 MiB). */
export const DECOMPRESSOR_WORK_SLACK = 0x400000n;

const alignUp = (v: bigint, a: bigint) => ((v + a - 1n) / a) * a;
const alignDown = (v: bigint, a: bigint) => (v / a) * a;
const hex = (v: bigint) => `0x${v.toString(16)}`;

export class LinuxLaunchError extends Error {
  override name = 'LinuxLaunchError';
}

export interface LinuxLaunchPlan {
  loadAddress: bigint;
  /** startup_64: load address + 0x200. */
  entry: bigint;
  /** The protected-mode kernel bytes launched (measured) at `loadAddress`. */
  kernelRange: GpaRange;
  /** The decompressor's working area at the end of the init_size buffer (launched zeroed). */
  workRange: GpaRange;
  /** [0, firmwareAcceptedEnd) minus the firmware range: what the firmware accepts. */
  firmwareAcceptedEnd: bigint;
  /** Every range accepted before startup_64 runs (firmware, launched), merged. */
  accepted: GpaRange[];
  /** The rest of RAM (guestRamRanges: never the hole below 4 GiB), marked in the bitmap. */
  unaccepted: GpaRange[];
  bitmap: UnacceptedBitmap;
  e820: E820Entry[];
  /**
   * The EFI memory map the stub would leave: the firmware range (and, when RAM reaches it, the
   * RAM hole below 4 GiB) reserved, the kernel as loader code, its working area as loader data,
   * what the firmware accepted conventional, the rest EFI_UNACCEPTED_MEMORY; sorted, one
   * descriptor per range.
   */
  efiMemoryMap: EfiMemoryDescriptor[];
}

/** Sorted, merged union of ranges. */
export function mergeRanges(ranges: readonly GpaRange[]): GpaRange[] {
  const sorted = ranges.filter((r) => r.end > r.start).map((r) => ({ ...r })).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: GpaRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = r.end > last.end ? r.end : last.end;
    else out.push(r);
  }
  return out;
}

/** [0, end) minus `taken` (merged). */
export function complement(end: bigint, taken: readonly GpaRange[]): GpaRange[] {
  const out: GpaRange[] = [];
  let at = 0n;
  for (const r of mergeRanges(taken)) {
    if (r.start > at) out.push({ start: at, end: r.start < end ? r.start : end });
    at = r.end > at ? r.end : at;
    if (at >= end) break;
  }
  if (at < end) out.push({ start: at, end });
  return out.filter((r) => r.end > r.start);
}

export interface LinuxLaunchInput {
  image: BzImage;
  memoryBytes: bigint;
  /** The firmware's pre-accept from GPA 0 ('all' is refused: it would accept the launched kernel again). */
  preAccept: bigint | 'all';
}

export function planLinuxLaunch(input: LinuxLaunchInput): LinuxLaunchPlan {
  const { image, memoryBytes } = input;
  if (memoryBytes % UNIT !== 0n) throw new LinuxLaunchError(`--memory must be a multiple of 2 MiB for --linux (the unaccepted bitmap's unit), got ${hex(memoryBytes)}`);
  const loadAddress = image.prefAddress;
  if (loadAddress % image.kernelAlignment !== 0n || loadAddress < ABI.MV_FIRMWARE_RESERVED_END) {
    throw new LinuxLaunchError(`the kernel's pref_address ${hex(loadAddress)} is not usable here (it must be aligned to kernel_alignment ${hex(image.kernelAlignment)} and above the firmware range at ${hex(ABI.MV_FIRMWARE_RESERVED_END)})`);
  }
  const bufferEnd = loadAddress + image.initSize;
  const kernelRange = { start: loadAddress, end: alignUp(loadAddress + BigInt(image.kernel.byteLength), UNIT) };
  const workStart = alignDown(bufferEnd - BigInt(image.kernel.byteLength) - DECOMPRESSOR_WORK_SLACK, UNIT);
  const workRange = { start: workStart > kernelRange.end ? workStart : kernelRange.end, end: alignUp(bufferEnd, UNIT) };
  // The same RAM as the normal boot's (layout.ts guestRamRanges, which firmware/main.c's E820
  // and the honest VMMs follow): below the hole at MV_RAM_HOLE_GPA, and from 4 GiB on.
  const ram = guestRamRanges(memoryBytes);
  const lowRam = ram[0]!;
  if (workRange.end > lowRam.end) {
    throw new LinuxLaunchError(`the kernel needs its init_size buffer [${hex(loadAddress)}, ${hex(bufferEnd)}) in RAM: --memory must be at least ${workRange.end / 0x100000n} MiB, got ${memoryBytes / 0x100000n} MiB`);
  }
  if (input.preAccept === 'all') throw new LinuxLaunchError(`--pre-accept all would make the firmware accept the kernel the VMM launched at ${hex(loadAddress)} a second time; give at most ${loadAddress / 0x100000n}M`);
  // The firmware's own rule (firmware/main.c): round up to 2 MiB, never past RAM.
  const firmwareAcceptedEnd = alignUp(input.preAccept < memoryBytes ? input.preAccept : memoryBytes, UNIT);
  if (firmwareAcceptedEnd > loadAddress) {
    throw new LinuxLaunchError(`--pre-accept ${hex(input.preAccept)} reaches the kernel launched at ${hex(loadAddress)}: the firmware would accept launched pages again (a double accept); give at most ${loadAddress / 0x100000n}M`);
  }
  const firmwareRange = { start: ABI.MV_FIRMWARE_RESERVED_GPA, end: ABI.MV_FIRMWARE_RESERVED_END };
  const accepted = mergeRanges([{ start: 0n, end: firmwareAcceptedEnd }, firmwareRange, kernelRange, workRange]);
  // What of [0, memoryBytes) is not RAM: the part of the hole below --memory.
  const notRam = complement(memoryBytes, ram);
  const unaccepted = complement(memoryBytes, [...accepted, ...notRam]);
  // Once RAM reaches the hole, the whole hole [MV_RAM_HOLE_GPA, 4 GiB) (our firmware region, its
  // volume pre-accepted and measured) is listed reserved, as OVMF lists its flash: the kernel
  // then neither takes it for RAM nor picks it as the PCI gap (arch/x86/kernel/e820.c
  // e820__setup_pci_gap takes the largest gap below 4 GiB). Below that, the map stays the
  // one it always was (the gap above RAM is not described).
  const hole = memoryBytes > ABI.MV_RAM_HOLE_GPA ? [{ start: ABI.MV_RAM_HOLE_GPA, end: ABI.MV_RAM_HOLE_END }] : [];
  const e820: E820Entry[] = [
    { addr: 0n, size: firmwareRange.start, type: E820.RAM },
    { addr: firmwareRange.start, size: firmwareRange.end - firmwareRange.start, type: E820.RESERVED },
    { addr: firmwareRange.end, size: lowRam.end - firmwareRange.end, type: E820.RAM },
    ...hole.map((r) => ({ addr: r.start, size: r.end - r.start, type: E820.RESERVED })),
    ...ram.slice(1).map((r) => ({ addr: r.start, size: r.end - r.start, type: E820.RAM })),
  ];
  const typed: Array<{ range: GpaRange; type: number }> = [
    { range: firmwareRange, type: EfiMemoryType.RESERVED },
    ...hole.map((range) => ({ range, type: EfiMemoryType.RESERVED })),
    { range: kernelRange, type: EfiMemoryType.LOADER_CODE },
    { range: workRange, type: EfiMemoryType.LOADER_DATA },
    ...complement(firmwareAcceptedEnd, [firmwareRange]).map((range) => ({ range, type: EfiMemoryType.CONVENTIONAL })),
    ...unaccepted.map((range) => ({ range, type: EfiMemoryType.UNACCEPTED })),
  ];
  const efiMemoryMap = typed
    .filter((t) => t.range.end > t.range.start)
    .sort((a, b) => (a.range.start < b.range.start ? -1 : 1))
    .map(({ range, type }) => ({ type, start: range.start, pages: (range.end - range.start) / 0x1000n, attribute: EFI_MEMORY_WB }));
  return {
    loadAddress, entry: loadAddress + STARTUP_64_OFFSET, kernelRange, workRange, firmwareAcceptedEnd, accepted, unaccepted,
    bitmap: unacceptedBitmap(unaccepted, UNIT), e820, efiMemoryMap,
  };
}
