// Brings up a confidential guest the way a real VMM does before the first instruction: the
// firmware volume below 4 GiB (up to 16 MiB, firmware-volume.ts), the initial image and a small
// temporary RAM are added as private, pre-accepted memory (TDX: TDH.MEM.PAGE.ADD, with the volume
// and image measured into MRTD as TDVF's metadata asks; SNP: RMPUPDATE + SNP_LAUNCH_UPDATE into
// the launch digest); everything else stays unaccepted for the guest to accept. The vCPU starts
// at the reset vector in the volume.
import { INITIAL_IMAGE, INITIAL_IMAGE_PAST_CONFIG, FW_CONFIG_PAGE, TEMP_RAM, FW_CONFIG_GPA, SNP_CPUID_PAGE_GPA, guestPhysicalBytes, guestRamRanges } from './layout.js';
import { loadElf } from './elf.js';
import { firmwareVolume } from './firmware-volume.js';
import type { Machine, RamPaging } from '../cpu/machine.js';
import type { PageState } from '../platform/platform.js';
import { gpaLevel } from '../platform/tdx/seamcall.js';
import { bspResetVmsa } from '../platform/snp/vmsa.js';
import { SnpPlatform } from '../platform/snp/snp-cpu.js';
import type { SnpVmmHandle } from '../platform/snp/vmm-handle.js';
import type { TdxVmmHandle } from '../platform/tdx/vmm-handle.js';
import { Console } from '../vmm/console.js';
import type { SnapshotParts } from '../shared/snapshottable.js';
import type { SnpVmExit } from '../platform/snp/snp-cpu.js';
import { TdAttributes, type TdExit } from '../platform/tdx/td-module.js';
import { Vm } from '../vmm/run-vm.js';
import { HonestSnpVmm, honestCpuidPage } from '../vmm/snp/honest-vmm.js';
import type { LaunchPageType, LaunchVmplPerms } from '../platform/snp/launch.js';
import { VMPL_PERM_RWX } from '../platform/snp/rmp.js';
import type { SnpVmmPolicy } from '../vmm/snp/policy.js';
import type { TdxVmm, TdxVmmPolicy } from '../vmm/tdx/honest-vmm.js';
import { SnpVmm } from '../vmm/snp/run-snp.js';
import { createTd } from '../vmm/tdx/run-td.js';
import { ensureSeptLevels } from '../vmm/tdx/honest-vmm.js';
import type { BootTrace } from './accounting.js';
import { StagedImage } from './staged-image.js';
import type { ScheduleOptions, VcpuScheduler } from '../cpu/vcpu-scheduler.js';
import type { BootImages } from './images.js';
import type { SparsePages } from '../shared/sparse-pages.js';

const PAGE = 0x1000n;
/** SNP C-bit position our platform reports (CPUID 0x8000001F EBX[5:0]), as on Milan/Genoa. */
export const SNP_C_BIT = 51;
/** TDX GPA width: the shared bit is bit 47. */
export const TDX_GPA_WIDTH = 48;

/**
 * The VMM of a booted guest: the driver whose `policy` decides every exit (replaceable between
 * runs) and the policy installed at boot (the honest VMM unless `vmm` options replaced it).
 */
export type BootVmm =
  | { kind: 'tdx'; driver: TdxVmm; honest: TdxVmmPolicy }
  | { kind: 'snp'; driver: SnpVmm; honest: SnpVmmPolicy & { console: Console } };

export interface BootPlatform {
  machine: Machine;
  console: Console;
  /** The run loop over the whole VM, with snapshots. */
  vm: Vm<TdExit> | Vm<SnpVmExit>;
  vmm: BootVmm;
  /** The launch measurement: TDX MRTD or SNP launch digest, hex. */
  measurement: string;
  /** The trusted hardware's view of a page (Platform.pageState), for verify. */
  pageState(gpa: bigint): PageState;
  /** Several vCPUs: who runs when (the fuzzer can reschedule it: an attack program's `schedule`). */
  scheduler: VcpuScheduler | undefined;
}

