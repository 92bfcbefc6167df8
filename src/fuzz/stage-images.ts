// The user's own stage images in a fuzz target (`minivisor fuzz --firmware/--decompressor/--kernel`,
// as `boot` takes them): each file by its absolute path, with the SHA-256 of its bytes when the
// campaign started, so a finding names exactly what it ran, and a replay after a rebuild can say
// that the stub it runs is no longer the one the finding was made with (the point of a rebuild).
import { resolve } from 'node:path';
import { GuestImageError, MAX_IMAGE_BYTES } from '../boot/images.js';
import { nodeCrypto } from '../shared/digest.js';
import { InputFileError, readInputFile } from '../shared/input-file.js';
import { quoteForError } from '../shared/quote.js';

export const STAGE_IMAGE_KINDS = ['firmware', 'decompressor', 'kernel'] as const;
export type StageImageKind = (typeof STAGE_IMAGE_KINDS)[number];

export interface StageImage {
  /** Absolute: replays and worker threads read the same file whatever their working directory. */
  file: string;
  /** SHA-256 of the file's bytes, lowercase hex. */
  sha256: string;
}

export type StageImages = Partial<Record<StageImageKind, StageImage>>;
export type StageFiles = Partial<Record<StageImageKind, string>>;

/** The SHA-256 of `file` as it is now; GuestImageError when it cannot be read (as a boot would say). */
export function stageImageOf(kind: StageImageKind, file: string): StageImage {
  const path = resolve(file);
  try {
    const bytes = readInputFile(path, `${kind} image`, MAX_IMAGE_BYTES);
    return { file: path, sha256: nodeCrypto().createHash('sha256').update(bytes).digest('hex') };
  } catch (err) {
    if (err instanceof InputFileError) throw new GuestImageError(err.message);
    throw err;
  }
}

/** Each named file read and hashed (stageImageOf); undefined when none is named. */
export function stageImagesOf(files: StageFiles): StageImages | undefined {
  let images: StageImages | undefined;
  for (const kind of STAGE_IMAGE_KINDS) {
    const file = files[kind];
    if (file !== undefined) (images ??= {})[kind] = stageImageOf(kind, file);
  }
  return images;
}

/** Where BootConfig names each stage's file. */
const BOOT_CONFIG_KEYS = { firmware: 'firmwareFile', decompressor: 'decompressorFile', kernel: 'kernelFile' } as const;
type BootConfigFiles = { -readonly [K in keyof typeof BOOT_CONFIG_KEYS as (typeof BOOT_CONFIG_KEYS)[K]]?: string };

/** The files of `images`, kind by kind (as `boot`'s flags and RawBootOptions name them). */
export function stageFiles(images: StageImages | undefined): StageFiles {
  const files: StageFiles = {};
  for (const kind of STAGE_IMAGE_KINDS) if (images?.[kind]) files[kind] = images[kind]!.file;
  return files;
}

/** The files of `images`, as BootConfig names them. */
export function stageImageFiles(images: StageImages | undefined): BootConfigFiles {
  const files: BootConfigFiles = {};
  for (const kind of STAGE_IMAGE_KINDS) if (images?.[kind]) files[BOOT_CONFIG_KEYS[kind]] = images[kind]!.file;
  return files;
}

/**
 * One line for each image whose file no longer holds the bytes `images` recorded (rebuilt, or
 * gone): why a finding made with it may not reproduce. Stages `replaced` names are not looked at.
 */
export function changedStageImages(images: StageImages | undefined, replaced?: StageImages): string[] {
  const changed: string[] = [];
  for (const kind of STAGE_IMAGE_KINDS) {
    const recorded = images?.[kind];
    if (!recorded || replaced?.[kind]) continue;
    let now: string;
    try {
      now = stageImageOf(kind, recorded.file).sha256;
    } catch (err) {
      if (!(err instanceof GuestImageError)) throw err;
      changed.push(`${err.message} (the finding ran it with SHA-256 ${recorded.sha256})`);
      continue;
    }
    if (now !== recorded.sha256) changed.push(`${kind} image ${quoteForError(recorded.file)} has changed since the finding (SHA-256 ${recorded.sha256.slice(0, 16)}… then, ${now.slice(0, 16)}… now)`);
  }
  return changed;
}
