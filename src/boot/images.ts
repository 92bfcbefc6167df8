// The guest images `npm install` builds: the firmware ELF and the guest image (decompressor with
// the compressed kernel linked in), the honest ones and the planted-bug variants built beside
// them (guest/lib/variants.mk, guest/DEFENCES.md). A user's own firmware can replace ours.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InputFileError, readInputFile } from '../shared/input-file.js';
import { PACKAGE_ROOT } from '../shared/package-root.js';
import { quoteForError } from '../shared/quote.js';
import type { BootConfig, Handover } from './boot-config.js';
import { ElfError, parseElf, type ElfImage } from './elf.js';
import { encodeFirmwareConfig } from './fw-config.js';
import { FirmwareWindowError, checkFirmwareWindows } from './firmware-volume.js';
import { KERNEL_LOAD_WINDOW, KernelPayloadError, kernelPayload } from './kernel-payload.js';
import { ABI, FW_CONFIG_GPA, GUEST_IMAGE_LOAD, RESET_VECTOR_GPA, SNP_CPUID_PAGE_GPA, guestPhysicalBytes } from './layout.js';
import { BzImageError, parseBzImage, type BzImage } from './linux/bzimage.js';
import { BootParamsError, buildLinuxBootData, type LinuxBootData } from './linux/boot-params.js';
import { LinuxLaunchError, planLinuxLaunch, type LinuxLaunchPlan } from './linux/linux-launch.js';

export const BUILT_FIRMWARE = join(PACKAGE_ROOT, 'firmware', 'build', 'firmware.elf');
export const BUILT_GUEST_IMAGE = join(PACKAGE_ROOT, 'guest', 'build', 'guest-image.elf');
/** Our decompressor with an empty linked payload: it reads the one appended after it. */
export const BUILT_DECOMPRESSOR = join(PACKAGE_ROOT, 'guest', 'build', 'decompressor.elf');
/** Our kernel's payload (guest/tools/mkpayload.py), appended after a user's decompressor. */
export const BUILT_KERNEL_PAYLOAD = join(PACKAGE_ROOT, 'guest', 'build', 'kernel.mvkz');

/**
 * Compile-time variants of the stubs, each with ONE planted acceptance bug (the -D flag in
 * guest/lib/variants.mk), except `map-from-config`, a test fixture firmware that hands the
 * decompressor the memory map the VMM wrote into the config page.
 */
export const STUB_VARIANTS = {
  'accept-already-accepted': 'TDX_PAGE_ALREADY_ACCEPTED / PVALIDATE CF=1 treated as success',
  'map-gpa-unbounded-retry': 'no bound on MapGPA RETRY without progress',
  'psc-error-ignored': 'a failed page-state change (MapGPA error, PSC error) treated as done',
  'e820-unchecked': 'the decompressor uses the firmware memory map unchecked (with the map-from-config firmware)',
  'reaccept-skipped': 'no re-accept after converting memory back from shared to private',
  'trusts-injected-exception': 'a #VE / #VC 0x404 is trusted: the page it names is accepted again',
  'accepting-list-missing': 'the lock is dropped around each accept with no accepting list: two CPUs accept the same unit',
  'map-from-config': 'test fixture: the firmware passes a VMM-written memory map through unchecked',
} as const;
export type StubVariant = keyof typeof STUB_VARIANTS;

export function isStubVariant(name: string): name is StubVariant {
  return Object.hasOwn(STUB_VARIANTS, name);
}

/**
 * How the guest records what it accepted (issue 14 part 3): `bitmap` is Roedel's Validation
 * Bitmap, the default build; `memmap` is Kleen's variant, a build of its own (-DMV_TRACKING_MEMMAP
 * in guest/lib/variants.mk): the decompressor records its accepts by splitting the memory map,
 * the kernel keeps its state privately and panics on a validation request for reserved or
 * already-validated memory.
 */
export const ACCEPTANCE_TRACKINGS = ['bitmap', 'memmap'] as const;
export type AcceptanceTracking = (typeof ACCEPTANCE_TRACKINGS)[number];

/** The stub variants built with memmap tracking too (the fixture and planted bug its checks are attacked through). */
export const MEMMAP_VARIANTS: readonly StubVariant[] = ['map-from-config', 'trusts-injected-exception'];

export function isAcceptanceTracking(name: string): name is AcceptanceTracking {
  return (ACCEPTANCE_TRACKINGS as readonly string[]).includes(name);
}

/**
 * Where the images of the honest stubs (no variant) or of one variant are. A handover boots the
 * honest firmware with the kernel built for that handover (guest/lib/variants.mk handover-*).
 */