export interface BootPlatformOptions {
  memoryBytes: bigint;
  instructionLimit: bigint;
  countInstructions: boolean;
  /** How the host backs guest RAM (MachineOptions.ramPaging; default 'huge-pages'). */
  ramPaging?: RamPaging;
  trace: BootTrace;
  /** Receives each complete console line the guest prints (TDX and SNP alike). */
  echo: (line: string) => void;
  /** Replace the honest VMM's decisions (attack scenarios). Default: the honest VMMs. */
  vmm?: VmmOverride;
  /** State above the VMM that whole-VM snapshots must also cover (the boot's console parser). */
  extraState: SnapshotParts;
  /** The run's seed: what RDRAND, RDSEED and RDTSC return follows it (src/cpu/hardware-random.ts, virtual-tsc.ts). */
  seed: bigint;
  /** vCPUs and their seeded schedule (TDX: all start at the reset vector; SNP: APs when the guest creates them). */
  vcpus?: { count: number; schedule: ScheduleOptions };
}

export interface VmmOverride {
  tdx?: TdxVmmPolicy;
  /** Builds the SNP VMM around the console echo; must keep a console the boot can read. */
  snp?: (echo: (line: string) => void) => SnpVmmPolicy & { console: Console };
  /**
   * What the SNP VMM launches at the CPUID page's GPA. Default: the honest table (the CPU's
   * answers) as page type CPUID, which the firmware checks; `bytes` default to that table (type
   * ZERO takes none).
   */
  snpCpuidPage?: { type: LaunchPageType; bytes?: Uint8Array };
  /** The initial image the VMM loads (firmware config, firmware, guest image), before it is measured. */
  images?: (images: BootImages) => BootImages;
  /** Host actions after the honest launch and before TDH.MR.FINALIZE: more SEAMCALLs (e.g. PAGE.ADD, AUG), the shared EPT. */
  tdxPrelaunch?: (host: TdxVmmHandle) => void;
  /** Host actions after the honest launch and before SNP_LAUNCH_FINISH: RMPUPDATE, PSMASH, LAUNCH_UPDATE, NPT, shared memory. */
  snpPrelaunch?: (host: SnpVmmHandle) => void;
  /**
   * Runs the SNP guest at this VMPL (as under an SVSM), its launched pages granted to it through
   * SNP_LAUNCH_UPDATE's VMPLn_PERMS. Default 0.
   */
  snpVmpl?: 1 | 2 | 3;
}

type Staged = { staged: StagedImage; volume: { gpa: bigint; bytes: bigint } };

/**
 * Staged images by the images they were staged from: a fuzz executor launches the same images
 * (BootSessionIo.images) for most programs, and staging them took ~4% of a launch (issue 10).
 * Sealed: every launch only reads them, so VMs never share anything mutable through them.
 */
const stagedImages = new WeakMap<BootImages, Staged>();
/**
 * The firmware and guest image (or Linux boot data) staged without the config, by the firmware
 * and then by the guest image or Linux boot: a fuzz launch whose program changes only the
 * memory description launches other images (launch.ts edits a copy of the config) with the same
 * firmware and guest image, so only its config page is staged anew.
 */
const stagedCode = new WeakMap<object, WeakMap<object, Staged>>();

/** The firmware, guest image and config, staged in the VMM's own buffer for the measured launch. */
function stageImages(images: BootImages): Staged {
  let done = stagedImages.get(images);
  if (!done) {
    const code = stageCode(images);
    const staged = code.staged.derive();
    staged.write(images.config.gpa, images.config.bytes);
    checkLaunchRanges(staged, code.volume);
    done = { staged: staged.seal(), volume: code.volume };
    stagedImages.set(images, done);
  }
  return done;
}

