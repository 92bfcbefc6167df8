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

let crypto: typeof import('node:crypto') | undefined;

/** node:crypto, loaded at its first use rather than with the module that needs it. */
export function nodeCrypto(): typeof import('node:crypto') {
  return (crypto ??= createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto'));
}

function nodeCryptoDigest(algorithm: DigestAlgorithm): Digest {
  return nodeCrypto().createHash(algorithm);
}