export function builtImagePaths(variant?: StubVariant, handover?: Handover, tracking: AcceptanceTracking = 'bitmap'): { firmware: string; guestImage: string } {
  if (handover !== undefined) {
    if (variant !== undefined) throw new GuestImageError(`a handover boots the honest stubs: it cannot be combined with the variant ${variant}`);
    return { firmware: BUILT_FIRMWARE, guestImage: join(PACKAGE_ROOT, 'guest', 'build', 'variants', `handover-${handover}`, 'guest-image.elf') };
  }
  if (variant === undefined && tracking === 'bitmap') return { firmware: BUILT_FIRMWARE, guestImage: BUILT_GUEST_IMAGE };
  const build = tracking === 'bitmap' ? variant! : variant === undefined ? 'tracking-memmap' : `tracking-memmap+${variant}`;
  return {
    firmware: join(PACKAGE_ROOT, 'firmware', 'build', 'variants', build, 'firmware.elf'),
    guestImage: join(PACKAGE_ROOT, 'guest', 'build', 'variants', build, 'guest-image.elf'),
  };
}

export class GuestImageError extends Error {
  override name = 'GuestImageError';
}

/**
 * Images are read with a bound: the load windows hold 16 MiB at most (the firmware region,
 * layout.ts), so 32 MiB leaves room for symbols and debug sections while refusing a runaway
 * input at once.
 */
export const MAX_IMAGE_BYTES = 32 << 20;

export function readImage(path: string, what: string): Uint8Array {
  const built = path.startsWith(join(PACKAGE_ROOT, 'firmware', 'build')) || path.startsWith(join(PACKAGE_ROOT, 'guest', 'build'));
  if (!existsSync(path) && built) {
    throw new GuestImageError(`no guest is installed: ${path} is missing (run \`npm install\`, which builds the stubs with gcc/binutils)`);
  }
  try {
    return readInputFile(path, what, MAX_IMAGE_BYTES);
  } catch (err) {
    if (err instanceof InputFileError) throw new GuestImageError(err.message);
    throw err;
  }
}

export interface BootImages {
  firmware: ElfImage;
  guestImage: ElfImage;
  /** The firmware config bytes, written at their GPA inside the initial image. */
  config: { gpa: bigint; bytes: Uint8Array };
  /** A Linux kernel in place of the guest image (BootConfig.linux). */
  linux?: LinuxImages;
}

export interface LinuxImages {
  image: BzImage;
  plan: LinuxLaunchPlan;
  /** Zero page, command line and EFI tables, in the guest-image window of the initial image. */
  bootData: LinuxBootData;
}

/** A bzImage is read with a bound: distribution kernels are 10–20 MB. */
export const MAX_BZIMAGE_BYTES = 64 << 20;

/** Parses the bzImage of `config.linux`, plans its launch and builds its zero page and EFI tables. */
export function loadLinuxImages(config: BootConfig): LinuxImages | undefined {
  if (!config.linux) return undefined;
  const path = config.linux.kernelFile;
  try {
    const image = parseBzImage(readInputFile(path, 'Linux kernel', MAX_BZIMAGE_BYTES));
    const plan = planLinuxLaunch({ image, memoryBytes: config.memoryBytes, preAccept: config.preAccept });
    const bootData = buildLinuxBootData({
      gpa: ABI.MV_LINUX_BOOT_DATA_GPA, setupHeader: image.header, cmdlineSize: image.cmdlineSize, cmdline: config.linux.cmdline,
      e820: plan.e820, bitmap: plan.bitmap, efiMemoryMap: plan.efiMemoryMap,
      // SEV-SNP: the CC blob names the CPUID page the VMM launches for the firmware too.
      ...(config.platform === 'snp' ? { snp: { cpuidPageGpa: SNP_CPUID_PAGE_GPA } } : {}),
    });
    if (bootData.gpa + BigInt(bootData.bytes.byteLength) > ABI.MV_GUEST_IMAGE_LIMIT) {
      throw new BootParamsError(`the zero page and EFI tables take 0x${bootData.bytes.byteLength.toString(16)} bytes, more than the guest-image window holds (a bitmap for this much memory is too large)`);
    }
    return { image, plan, bootData };
  } catch (err) {
    if (err instanceof InputFileError) throw new GuestImageError(err.message);
    if (err instanceof BzImageError || err instanceof BootParamsError) throw new GuestImageError(`Linux kernel ${quoteForError(path)}: ${err.message}`);
    if (err instanceof LinuxLaunchError) throw new GuestImageError(err.message);
    throw err;
  }
}