function stageCode(images: BootImages): Staged {
  const guest = images.linux ?? images.guestImage;
  let byGuest = stagedCode.get(images.firmware);
  if (!byGuest) stagedCode.set(images.firmware, (byGuest = new WeakMap()));
  let done = byGuest.get(guest);
  if (!done) {
    const staged = new StagedImage();
    loadElf(staged, images.firmware);
    // A Linux boot puts the zero page and EFI tables where the guest image would go.
    if (images.linux) staged.write(images.linux.bootData.gpa, images.linux.bootData.bytes);
    else loadElf(staged, images.guestImage);
    const volume = firmwareVolume(images.firmware);
    checkLaunchRanges(staged, volume);
    done = { staged: staged.seal(), volume };
    byGuest.set(guest, done);
  }
  return done;
}

function checkLaunchRanges(staged: StagedImage, volume: { gpa: bigint; bytes: bigint }): void {
  const dropped = staged.pagesOutside([TEMP_RAM, INITIAL_IMAGE, volume]);
  if (dropped.length) throw new Error(`VMM setup: image bytes at 0x${dropped[0]!.toString(16)} lie outside the launch ranges`);
}

/** The CPU's random number generator and time-stamp counter start from the run's seed. */
function seedCpu(machine: Machine, seed: bigint): void {
  machine.random.seed(seed);
  machine.tsc.seed(seed);
}

