// The guest images `npm install` builds: the firmware ELF and the guest image (decompressor with
// the compressed kernel linked in). A user's own firmware can replace ours.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputFileError, readInputFile } from '../shared/input-file.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUILT_FIRMWARE = join(root, 'firmware', 'build', 'firmware.elf');
export const BUILT_GUEST_IMAGE = join(root, 'guest', 'build', 'guest-image.elf');

export class GuestImageError extends Error {
  override name = 'GuestImageError';
}

/**
 * Images are read with a bound: the load windows hold under 1 MiB (layout.ts), so 16 MiB leaves
 * room for symbols and debug sections while refusing a runaway input at once.
 */
export const MAX_IMAGE_BYTES = 16 << 20;

export function readImage(path: string, what: string): Uint8Array {
  if (!existsSync(path) && (path === BUILT_FIRMWARE || path === BUILT_GUEST_IMAGE)) {
    throw new GuestImageError(`no guest is installed: ${path} is missing (run \`npm install\`, which builds the stubs with gcc/binutils)`);
  }
  try {
    return readInputFile(path, what, MAX_IMAGE_BYTES);
  } catch (err) {
    if (err instanceof InputFileError) throw new GuestImageError(err.message);
    throw err;
  }
}
