// Where a firmware ELF may load, and the firmware volume it spans. A firmware's PT_LOAD segments
// lie in its window of the initial image (252 KiB, our firmware's C code) or in the firmware
// region, the 16 MiB below 4 GiB (td-shim's image size; OVMF's 4 MiB fits). The volume is every
// page from the lowest one a segment touches in the region up to 4 GiB, added and measured as one
// range, as a VMM maps a firmware image whole at the top of 4 GiB (TDVF's BFV metadata section
// covers the whole volume; QEMU maps the flash image below 4 GiB).
import type { ElfImage } from './elf.js';
import { FIRMWARE_LOAD, FIRMWARE_REGION, FIRMWARE_REGION_LOAD } from './layout.js';

const PAGE = 0x1000n;
const FOUR_GIB = 1n << 32n;

export class FirmwareWindowError extends Error {
  override name = 'FirmwareWindowError';
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** "252 KiB", "16 MiB", "16388 KiB": exact sizes for the error messages. */
export function formatSize(bytes: bigint): string {
  if (bytes % (1n << 20n) === 0n) return `${bytes >> 20n} MiB`;
  if (bytes % 1024n === 0n) return `${bytes >> 10n} KiB`;
  return `${bytes} bytes`;
}

const INITIAL_WINDOW = `[${hex(FIRMWARE_LOAD.start)}, ${hex(FIRMWARE_LOAD.end)}) (${formatSize(FIRMWARE_LOAD.end - FIRMWARE_LOAD.start)} in the initial image)`;
const REGION = `[${hex(FIRMWARE_REGION.gpa)}, 4 GiB)`;
const REGION_WINDOW = `${REGION} (the ${formatSize(FIRMWARE_REGION.bytes)} firmware region)`;

/**
 * Checks that every segment of `firmware` lies in one of its two windows; a segment that does
 * not gets a message saying which window it overflows and by how much.
 */
export function checkFirmwareWindows(firmware: ElfImage): void {
  for (const s of firmware.segments) {
    const start = s.gpa;
    const end = s.gpa + s.memSize;
    if ([FIRMWARE_LOAD, FIRMWARE_REGION_LOAD].some((w) => start >= w.start && end <= w.end)) continue;
    const what = `segment [${hex(start)}, ${hex(end)})`;
    if (end <= FOUR_GIB && end > FIRMWARE_REGION.gpa) {
      throw new FirmwareWindowError(`${what} makes the firmware volume ${formatSize(FOUR_GIB - (start & ~(PAGE - 1n)))} ` +
        `(it would start at ${hex(start & ~(PAGE - 1n))}): too large, the volume holds at most ${formatSize(FIRMWARE_REGION.bytes)}, ` +
        `the firmware region ${REGION} (td-shim's image size)`);
    }
    if (start >= FIRMWARE_LOAD.start && start < FIRMWARE_LOAD.end) {
      throw new FirmwareWindowError(`${what} runs ${formatSize(end - FIRMWARE_LOAD.end)} past the firmware's window ${INITIAL_WINDOW}: ` +
        `link a larger firmware into the firmware region ${REGION_WINDOW}`);
    }
    throw new FirmwareWindowError(`${what} is outside the firmware's windows ${INITIAL_WINDOW} and ${REGION_WINDOW}`);
  }
}

/**
 * The firmware volume of `firmware`: [the lowest page its segments touch in the firmware
 * region, 4 GiB). A checked firmware always has one: its reset vector lies at 0xFFFFFFF0.
 */
export function firmwareVolume(firmware: ElfImage): { gpa: bigint; bytes: bigint } {
  let lowest = FOUR_GIB;
  for (const s of firmware.segments) if (s.gpa >= FIRMWARE_REGION.gpa && s.gpa < lowest) lowest = s.gpa;
  const gpa = lowest & ~(PAGE - 1n);
  return { gpa, bytes: FOUR_GIB - gpa };
}

