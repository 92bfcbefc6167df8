// Runs the CLI from its one-file bundle with a V8 code cache. scripts/bundle-cli.mjs bundles
// dist/cli/main.js and everything it imports (commander too) into dist/cli/minivisor.cjs: Node 20
// loads ES modules one file at a time and has no compile cache (module.enableCompileCache is
// Node 22's), and resolving, reading and compiling the ~95 modules of `minivisor boot` was ~70 ms
// of a default boot's ~330 ms CPU (issue 11).
//
// The bundle is used only when it is at least as new as dist/cli/main.js: tsc rewrites every
// output, so a `tsc` run without the bundler leaves the bundle older, and the modules are then
// loaded one by one as before. The code cache is V8's compiled code for the bundle, taken after
// the first successful run of a command, so it holds the functions that command compiled
// (`minivisor.cjs.<command>.v8cache`, beside the bundle; not written where the package is
// read-only). It starts with the SHA-256 of the bundle it was made from and is ignored, and
// rewritten, when that differs or V8 rejects it (another Node version, other V8 flags): V8's own
// check compares the source's length only. The bundler writes that digest on the bundle's first
// line (BUNDLE_DIGEST_MARK), so the loader reads it rather than hashing ~800 KB with node:crypto,
// whose loading alone (~35 of Node's modules) was ~3-5 ms of every command (issue 11); a bundle
// without the line (a hand-made one) is hashed here. Edit the bundle by hand only with the line
// removed: the digest on it is trusted.
//
// The bundler writes the bundle inside the CommonJS module wrapper (MODULE_WRAPPER), so its text
// is compiled as it was read: wrapping it here made V8 flatten a second ~750 KB copy, which cost a
// young-generation collection of every boot (3 -> 2 scavenges, --trace-gc). A bundle without the
// wrapper (a hand-made one, or one a tool wrote) is still wrapped here.
//
// A bundle the bundler wrote (its digest on the first line) and its code cache are taken as
// read-only mappings of their files through the native addon (mapFile), not read: reading copied
// the bundle into a fresh buffer and V8 copied it again into its heap, ~320 fresh pages and as many
// page faults, ~4 ms of a default boot's CPU on a host that shadows guest page tables (issue 11).
// Every command that runs a guest loads the addon anyway; node loads it once, for both. The files
// are never rewritten in place while a process may map them: the bundler and the cache writer
// replace them by rename. Without the addon (not built, or built before mapFile) they are read.
import { isAscii } from 'node:buffer';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';
import { addonFile } from '../native/addon-file.js';
import type { MapFile } from '../native/binding.js';

type Main = (argv: string[]) => Promise<number>;

export const BUNDLE_FILE = 'minivisor.cjs';
const HASH_BYTES = 32;
/**
 * The CommonJS module wrapper, on the source's first line so that line numbers stay the bundle's:
 * the bundle opens with it and closes with MODULE_WRAPPER_END.
 */
export const MODULE_WRAPPER = '(function (exports, require, module, __filename, __dirname) {';
export const MODULE_WRAPPER_END = '\n})';
/**
 * Follows MODULE_WRAPPER on the bundle's first line: the SHA-256 (hex) of the bundle as the
 * bundler wrote it without this comment, then `*` `/`.
 */
export const BUNDLE_DIGEST_MARK = '/*minivisor-bundle-sha256:';

/** The SHA-256 the bundler wrote on the first line of the bundle whose text starts with `head`, if it did. */
function writtenDigest(head: string): Buffer | undefined {
  const at = MODULE_WRAPPER.length + BUNDLE_DIGEST_MARK.length;
  if (!head.startsWith(MODULE_WRAPPER + BUNDLE_DIGEST_MARK) || head.slice(at + 64, at + 66) !== '*/') return undefined;
  const hex = head.slice(at, at + 64);
  return /^[0-9a-f]{64}$/.test(hex) ? Buffer.from(hex, 'hex') : undefined;
}

