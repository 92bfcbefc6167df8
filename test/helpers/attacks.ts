// Building blocks for scripted attacks on the guest stubs: each is something a real VMM can do
// (write the initial image it loads, answer a TDVMCALL or VMGEXIT differently, make SEAMCALLs or
// RMPUPDATE/PSMASH between exits). They return a VmmOverride for bootGuest.
import { ABI, FW_CONFIG_GPA } from '../../src/boot/layout.js';
import type { E820Entry } from '../../src/boot/fw-config.js';
import { decodePscEntry, GHCB_OFFSET, pscEntryAddress, SVM_EXIT } from '../../src/platform/snp/ghcb-page.js';
import { PSC_OP } from '../../src/platform/snp/ghcb-msr.js';
import type { SnpVmmHandle as SnpHost } from '../../src/platform/snp/vmm-handle.js';
import { gpaLevel } from '../../src/platform/tdx/seamcall.js';
import type { TdxVmmHandle } from '../../src/platform/tdx/vmm-handle.js';
import type { BootImages } from '../../src/boot/images.js';
import type { VmmOverride } from '../../src/boot/platforms.js';
import { HonestSnpVmm } from '../../src/vmm/snp/honest-vmm.js';
import { TdvmcallStatus } from '../../src/platform/tdx/status.js';
import { ensureSeptLevels, honestTdxPolicy, type TdxVmmPolicy, type VmcallExit, type VmmContext } from '../../src/vmm/tdx/honest-vmm.js';

type Vmgexit = Parameters<HonestSnpVmm['onVmgexit']>[1];

/** The honest TDX policy with some decisions replaced. */
export function tdxPolicy(overrides: Partial<TdxVmmPolicy>): VmmOverride {
  return { tdx: { ...honestTdxPolicy, ...overrides } };
}

/** The honest TDX policy, plus a host action (SEAMCALLs) taken once at the kernel's first MapGPA. */
export function tdxAtKernelMapGpa(action: (ctx: VmmContext, call: VmcallExit) => void): VmmOverride {
  let done = false;
  return tdxPolicy({
    mapGpa(ctx, call) {
      if (!done && ctx.console.text.includes('@mv stage kernel')) { done = true; action(ctx, call); }
      return honestTdxPolicy.mapGpa(ctx, call);
    },
  });
}

/** The honest SNP VMM, with `before`/`after` hooks around each VMGEXIT it answers. */
export function snpVmm(hooks: {
  /** `honest` answers the exit as the honest VMM would (then the hook may change the answer). */
  before?: (host: SnpHost, exit: Vmgexit, honest: HonestSnpVmm['onVmgexit']) => 'honest' | ReturnType<HonestSnpVmm['onVmgexit']>;
  after?: (host: SnpHost, exit: Vmgexit) => void;
}): VmmOverride {
  return {
    snp: (echo) => {
      const vmm = new HonestSnpVmm({ echo });
      const honest = vmm.onVmgexit.bind(vmm);
      vmm.onVmgexit = (host, exit) => {
        const early = hooks.before?.(host, exit, honest) ?? 'honest';
        if (early !== 'honest') return early;
        const answer = honest(host, exit);
        hooks.after?.(host, exit);
        return answer;
      };
      return vmm;
    },
  };
}

/** The GHCB page of a VMGEXIT through it (not the MSR protocol), when its exit code is `code`. */
export function ghcbExit(host: SnpHost, exit: Vmgexit, code: number): bigint | undefined {
  const ghcb = exit.ghcbMsr;
  if ((ghcb & 0xfffn) !== 0n || ghcb === 0n) return undefined;
  return host.hostMemory.readU64(ghcb + BigInt(GHCB_OFFSET.swExitCode)) === BigInt(code) ? ghcb : undefined;
}

/** After every Page State Change VMGEXIT the honest VMM answered, `tamper` edits the GHCB. */
export function snpAfterPsc(tamper: (host: SnpHost, ghcb: bigint) => void): VmmOverride {
  return snpVmm({ after: (host, exit) => { const g = ghcbExit(host, exit, SVM_EXIT.PSC); if (g !== undefined) tamper(host, g); } });
}

/** The entries of the PSC descriptor in a GHCB's shared buffer, from cur_entry to end_entry. */
export function pscEntries(host: SnpHost, ghcb: bigint): { at: bigint; gpa: bigint; op: number; size2m: boolean }[] {
  const buf = ghcb + BigInt(GHCB_OFFSET.sharedBuffer);
  const out = [];
  for (let i = host.hostMemory.readU16(buf); i <= host.hostMemory.readU16(buf + 2n) && i < 253; i++) {
    const at = pscEntryAddress(buf, i);
    const e = decodePscEntry(host.hostMemory.readU64(at));
    out.push({ at, gpa: e.gfn << 12n, op: e.op, size2m: e.size2m });
  }
  return out;
}

