// SHA-256 and SHA-384 for the trace hash and the launch measurements, from whichever provider is
// installed: node:crypto by default, or the native addon once it is loaded (src/native/binding.ts),
// which hashes with the same OpenSSL that Node carries. Both give the same bytes; the addon's
// spares a boot the load of node:crypto's JavaScript, ~35 of Node's modules and ~3-5 ms of CPU
// (issue 11), since every boot loads the addon anyway. A digest started with one provider keeps
// it (copies included).
import { createRequire } from 'node:module';

export type DigestAlgorithm = 'sha256' | 'sha384';

/** An incremental hash: node:crypto's Hash satisfies it. */
export interface Digest {
  update(data: Uint8Array): Digest;
  /** A second digest that goes on from the same position. */
  copy(): Digest;
  /** The digest of everything added; the hash ends here. */
  digest(): Buffer;
}

export type DigestProvider = (algorithm: DigestAlgorithm) => Digest;

let provider: DigestProvider | undefined;

/** Installs the provider of later createDigest() calls. */
export function provideDigests(p: DigestProvider): void {
  provider = p;
}

export function createDigest(algorithm: DigestAlgorithm): Digest {
  return (provider ?? nodeCryptoDigest)(algorithm);
}

/** The digest of `data` in one call. */
export function digestOf(algorithm: DigestAlgorithm, ...data: Uint8Array[]): Buffer {
  const d = createDigest(algorithm);
  for (const piece of data) d.update(piece);
  return d.digest();
}

/**
 * A hash chain over `records`, equal-sized records that each start with the digest so far: for
 * each, digest = H(digest || the record after its first digest-size bytes), from `initial`. What a
 * run of SNP_LAUNCH_UPDATEs does to the launch digest (PAGE_INFO opens with DIGEST_CUR).
 */
export type ChainDigest = (algorithm: DigestAlgorithm, initial: Uint8Array, records: Uint8Array, recordBytes: number) => Buffer;

let chainProvider: ChainDigest | undefined;

/** Installs the chain of later chainDigest() calls (the addon's: one call for a range, not ~3 per record). */
export function provideChainDigest(chain: ChainDigest | undefined): void {
  chainProvider = chain;
}

export const chainDigest: ChainDigest = (algorithm, initial, records, recordBytes) => {
  if (chainProvider) return chainProvider(algorithm, initial, records, recordBytes);
  let digest: Buffer = Buffer.from(initial);
  for (let at = 0; at < records.byteLength; at += recordBytes) {
    digest = digestOf(algorithm, digest, records.subarray(at + digest.byteLength, at + recordBytes));
  }
  return digest;
};

let crypto: typeof import('node:crypto') | undefined;

/** node:crypto, loaded at its first use rather than with the module that needs it. */
export function nodeCrypto(): typeof import('node:crypto') {
  return (crypto ??= createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto'));
}

function nodeCryptoDigest(algorithm: DigestAlgorithm): Digest {
  return nodeCrypto().createHash(algorithm);
}
