// Synthetic bzImages for the boot-protocol tests: a setup header with the fields a 64-bit loader
// reads, setup sectors, and a protected-mode part with recognisable bytes.
import { SetupHeader } from '../../src/boot/linux/bzimage.js';

export interface FakeBzImageOptions {
  setupSects?: number;
  protocol?: number;
  loadflags?: number;
  xloadflags?: number;
  kernelBytes?: number;
  kernelAlignment?: number;
  prefAddress?: bigint;
  initSize?: number;
  cmdlineSize?: number;
  version?: string;
}

export function fakeBzImage(o: FakeBzImageOptions = {}): Uint8Array {
  const setupSects = o.setupSects ?? 4;
  const kernelBytes = o.kernelBytes ?? 0x3000;
  const setupBytes = ((setupSects || 4) + 1) * 512; // 0 means 4 (boot.rst)
  const bytes = new Uint8Array(setupBytes + kernelBytes);
  const view = new DataView(bytes.buffer);
  view.setUint8(SetupHeader.SETUP_SECTS, setupSects);
  view.setUint32(SetupHeader.SYSSIZE, Math.ceil(kernelBytes / 16), true);
  view.setUint16(SetupHeader.BOOT_FLAG, 0xaa55, true);
  view.setUint32(SetupHeader.HEADER, 0x53726448, true);
  view.setUint16(SetupHeader.VERSION, o.protocol ?? 0x20f, true);
  view.setUint8(SetupHeader.LOADFLAGS, o.loadflags ?? 1);
  view.setUint32(SetupHeader.CODE32_START, 0x100000, true);
  view.setUint32(SetupHeader.KERNEL_ALIGNMENT, o.kernelAlignment ?? 0x200000, true);
  view.setUint8(SetupHeader.RELOCATABLE_KERNEL, 1);
  view.setUint8(SetupHeader.MIN_ALIGNMENT, 21);
  view.setUint16(SetupHeader.XLOADFLAGS, o.xloadflags ?? 0x7f, true);
  view.setUint32(SetupHeader.CMDLINE_SIZE, o.cmdlineSize ?? 0x7ff, true);
  view.setUint32(SetupHeader.PAYLOAD_OFFSET, 0x300, true);
  view.setUint32(SetupHeader.PAYLOAD_LENGTH, 0x100, true);
  view.setBigUint64(SetupHeader.PREF_ADDRESS, o.prefAddress ?? 0x1000000n, true);
  view.setUint32(SetupHeader.INIT_SIZE, o.initSize ?? 0x800000, true);
  if (o.version !== undefined) {
    const at = 0x400;
    bytes.set(Buffer.from(`${o.version}\0`, 'latin1'), at);
    view.setUint16(SetupHeader.KERNEL_VERSION, at - 0x200, true);
  }
  for (let i = 0; i < kernelBytes; i++) bytes[setupBytes + i] = (i * 7) & 0xff;
  return bytes;
}