export { PSC_OP };

/** Replaces the initial image the VMM loads. */
export function withImages(edit: (images: BootImages) => BootImages): VmmOverride {
  return { images: edit };
}

/** The guest image with one more 4 KiB page of `fill` bytes at `gpa` (a copy of its first segment's permissions). */
export function withStrayImagePage(gpa: bigint, fill = 0): VmmOverride {
  return withImages((images) => {
    const template = images.guestImage.segments[0]!;
    const page = { ...template, gpa, vaddr: gpa, data: new Uint8Array(0x1000).fill(fill), memSize: 0x1000n };
    return { ...images, guestImage: { ...images.guestImage, segments: [...images.guestImage.segments, page] } };
  });
}

/** The firmware config page with `edit` applied to its bytes (grown to `length` first). */
export function editConfig(edit: (b: Buffer) => void, length = Number(ABI.MV_FW_CONFIG_SIZE)): VmmOverride {
  return withImages((images) => {
    const b = Buffer.alloc(Math.max(length, images.config.bytes.length));
    b.set(images.config.bytes);
    edit(b);
    return { ...images, config: { gpa: FW_CONFIG_GPA, bytes: new Uint8Array(b) } };
  });
}

/** A struct mv_map_override in the config page (read only by the map-from-config firmware). */
export function mapOverride(e820: readonly Partial<E820Entry & { reserved: number }>[], opts: { count?: number; acceptUnit?: number } = {}): VmmOverride {
  const at = Number(ABI.MV_MAP_OVERRIDE_OFFSET);
  return editConfig((b) => {
    b.writeUInt32LE(Number(ABI.MV_MAP_OVERRIDE_MAGIC), at);
    b.writeUInt32LE(opts.count ?? e820.length, at + 4);
    b.writeUInt32LE(opts.acceptUnit ?? 0, at + 8);
    e820.forEach((e, i) => {
      const o = at + 16 + i * Number(ABI.MV_E820_ENTRY_SIZE);
      b.writeBigUInt64LE(e.addr ?? 0n, o);
      b.writeBigUInt64LE(e.size ?? 0n, o + 8);
      b.writeUInt32LE(e.type ?? 1, o + 16);
      b.writeUInt32LE(e.reserved ?? 0, o + 20);
    });
  }, 0x1000);
}

const MAGIC = Buffer.from('MVL4', 'latin1');

/** Offset of the compressed kernel's header (struct mv_payload_header) in the guest image's segment. */
function payloadHeader(images: BootImages): { data: Buffer; at: number } {
  for (const s of images.guestImage.segments) {
    const data = Buffer.from(s.data.buffer, s.data.byteOffset, s.data.byteLength);
    // The magic also appears as an immediate in the decompressor's code: the header is the
    // occurrence followed by the kernel's load address.
    for (let at = data.indexOf(MAGIC); at >= 0; at = data.indexOf(MAGIC, at + 1)) {
      if (at + 24 <= data.length && data.readBigUInt64LE(at + 16) === ABI.MV_KERNEL_LOAD_GPA) return { data, at };
    }
  }
  throw new Error('no kernel payload header in the guest image');
}

/** The kernel's memory size (image + bss) from the payload header. */
export function payloadMemoryBytes(images: BootImages): bigint {
  const { data, at } = payloadHeader(images);
  return BigInt(data.readUInt32LE(at + 12));
}

/** The guest image with its kernel payload (header and LZ4 block after it) edited in a copy. */
export function editPayload(edit: (b: Buffer, header: number) => void): VmmOverride {
  return withImages((images) => {
    const segments = images.guestImage.segments.map((s) => ({ ...s, data: new Uint8Array(s.data) }));
    const copy = { ...images, guestImage: { ...images.guestImage, segments } };
    const { data, at } = payloadHeader(copy);
    edit(data, at);
    return copy;
  });
}

/** TDH.MEM.PAGE.ADD of one page with `fill` bytes before the TD runs (an extra, measured-away page). */
export function tdxPageAddBeforeLaunch(gpa: bigint, fill = 0): (host: TdxVmmHandle) => void {
  return (host) => {
    ensureSeptLevels(host, gpa, 0);
    const r = host.memPageAdd(gpaLevel(gpa, 0), new Uint8Array(4096).fill(fill));
    if (r.status !== 0n) throw new Error(`PAGE.ADD 0x${gpa.toString(16)} failed: 0x${r.status.toString(16)}`);
  };
}