/** The SHA-256 of `bytes`, the bundle at `file`: the one the bundler wrote on its first line, else hashed here. */
export function bundleDigest(file: string, bytes: Buffer): Buffer {
  const written = writtenDigest(bytes.toString('latin1', 0, MODULE_WRAPPER.length + BUNDLE_DIGEST_MARK.length + 66));
  if (written) return written;
  // Not import.meta.url: the loader is itself bundled as CommonJS, where it is undefined.
  const { createHash } = createRequire(file)('node:crypto') as typeof import('node:crypto');
  return createHash('sha256').update(bytes).digest();
}

/**
 * The bundle beside `entry` (dist/cli/main.js), when it exists and, in a clone (tsconfig.json in the
 * package's root), is not older than it. A package's dist/ was bundled once, by `npm pack`'s
 * prepack, and unpacking it gives its files new mtimes in no particular order (main.js came out
 * ~0.2 s newer than the bundle, which was then never used).
 */
export function freshBundle(entry: string): string | undefined {
  const bundle = join(dirname(entry), BUNDLE_FILE);
  try {
    const built = statSync(bundle).mtimeMs;
    return !existsSync(join(dirname(entry), '..', '..', 'tsconfig.json')) || built >= statSync(entry).mtimeMs ? bundle : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The code cache for the command `argv` starts with, and for its `--platform` when it names one:
 * TDX and SNP run disjoint halves of the hardware model and the VMM, and a cache written by a TDX
 * boot left an SNP boot to compile its ~190 functions from source on every run (and the other way
 * round), since a cache that V8 accepts is never rewritten. None for anything but a plain command word.
 */
export function codeCacheFile(bundle: string, argv: readonly string[]): string | undefined {
  const command = argv[0];
  if (command === undefined || !/^[a-z][a-z-]{0,31}$/.test(command)) return undefined;
  const at = argv.indexOf('--platform');
  const platform = at > 0 ? argv[at + 1] : argv.find((arg) => arg.startsWith('--platform='))?.slice('--platform='.length);
  return platform !== undefined && /^[a-z]{1,16}$/.test(platform) ? `${bundle}.${command}.${platform}.v8cache` : `${bundle}.${command}.v8cache`;
}

/** An open file and its size in bytes, or undefined when it cannot be opened. */
function openForRead(file: string): { fd: number; size: number } | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    return { fd, size: fstatSync(fd).size };
  } catch {
    closeSync(fd);
    return undefined;
  }
}