export function bootTdx(images: BootImages, options: BootPlatformOptions): BootPlatform {
  const td = createTd({
    memoryBytes: guestPhysicalBytes(options.memoryBytes), ram: guestRamRanges(options.memoryBytes), instructionLimit: options.instructionLimit, countInstructions: options.countInstructions, gpaWidth: TDX_GPA_WIDTH,
    ...(options.ramPaging !== undefined ? { ramPaging: options.ramPaging } : {}),
    trace: options.trace, console: new Console(options.echo),
    extraState: options.extraState, ...(options.vmm?.tdx ? { policy: options.vmm.tdx } : {}),
    ...(options.vcpus ? { vcpus: options.vcpus.count, schedule: options.vcpus.schedule } : {}),
    // A Linux guest is launched as QEMU launches a TD by default (target/i386/kvm/tdx.c
    // tdx_guest_init: attributes = TDX_TD_ATTRIBUTES_SEPT_VE_DISABLE): Linux's tdx_early_init
    // refuses a TD whose SEPT #VE it cannot disable ("TD misconfiguration: SEPT #VE has to be
    // disabled", arch/x86/coco/tdx/tdx.c disable_sept_ve). The stubs handle #VE themselves.
    ...(images.linux ? { attributes: TdAttributes.SEPT_VE_DISABLE } : {}),
  });
  seedCpu(td.platform.machine, options.seed);
  const host = td.platform.handle;
  const { staged, volume } = stageImages(images);
  // TDH.VP.INIT: RCX is the VMM's hand-off, as KVM passes the TD HOB; here the firmware config.
  // Every vCPU starts at the reset vector 0xFFFFFFF0 (vp-init.ts); RSI tells the firmware which one it is.
  for (let vcpu = 0; vcpu < td.platform.machine.vcpuCount; vcpu++) host.vpInit(FW_CONFIG_GPA, vcpu);
  const check = (what: string, status: bigint) => {
    if (status !== 0n) throw new Error(`VMM setup: ${what} failed with TDX status 0x${status.toString(16)}`);
  };
  // Secure-EPT pages above the leaves of the pre-accepted 2 MiB region (TDH.MEM.SEPT.ADD), top
  // level first: only the root exists at TD creation. The operand GPA is aligned to what one
  // entry at that level maps (512 GiB, 1 GiB, 2 MiB).
  check('SEPT.ADD level 3', host.memSeptAdd(gpaLevel(TEMP_RAM.gpa & ~((1n << 39n) - 1n), 3)).status);
  check('SEPT.ADD level 2', host.memSeptAdd(gpaLevel(TEMP_RAM.gpa & ~0x3fffffffn, 2)).status);
  check('SEPT.ADD level 1', host.memSeptAdd(gpaLevel(TEMP_RAM.gpa & ~0x1fffffn, 1)).status);
  // PAGE.ADD copies each page from the VMM's staging buffer (the "source page" operand), one
  // range at a time as KVM_TDX_INIT_MEM_REGION takes them.
  const addPages: AddPages = (gpa, source, measured) => {
    const r = host.addPages(gpa, source, measured);
    check(`${measured ? 'PAGE.ADD+MR.EXTEND' : 'PAGE.ADD'} 0x${r.at.toString(16)}`, r.status);
  };
  const addRange = (range: { gpa: bigint; bytes: bigint }, measured: boolean) => addPages(range.gpa, staged.sparseRange(range.gpa, range.bytes), measured);
  addRange(TEMP_RAM, false);
  addRange(INITIAL_IMAGE_PAST_CONFIG, true);
  // The firmware volume, every page, as TDVF's TDX metadata section of type BFV asks (PAGE.ADD +
  // MR.EXTEND): its 1 GiB SEPT level once (the volume lies in the last GiB below 4 GiB; the
  // 512 GiB one is the temporary RAM's), then a 2 MiB level for each 2 MiB it spans.
  check('SEPT.ADD level 2 (firmware volume)', host.memSeptAdd(gpaLevel(volume.gpa & ~0x3fffffffn, 2)).status);
  for (let pd = volume.gpa & ~0x1fffffn; pd < volume.gpa + volume.bytes; pd += 0x200000n) {
    check(`SEPT.ADD level 1 (firmware volume 0x${pd.toString(16)})`, host.memSeptAdd(gpaLevel(pd, 1)).status);
  }
  addRange(volume, true);
  // The config page last, as TDVF's metadata lists its configuration volume (CFV) after the code
  // (BFV; OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm) and the VMM adds sections in that order.
  // A fuzz campaign's launches differ mostly in the config (the memory description): MRTD's
  // SHA-384 stream is then the same up to this page, and seamcall.ts's memo serves the ~1 MiB
  // before it (hashing it again was ~14% of a launch's CPU time).
  addRange(FW_CONFIG_PAGE, true);
  if (images.linux) launchLinuxTdx(host, images.linux, addPages);
  options.vmm?.tdxPrelaunch?.(host);
  if (images.linux) watchLinuxHandover(td.platform.machine, images.linux);
  const finalized = host.mrFinalize();
  check('MR.FINALIZE', finalized.status);
  return {
    machine: td.platform.machine, console: td.console, vm: td.vm, vmm: { kind: 'tdx', driver: td.vmm, honest: td.vmm.policy },
    measurement: finalized.mrtd?.toString('hex') ?? '', pageState: (gpa) => td.platform.pageState(gpa), scheduler: td.platform.scheduler,
  };
}

/** The protected-mode kernel's launched bytes, its range back to back: the image, zero past its end. */
function kernelRangeBytes(linux: NonNullable<BootImages['linux']>): Uint8Array {
  const { plan } = linux;
  const bytes = new Uint8Array(Number(plan.kernelRange.end - plan.kernelRange.start));
  const offset = Number(plan.kernelRange.start - plan.loadAddress);
  bytes.set(linux.image.kernel.subarray(offset, offset + bytes.byteLength));
  return bytes;
}

/**
 * The kernel's launched ranges (src/boot/linux/linux-launch.ts): the protected-mode kernel
 * measured (PAGE.ADD + MR.EXTEND of every page, like a TDVF/TD-shim payload), and the
 * decompressor's working area at the end of its buffer added zeroed without measurement (like
 * temporary RAM). Both are private and accepted before the vCPU runs.
 */