/** RMPUPDATE + SNP_LAUNCH_UPDATE of one more page before the guest runs: validated, VMM-chosen contents. */
export function snpLaunchPageBeforeLaunch(gpa: bigint): NonNullable<VmmOverride['snpPrelaunch']> {
  return (host) => {
    const u = host.rmpUpdate(gpa, { assigned: true, pageSize: '4k', immutable: true, gpa, asid: host.asid });
    if (u.rc !== 0) throw new Error(`RMPUPDATE 0x${gpa.toString(16)}: ${u.result}`);
    const l = host.launchUpdatePage(gpa, 'NORMAL', new Uint8Array(4096).fill(0xa5));
    if (l.rc !== 0) throw new Error(`LAUNCH_UPDATE 0x${gpa.toString(16)}: ${l.result}`);
  };
}

/**
 * A VMM that skips pages it believes are private already: for a 2M PSC(private) entry over the
 * region holding `validatedPage`, it assigns every other 4K page and reports the entry done,
 * leaving the page the guest never validated (it came validated from launch) as it is.
 */
export function snpPscSkipsAssignedPage(validatedPage: bigint): VmmOverride['snp'] {
  return snpVmm({
    before: (host, exit) => {
      const g = ghcbExit(host, exit, SVM_EXIT.PSC);
      if (g === undefined) return 'honest';
      const region = validatedPage & ~0x1fffffn;
      for (const e of pscEntries(host, g)) {
        if (e.op !== PSC_OP.PRIVATE || !e.size2m || e.gpa !== region) continue;
        for (let p = region; p < region + 0x200000n; p += 0x1000n) {
          if (p !== validatedPage) host.rmpUpdate(p, { assigned: true, pageSize: '4k', gpa: p, asid: host.asid });
        }
        host.hostMemory.writeU64(e.at, (host.hostMemory.readU64(e.at) & ~0xfffn) | 512n); // cur_page[11:0] = 512: all done
      }
      return 'honest';
    },
  }).snp;
}

/** The SNP PSC VMGEXIT for the kernel's first conversion to shared (an exit in the kernel stage). */
export function snpAtFirstSharedPsc(action: (host: SnpHost, ghcb: bigint) => void): VmmOverride {
  let done = false;
  return snpVmm({
    before: (host, exit) => {
      const ghcb = exit.ghcbMsr;
      if (done || (ghcb & 0xfffn) !== 0n || ghcb === 0n) return 'honest';
      const entry = host.hostMemory.readU64(ghcb + BigInt(GHCB_OFFSET.sharedBuffer) + 8n);
      if (Number((entry >> 52n) & 0xfn) === 2 /* shared */) { done = true; action(host, ghcb); }
      return 'honest';
    },
  });
}

/** A MapGPA that answers SUCCESS and maps the shared alias, but never removes (or re-adds) the private pages. */
export function mapGpaKeepsPrivatePages(): VmmOverride {
  return tdxPolicy({
    mapGpa(ctx, call) {
      const sharedBit = 1n << BigInt(ctx.gpaWidth - 1);
      const toShared = (call.regs.r12 & sharedBit) !== 0n;
      ctx.host.setShared(call.regs.r12 & ~sharedBit, call.regs.r13, toShared);
      return { kind: 'return', regs: { r10: TdvmcallStatus.SUCCESS } };
    },
  });
}

/** A TDX VMM that answers every ACCEPT exit on a FREE/REMOVED range with 4K AUGs only. */
export function tdxBacks2mWith4k(): VmmOverride {
  return tdxPolicy({
    onAcceptViolation(ctx, exit) {
      const e = exit.eeq;
      if (e.type !== 'accept' || e.reqLevel !== 1 || (e.errState !== 'FREE' && e.errState !== 'REMOVED')) return honestTdxPolicy.onAcceptViolation(ctx, exit);
      const base = exit.gpa & ~0x1fffffn;
      ensureSeptLevels(ctx.host, base, 0);
      for (let p = base; p < base + 0x200000n; p += 0x1000n) ctx.host.memPageAug(gpaLevel(p, 0));
      return { kind: 'resume' };
    },
  });
}

/** An SNP VMM that makes every 2M PSC(private) entry out of 4K RMP entries (and keeps its NPT at 4K). */
export function snpBacks2mWith4k(): VmmOverride {
  return snpVmm({
    before: (host, exit) => {
      const g = ghcbExit(host, exit, SVM_EXIT.PSC);
      if (g === undefined) return 'honest';
      for (const e of pscEntries(host, g)) {
        if (e.op !== PSC_OP.PRIVATE || !e.size2m) continue;
        for (let p = e.gpa; p < e.gpa + 0x200000n; p += 0x1000n) host.rmpUpdate(p, { assigned: true, pageSize: '4k', gpa: p, asid: host.asid });
        host.hostMemory.writeU64(e.at, (host.hostMemory.readU64(e.at) & ~0xfffn) | 512n);
      }
      return 'honest';
    },
  });
}
