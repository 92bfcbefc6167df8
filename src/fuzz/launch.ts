// An attack program's launch part as the VMM's launch hooks: the initial image it loads (image
// writes, the memory description in the firmware config page), pages it adds to the launch
// (TDH.MEM.PAGE.ADD, SNP_LAUNCH_UPDATE) and host actions before TDH.MR.FINALIZE /
// SNP_LAUNCH_FINISH. Every hook acts through what the VMM has at launch (its own staging copy
// of the image, the SEAMCALL / SNP host interface); a host action the hardware refuses just
// does nothing, like a refused lie at run time.
import type { BootImages } from '../boot/images.js';
import { ABI, FW_CONFIG_GPA } from '../boot/layout.js';
import type { VmmOverride } from '../boot/platforms.js';
import { gpaLevel } from '../platform/tdx/seamcall.js';
import type { SeptLevel } from '../platform/tdx/sept-states.js';
import { Sept } from '../platform/tdx/sept.js';
import { ensureSeptLevels } from '../vmm/tdx/honest-vmm.js';
import { snpHostAction, tdxHostAction } from './adversary.js';
import type { AttackProgram, HostAction, LaunchAction, MemoryRange } from './attack-program.js';

const PAGE = 0x1000n;
/** The config page: the firmware reads its fields and, with the map-from-config fixture, a memory map further in. */
const CONFIG_PAGE_BYTES = 0x1000;

function littleEndian(value: bigint, size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = Number((value >> BigInt(8 * i)) & 0xffn);
  return bytes;
}

/**
 * The initial image with `bytes` written at `gpa`: into the config page (grown to a page), or
 * into the firmware / guest image segment that holds it. A write anywhere else lands outside the
 * image the VMM loads: there is nothing to write into, so it does nothing.
 */
function writeImage(images: BootImages, gpa: bigint, bytes: Uint8Array): BootImages {
  const configAt = gpa - FW_CONFIG_GPA;
  if (configAt >= 0n && configAt + BigInt(bytes.length) <= BigInt(CONFIG_PAGE_BYTES)) {
    const config = new Uint8Array(Math.max(CONFIG_PAGE_BYTES, images.config.bytes.length));
    config.set(images.config.bytes);
    config.set(bytes, Number(configAt));
    return { ...images, config: { gpa: images.config.gpa, bytes: config } };
  }
  for (const which of ['firmware', 'guestImage'] as const) {
    const segments = images[which].segments;
    const index = segments.findIndex((s) => gpa >= s.gpa && gpa + BigInt(bytes.length) <= s.gpa + BigInt(s.data.length));
    if (index < 0) continue;
    const segment = segments[index]!;
    const data = new Uint8Array(segment.data);
    data.set(bytes, Number(gpa - segment.gpa));
    const copy = segments.slice();
    copy[index] = { ...segment, data };
    return { ...images, [which]: { ...images[which], segments: copy } };
  }
  return images;
}

/**
 * struct mv_map_override (guest/include/minivisor/boot_abi.h): magic, entry count, accept unit
 * (0: the firmware's own), reserved, then struct mv_e820_entry { addr, size, type, reserved }.
 */
function mapOverrideBytes(ranges: readonly MemoryRange[]): Uint8Array {
  const entry = Number(ABI.MV_E820_ENTRY_SIZE);
  const bytes = new Uint8Array(16 + ranges.length * entry);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, Number(ABI.MV_MAP_OVERRIDE_MAGIC), true);
  view.setUint32(4, ranges.length, true);
  ranges.forEach((r, i) => {
    const at = 16 + i * entry;
    view.setBigUint64(at, r.addr, true);
    view.setBigUint64(at + 8, r.size, true);
    view.setUint32(at + 16, r.type, true);
  });
  return bytes;
}

function imageEdits(program: AttackProgram): ((images: BootImages) => BootImages) | undefined {
  const writes: { gpa: bigint; bytes: Uint8Array }[] = [];
  const m = program.memoryDescription;
  if (m?.memoryBytes !== undefined) writes.push({ gpa: FW_CONFIG_GPA + ABI.MV_FW_CONFIG_OFF_MEMORY_BYTES, bytes: littleEndian(m.memoryBytes, 8) });
  if (m?.preAcceptBytes !== undefined) writes.push({ gpa: FW_CONFIG_GPA + ABI.MV_FW_CONFIG_OFF_PRE_ACCEPT_BYTES, bytes: littleEndian(m.preAcceptBytes, 8) });
  if (m?.ranges !== undefined) writes.push({ gpa: FW_CONFIG_GPA + ABI.MV_MAP_OVERRIDE_OFFSET, bytes: mapOverrideBytes(m.ranges) });
  for (const a of program.launch ?? []) if (a.kind === 'image-write') writes.push({ gpa: a.gpa, bytes: littleEndian(a.value, a.size) });
  if (writes.length === 0) return undefined;
  return (images) => writes.reduce((acc, w) => writeImage(acc, w.gpa, w.bytes), images);
}

/** Runs `body`; a refusal by the hardware (a thrown error from the host interface) is the attack failing. */
function attempt(body: () => unknown): void {
  try {
    body();
  } catch {
    // The module / security processor refused: the VMM just could not do it.
  }
}

const isHostAction = (a: LaunchAction): a is Extract<LaunchAction, HostAction> =>
  a.kind !== 'image-write' && a.kind !== 'tdx.page-add' && a.kind !== 'tdx.lock-entry' && a.kind !== 'snp.launch-page' && a.kind !== 'snp.cpuid-page';

/** The VMM override that carries out the program's launch part (memory description included). */
export function launchOverride(program: AttackProgram): VmmOverride {
  const override: VmmOverride = {};
  const images = imageEdits(program);
  if (images) override.images = images;
  // The CPUID page's type (the last one the program gives): what the VMM launches at its GPA.
  const cpuidPage = (program.launch ?? []).filter((a) => a.kind === 'snp.cpuid-page').pop();
  if (cpuidPage && program.platform === 'snp') {
    override.snpCpuidPage = { type: cpuidPage.type };
  }
  const actions = (program.launch ?? []).filter((a) => a.kind !== 'image-write' && a.kind !== 'snp.cpuid-page');
  if (actions.length === 0) return override;
  if (program.platform === 'tdx') {
    override.tdxPrelaunch = (host) => {
      for (const a of actions) {
        attempt(() => {
          if (a.kind === 'tdx.page-add') {
            const gpa = a.gpa & ~(PAGE - 1n);
            ensureSeptLevels(host, gpa, 0);
            host.memPageAdd(gpaLevel(gpa, 0), new Uint8Array(Number(PAGE)).fill(a.fill));
          } else if (a.kind === 'tdx.lock-entry') {
            host.lockEntry(Sept.alignDown(a.gpa, a.level as SeptLevel), a.level as SeptLevel);
          } else if (isHostAction(a)) {
            tdxHostAction(host, a);
          }
        });
      }
    };
  } else {
    override.snpPrelaunch = (host) => {
      const slots = { captured: new Map<number, Uint8Array>() };
      for (const a of actions) {
        attempt(() => {
          if (a.kind === 'snp.launch-page') {
            const gpa = a.gpa & ~(PAGE - 1n);
            if (host.rmpUpdate(gpa, { assigned: true, pageSize: '4k', immutable: true, gpa, asid: host.asid }).rc !== 0) return;
            host.launchUpdatePage(gpa, 'NORMAL', new Uint8Array(Number(PAGE)).fill(a.fill));
          } else if (isHostAction(a)) {
            snpHostAction(slots, host, a);
          }
        });
      }
    };
  }
  return override;
}