function launchLinuxTdx(host: TdxVmmHandle, linux: NonNullable<BootImages['linux']>, addPages: AddPages): void {
  const { plan } = linux;
  for (const range of [plan.kernelRange, plan.workRange]) {
    const measured = range === plan.kernelRange;
    const source = measured ? kernelRangeBytes(linux) : new Uint8Array(Number(range.end - range.start));
    // One range per 2 MiB, as KVM_TDX_INIT_MEM_REGION takes them, each after its SEPT levels.
    for (let gpa = range.start; gpa < range.end;) {
      const next = (gpa | 0x1fffffn) + 1n;
      const end = next < range.end ? next : range.end;
      if (gpa % 0x200000n === 0n) ensureSeptLevels(host, gpa, 0);
      addPages(gpa, source.subarray(Number(gpa - range.start), Number(end - range.start)), measured);
      gpa = end;
    }
  }
}

/** The VMM's PAGE.ADD (+ MR.EXTEND when `measured`) of `source` from `gpa` on, or an error naming the page that failed. */
type AddPages = (gpa: bigint, source: Uint8Array | SparsePages, measured: boolean) => void;

/**
 * The end point of a Linux boot: the decompressor's jump into the kernel it decompressed. The
 * watch arms when the relocated decompressor first runs in its working area (head_64.S jumps
 * there after copying itself), then stops the run at the first instruction fetched anywhere
 * else from the load address up: the decompressed kernel's entry (outcome `handover`), at the
 * load address's output or wherever KASLR put it (kaslr.c choose_random_location).
 */
function watchLinuxHandover(machine: Machine, linux: NonNullable<BootImages['linux']>): void {
  const { plan } = linux;
  machine.vcpu.watchExecution(plan.workRange, { start: plan.loadAddress, end: machine.memoryBytes });
}

/**
 * The kernel's launched ranges on SEV-SNP, as launchLinuxTdx does on TDX: the protected-mode
 * kernel measured page by page (SNP_LAUNCH_UPDATE page type NORMAL; QEMU's direct kernel boot
 * measures a table of the kernel's hashes instead, kernel-hashes=on, and lets OVMF load it), the
 * decompressor's working area as ZERO pages. LAUNCH_UPDATE leaves both validated.
 */
function launchLinuxSnp(linux: NonNullable<BootImages['linux']>, launch: LaunchRange): void {
  const { plan } = linux;
  launch(plan.kernelRange.start, plan.kernelRange.end - plan.kernelRange.start, 'NORMAL', kernelRangeBytes(linux));
  launch(plan.workRange.start, plan.workRange.end - plan.workRange.start, 'ZERO');
}

/** KVM_SEV_SNP_LAUNCH_UPDATE of [gpa, gpa+bytes) as `type` (SnpVmmHandle.launchRange), or an error. */
type LaunchRange = (gpa: bigint, bytes: bigint, type: LaunchPageType, source?: Uint8Array | SparsePages) => void;