/** Reads `size` bytes of `fd` into the start of `into` and closes it; the bytes read, or undefined. */
function readInto(fd: number, size: number, into: Buffer): Buffer | undefined {
  try {
    let got = 0;
    while (got < size) {
      const n = readSync(fd, into, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return into.subarray(0, got);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

function checkedCodeCache(data: Buffer | undefined, bundleHash: Buffer): Buffer | undefined {
  return data && data.subarray(0, HASH_BYTES).equals(bundleHash) ? data.subarray(HASH_BYTES) : undefined;
}

/** Best effort: a read-only package directory simply runs without a cache. */
function writeCodeCache(file: string, bundleHash: Buffer, data: Buffer): void {
  const partial = `${file}.${process.pid}.partial`;
  try {
    writeFileSync(partial, Buffer.concat([bundleHash, data]));
    renameSync(partial, file);  // concurrent runs each write whole files; the last one stays
  } catch {
    try { unlinkSync(partial); } catch { /* it was never written */ }
  }
}

/** The bundle's text, the SHA-256 that keys its code caches (when a cache is wanted) and the code cache, when there is a valid one. */
export interface LoadedBundle {
  source: string;
  bundleHash?: Buffer;
  cached?: Buffer;
  /** Whether the files were mapped (mapFile) rather than read. */
  mapped: boolean;
}

/** mapFile of the addon of the package whose dist/cli/main.js is `entry`, unless it is not built or predates mapFile. */
export function addonMapFile(entry: string): MapFile | undefined {
  try {
    const addon = createRequire(entry)(addonFile(join(dirname(entry), '..', '..'))) as { mapFile?: MapFile };
    return typeof addon.mapFile === 'function' ? addon.mapFile : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The bundle and its code cache `cacheFile`, mapped by `mapFile` when the bundle carries the digest
 * the bundler writes (then it is ASCII, so its bytes as Latin-1 are its text), else read.
 */
export function loadBundle(bundle: string, cacheFile: string | undefined, mapFile?: MapFile): LoadedBundle {
  const source = mapFile?.(bundle, 'latin1');
  const written = source === undefined ? undefined : writtenDigest(source.slice(0, MODULE_WRAPPER.length + BUNDLE_DIGEST_MARK.length + 66));
  if (source === undefined || !written) return readBundle(bundle, cacheFile);
  const cached = cacheFile ? checkedCodeCache(mapFile!(cacheFile, 'bytes'), written) : undefined;
  return { source, bundleHash: cacheFile ? written : undefined, cached, mapped: true };
}

function readBundle(bundle: string, cacheFile: string | undefined): LoadedBundle {
  // The bundle and then its code cache are read into one buffer: its bytes are spent once the
  // source string is made. Each fresh 4 KiB page a process touches is a page fault for the
  // kernel's copy and, on a host that shadows page tables, a costly first touch from user space
  // again; a buffer of their own for the ~600 KB cache was ~150 more of each (issue 11).
  const bundleOpen = openForRead(bundle);
  if (!bundleOpen) readFileSync(bundle);  // throws the reason it cannot be read
  const cacheOpen = cacheFile ? openForRead(cacheFile) : undefined;
  const buffer = Buffer.allocUnsafeSlow(Math.max(bundleOpen!.size, cacheOpen?.size ?? 0, 1));
  const bytes = readInto(bundleOpen!.fd, bundleOpen!.size, buffer) ?? readFileSync(bundle);
  // The bundler writes ASCII: as Latin-1 that is the same text, copied rather than decoded, and a
  // one-byte string for V8 (hashing and decoding the ~750 KB as UTF-8 were ~20M instructions).
  const source = isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  // The cache is keyed by the bundle's bytes; a command without a cache (--help) needs no digest.
  const bundleHash = cacheFile ? bundleDigest(bundle, bytes) : undefined;
  const cached = cacheOpen && bundleHash ? checkedCodeCache(readInto(cacheOpen.fd, cacheOpen.size, buffer), bundleHash) : undefined;
  return { source, bundleHash, cached, mapped: false };
}

/**
 * Runs `minivisor <argv>`: from the bundle when it is fresh, else from dist/cli/main.js (`entry`).
 * Returns the exit status.
 */
export async function runCli(entry: string, argv: string[]): Promise<number> {
  const bundle = freshBundle(entry);
  if (!bundle) return ((await import(entry)) as { main: Main }).main(argv);
  const cacheFile = codeCacheFile(bundle, argv);
  const { source, bundleHash, cached } = loadBundle(bundle, cacheFile, addonMapFile(entry));
  const wrapped = source.startsWith(MODULE_WRAPPER) ? source : `${MODULE_WRAPPER}${source}${MODULE_WRAPPER_END}`;
  const script = new Script(wrapped, { filename: bundle, ...(cached ? { cachedData: cached } : {}) });
  const module = { exports: {} as { main?: Main } };
  (script.runInThisContext() as (...args: unknown[]) => void)
    .call(module.exports, module.exports, createRequire(bundle), module, bundle, dirname(bundle));
  const status = await module.exports.main!(argv);
  if (cacheFile && bundleHash && status === 0 && (!cached || script.cachedDataRejected)) writeCodeCache(cacheFile, bundleHash, script.createCachedData());
  return status;
}
