// Loads the native addon and describes its surface. The addon is deliberately thin: every
// friendly check and every policy lives in src/cpu and src/memory.
import { createRequire } from 'node:module';
import { addonFile } from './addon-file.js';
import { provideChainDigest, provideDigests, type ChainDigest, type DigestAlgorithm } from '../shared/digest.js';
import { provideEventEncoder, type EventEncoder } from '../shared/trace.js';
import { PACKAGE_ROOT } from '../shared/package-root.js';

export interface NativeMarker {
  bit: number;
  setMeansPrivate: boolean;
  privateWhenPagingOff: boolean;
  fetchAlwaysPrivate: boolean;
  maxPhysBits: number;
}

export interface NativeTranslation {
  status: 'ok' | 'page-fault' | 'table-blocked';
  gpa: bigint;
  isPrivate: boolean;
  level: number;
  writable: boolean;
  executable: boolean;
  /** U/S = 1 at every level of the walk: a user-mode access may reach the page (true with paging off). */
  userPage: boolean;
  pfError: number;
}

export interface NativeCodeSegment {
  bits: 16 | 32 | 64;
  longMode: boolean;
  protectedMode: boolean;
  selector: number;
  base: bigint;
}

export interface NativeMachine {
  run(): void;
  close(): void;
  /** `fetch`: which CPLs may fetch from the pages, bit 0 CPL 0-2, bit 1 CPL 3 (page-gate.ts GateFetch). */
  setGate(space: number, gpa: bigint, length: bigint, access: number, fetch: number): void;
  getGate(space: number, gpa: bigint): number;
  getGateFetch(space: number, gpa: bigint): number;
  writeShadow(gpa: bigint, data: Uint8Array): void;
  countGate(space: number, gpa: bigint, length: bigint, atLeast: number): bigint;
  readSpecial(id: number): bigint;
  writeSpecial(id: number, value: bigint): void;
  readMsr(index: number): bigint;
  writeMsr(index: number, value: bigint): void;
  /** Copies target.byteLength bytes from `gpa` into `target`. */
  readInto(gpa: bigint, target: Uint8Array): void;
  write(gpa: bigint, data: Uint8Array): void;
  fill(gpa: bigint, length: bigint, byte: number): void;
  window(gpa: bigint, length: number): ArrayBuffer;
  /** Guest RAM [chunk * 64 KiB, (chunk + 1) * 64 KiB) (less at its end), detached by close(); it does not keep the RAM alive as window() does. */
  ramView(chunk: number): ArrayBuffer;
  noteHostWrite(gpa: bigint, length: bigint): void;
  /** Packed result (see native/src/addon.cc Translate); the GPA goes to the run area's hostResult slot. */
  translate(va: bigint, access: number, user?: boolean): number;
  /** `resume`: the pushed RFLAGS image has RF set, as for a fault (native/src/deliver.cc). */
  inject(vector: number, errorCode?: bigint, cr2?: bigint, resume?: boolean): string;
  /** inject(), then the same delivery again while the guest's next run ends in the same gate fault (native/src/deliver.cc); run area hostResult = the repeats. */
  injectRepeating(vector: number, errorCode?: bigint, cr2?: bigint, resume?: boolean): string;
  setEntryState(mode: number, csSelector: number, csBase: bigint): string;
  /** Raises CPL to `descriptor`'s DPL with CS = `selector` loaded from it and SS = NULL (native/src/guest_stub.cc). */
  enterInnerPrivilege(selector: number, descriptor: bigint): string;
  /** XCR0 <- value through an XSETBV the guest CPU runs in the stub page (native/src/guest_stub.cc). */
  writeXcr0(value: bigint): string;
  codeSegment(): NativeCodeSegment;
  snapshot(): number;
  restore(id: number): void;
  forgetSnapshot(id: number): void;
  saveCpuState(): Buffer;
  loadCpuState(state: Uint8Array): void;
  setPauseExits(on: boolean): void;
  /** XSETBV runs on the CPU unless EDX:EAX has a bit outside `mask` (then an `xsetbv` exit); all ones by default (native/src/machine.h). */
  setXsetbvAllowed(mask: bigint): void;
  setDebugRegisterIntercepts(mask: bigint): void;
  setMarker(marker: NativeMarker): void;
  dirtyPages(): number;
  /** [TLB fills, TLB flushes, restored pages, kept code pages, dropped code pages, kept code bits] (native/src/machine.h MemoryCounters). */
  memoryCounters(): number[];
  /** `slots`: the list of slots hit since the last reset, [count, slot, …] (native/src/machine.h SetEdgeMap). */
  setEdgeMap(map: Uint8Array | null, slots?: Uint32Array): void;
  resetEdges(): void;
  watchExecution(armBegin: bigint, armEnd: bigint, stopBegin: bigint, stopEnd: bigint): void;
  watchContent(gpa: bigint, bytes: bigint, on: boolean, untilWrite?: boolean): void;
  countWatchedContent(gpa: bigint, bytes: bigint): number;
  /** (gpa, rip, instructions) triples, oldest first. */
  takeForeignReads(): BigUint64Array;
}

/** native/src/digest.h: OpenSSL's SHA-256 / SHA-384, the one Node carries. */
export interface NativeDigest {
  update(data: Uint8Array): NativeDigest;
  /** A second digest that goes on from the same position. */
  copy(): NativeDigest;
  /** Once: the digest ends the hash. */
  digest(): Buffer;
}

export interface NativeAddon {
  /** A new hash. */
  NativeDigest?: new (algorithm: DigestAlgorithm) => NativeDigest;
  /** native/src/digest.h ChainDigest; absent from an addon built before it. */
  chainDigest?: ChainDigest;
  NativeMachine: new (memoryBytes: bigint, countInstructions: boolean, runArea: BigUint64Array, marker: NativeMarker,
    options?: { pageGate: boolean; timeoutMs?: number; ramPaging?: 'fault-around' | 'on-touch' | 'huge-pages' }) => NativeMachine;
  unicornVersion(): string;
  setUnicornErrorClass(ctor: new (message: string, code: number) => Error): void;
  /**
   * The files to remove when one of `signals` (SIGHUP, SIGINT, SIGTERM) ends the process; its handler
   * goes in for those and out for the others (native/src/stop_signal_cleanup.h). Absent from an
   * addon built before it.
   */
  removeOnStopSignal?(paths: readonly string[], signals: readonly number[]): void;
  /** The CLI loader's mapping of the bundle and its code cache (native/src/mapped_file.h). Absent from an addon built before it. */
  mapFile?: MapFile;
  /** The trace hash's encoding of an event (native/src/trace_encoding.cc); absent from an addon built before it. */
  encodeTraceEvent?: EventEncoder;
}

/** native/src/mapped_file.h: the file mapped read-only, as a Latin-1 string or a Buffer; undefined when it cannot be. */
export type MapFile = ((path: string, as: 'latin1') => string | undefined) & ((path: string, as: 'bytes') => Buffer | undefined);

let loaded: NativeAddon | undefined;

export function addon(): NativeAddon {
  if (!loaded) {
    const require = createRequire(import.meta.url);
    loaded = require(addonFile(PACKAGE_ROOT)) as NativeAddon;
    const NativeDigestClass = loaded.NativeDigest;
    // An addon built before its digests could copy themselves (an old prebuild) leaves them to node:crypto.
    if (NativeDigestClass && typeof NativeDigestClass.prototype.copy === 'function') provideDigests((algorithm) => new NativeDigestClass(algorithm));
    provideChainDigest(loaded.chainDigest);
    provideEventEncoder(loaded.encodeTraceEvent);
  }
  return loaded;
}