/** Every image file a boot with `config` reads (an output file must not overwrite one). */
export function bootInputFiles(config: BootConfig): string[] {
  const built = builtImagePaths(config.variant, config.handover, config.tracking);
  const files = [config.firmwareFile ?? built.firmware];
  if (config.linux !== undefined) files.push(config.linux.kernelFile);
  if (config.decompressorFile === undefined && config.kernelFile === undefined) return [...files, built.guestImage];
  files.push(config.decompressorFile ?? BUILT_DECOMPRESSOR);
  files.push(config.kernelFile ?? BUILT_KERNEL_PAYLOAD);
  return files;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const pageUp = (v: bigint): bigint => (v + 0xfffn) & ~0xfffn;

/**
 * The guest image when a stage is replaced: a decompressor (the user's, or ours without a linked
 * payload) with a kernel payload (ours, or one made from the user's kernel ELF) appended at its
 * page-aligned end (boot_abi.h, "Handovers"), as one more read-only segment of the image.
 */
function composeGuestImage(config: BootConfig, parse: (path: string, what: string, windows: ReadonlyArray<{ start: bigint; end: bigint }>) => ElfImage): ElfImage {
  const decompressorPath = config.decompressorFile ?? BUILT_DECOMPRESSOR;
  const decompressor = parse(decompressorPath, 'decompressor image', [GUEST_IMAGE_LOAD]);
  let payload: Uint8Array;
  let payloadWhat: string;
  if (config.kernelFile !== undefined) {
    const kernel = parse(config.kernelFile, 'kernel image', [KERNEL_LOAD_WINDOW]);
    payloadWhat = `kernel image ${quoteForError(config.kernelFile)}`;
    try {
      payload = kernelPayload(kernel);
    } catch (err) {
      if (err instanceof KernelPayloadError) throw new GuestImageError(`${payloadWhat}: ${err.message}`);
      throw err;
    }
  } else {
    payloadWhat = `our kernel payload ${quoteForError(BUILT_KERNEL_PAYLOAD)}`;
    payload = readImage(BUILT_KERNEL_PAYLOAD, 'kernel payload');
  }
  const imageEnd = decompressor.segments.reduce<bigint>((end, s) => (s.gpa + s.memSize > end ? s.gpa + s.memSize : end), GUEST_IMAGE_LOAD.start);
  const at = pageUp(imageEnd);
  const end = at + BigInt(payload.byteLength);
  if (end > GUEST_IMAGE_LOAD.end) {
    throw new GuestImageError(`${payloadWhat} does not fit: ${payload.byteLength} bytes appended at ${hex(at)} (after the decompressor ` +
      `${quoteForError(decompressorPath)}) would end at ${hex(end)}, past the guest-image window's end ${hex(GUEST_IMAGE_LOAD.end)} ` +
      `(room: ${GUEST_IMAGE_LOAD.end - at} bytes)`);
  }
  const appended = { gpa: at, vaddr: at, data: payload, memSize: BigInt(payload.byteLength), readable: true, writable: false, executable: false };
  return { entry: decompressor.entry, segments: [...decompressor.segments, appended] };
}

/** Parses the firmware and guest image for `config` and encodes the firmware config it boots with. */
export function loadBootImages(config: BootConfig): BootImages {
  const built = builtImagePaths(config.variant, config.handover, config.tracking);
  const firmwarePath = config.firmwareFile ?? built.firmware;
  const parse = (path: string, what: string, windows?: ReadonlyArray<{ start: bigint; end: bigint }>): ElfImage => {
    const bytes = readImage(path, what);
    try {
      return parseElf(bytes, { physicalBytes: guestPhysicalBytes(config.memoryBytes), ...(windows ? { windows } : {}) });
    } catch (err) {
      if (err instanceof ElfError) throw new GuestImageError(`${what} ${quoteForError(path)}: ${err.message}`);
      throw err;
    }
  };
  // The firmware's two windows are checked here, not by parseElf, to say which one a segment
  // overflows (a firmware too large for the volume, or too large for the initial image).
  const firmware = parse(firmwarePath, 'firmware image');
  try {
    checkFirmwareWindows(firmware);
  } catch (err) {
    if (err instanceof FirmwareWindowError) throw new GuestImageError(`firmware image ${quoteForError(firmwarePath)}: ${err.message}`);
    throw err;
  }
  // The vCPU starts at the architectural reset vector, whatever e_entry says: a firmware must
  // have its code there (in the firmware volume), and e_entry must say so.
  if (firmware.entry !== RESET_VECTOR_GPA) {
    throw new GuestImageError(`firmware image ${quoteForError(firmwarePath)}: e_entry 0x${firmware.entry.toString(16)} is not the reset vector 0x${RESET_VECTOR_GPA.toString(16)} (the last 16 bytes of the firmware volume, where the vCPU starts)`);
  }
  const replaced = config.decompressorFile !== undefined || config.kernelFile !== undefined;
  const guestImage = replaced ? composeGuestImage(config, parse) : parse(built.guestImage, 'guest image', [GUEST_IMAGE_LOAD]);
  const linux = loadLinuxImages(config);
  const bytes = encodeFirmwareConfig({
    memoryBytes: config.memoryBytes,
    preAccept: config.preAccept,
    acceptMode: config.accept,
    acceptUnit: config.unitBytes === 4096n ? 4096 : 0x200000,
    workloadBytes: config.workloadBytes,
    seed: config.seed,
    platformHint: config.platform,
    guestImageEntry: linux ? linux.plan.entry : guestImage.entry,
    linux: linux !== undefined,
    ...(config.vcpus !== undefined && config.vcpus > 1 ? { cpus: config.vcpus } : {}),
  });
  return { firmware, guestImage, config: { gpa: FW_CONFIG_GPA, bytes }, ...(linux ? { linux } : {}) };
}