export function bootSnp(images: BootImages, options: BootPlatformOptions): BootPlatform {
  const platform = SnpPlatform.create({
    memoryBytes: guestPhysicalBytes(options.memoryBytes), instructionLimit: options.instructionLimit, countInstructions: options.countInstructions,
    ...(options.ramPaging !== undefined ? { ramPaging: options.ramPaging } : {}),
    trace: options.trace, cBit: SNP_C_BIT, ...(options.vmm?.snpVmpl ? { vmpl: options.vmm.snpVmpl } : {}),
    // Only vCPU 0 starts from the launch VMSA; the kernel creates the APs (AP Creation VMGEXIT).
    ...(options.vcpus ? { vcpus: options.vcpus.count, schedule: options.vcpus.schedule } : {}),
  });
  seedCpu(platform.machine, options.seed);
  const vmpl = options.vmm?.snpVmpl ?? 0;
  const lowerVmplPerms = [1, 2, 3].map((v) => (v <= vmpl ? VMPL_PERM_RWX : 0)) as unknown as LaunchVmplPerms;
  const host = platform.handle;
  const { staged, volume } = stageImages(images);
  // One launch command per piece of the image with one page type, as KVM takes them
  // (KVM_SEV_SNP_LAUNCH_UPDATE over a range); the digest takes the pages in address order.
  const launch: LaunchRange = (gpa, bytes, type, source) => {
    const r = host.launchRange(gpa, bytes, type, source, lowerVmplPerms);
    if (r.rc !== 0) throw new Error(`VMM setup: ${r.op === 'rmpupdate' ? 'RMPUPDATE' : 'SNP_LAUNCH_UPDATE'} 0x${r.at.toString(16)} failed: ${r.result}`);
  };
  /** `range` as `type` from the staged image, but for the page at `special.gpa` (if inside) as its own type and bytes. */
  const launchAround = (range: { gpa: bigint; bytes: bigint }, type: LaunchPageType, special?: { gpa: bigint; type: LaunchPageType; bytes?: Uint8Array }) => {
    const end = range.gpa + range.bytes;
    const piece = (from: bigint, to: bigint) => {
      if (to > from) launch(from, to - from, type, type === 'ZERO' ? undefined : staged.sparseRange(from, to - from));
    };
    if (!special || special.gpa < range.gpa || special.gpa >= end) {
      piece(range.gpa, end);
      return;
    }
    piece(range.gpa, special.gpa);
    launch(special.gpa, PAGE, special.type, special.bytes);
    piece(special.gpa + PAGE, end);
  };
  // The CPUID page, like QEMU's sev_snp_launch_update_cpuid: a table the firmware checks.
  const cpuidType = options.vmm?.snpCpuidPage?.type ?? 'CPUID';
  // A ZERO page takes no source (LAUNCH_UPDATE zeroes it), as the ZERO pieces around it.
  const cpuid = { type: cpuidType, bytes: options.vmm?.snpCpuidPage?.bytes ?? (cpuidType === 'ZERO' ? undefined : honestCpuidPage(host.cBit)) };
  launchAround(TEMP_RAM, 'ZERO', { gpa: SNP_CPUID_PAGE_GPA, ...cpuid });
  // A Linux boot's secrets page (named by the CC blob) lies in the initial image; the firmware writes it.
  const secretsPageGpa = images.linux?.bootData.secretsPageGpa;
  const secrets = secretsPageGpa === undefined ? undefined : { gpa: secretsPageGpa, type: 'SECRETS' as const, bytes: staged.page(secretsPageGpa) };
  // The config page after the rest of the image and the volume, as on TDX (bootTdx says why):
  // the launch digest chains page after page, so the memo in launch.ts serves the pages before it.
  launchAround(INITIAL_IMAGE_PAST_CONFIG, 'NORMAL', secrets);
  launchAround(volume, 'NORMAL');
  launchAround(FW_CONFIG_PAGE, 'NORMAL', secrets);
  if (images.linux) launchLinuxSnp(images.linux, launch);
  options.vmm?.snpPrelaunch?.(host);
  if (images.linux) watchLinuxHandover(platform.machine, images.linux);
  // The BSP's VMSA, last as QEMU does: the reset state, real mode at 0xFFFF0000:FFF0 (vmsa.ts).
  host.launchUpdateVmsa(bspResetVmsa());
  const measurement = host.launchFinish();
  const policy = options.vmm?.snp?.(options.echo) ?? new HonestSnpVmm({ echo: options.echo, ram: guestRamRanges(options.memoryBytes) });
  const driver = new SnpVmm(host, policy);
  const vm = new Vm({ platform, vmm: driver, trace: options.trace, console: policy.console }, options.extraState);
  return {
    machine: platform.machine, console: policy.console, vm, vmm: { kind: 'snp', driver, honest: policy }, measurement,
    pageState: (gpa) => platform.pageState(gpa), scheduler: platform.scheduler,
  };
}
