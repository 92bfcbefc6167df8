// Types for scripts/unicorn.mjs, so tests can check the install logic under `npm run typecheck`.
export interface FoundUnicorn { source: string; version: string; include: string; lib: string }
export const localDir: string;
export const MIN_VERSION: number[];
export const WHY_MIN_VERSION: string;
export function versionAtLeast(text: string, min?: number[]): boolean;
export function systemUnicorn(log?: (message: string) => void): FoundUnicorn | null;
export function headerVersion(header: string): string | null;
export function packagedLibDir(root: string): string | null;
export function localUnicorn(dir?: string): FoundUnicorn | null;
export function debianMirrors(etcApt?: string): string[];
export function findUnicorn(log?: (message: string) => void): FoundUnicorn | null;
export function ensureUnicorn(log?: (message: string) => void): FoundUnicorn;
export function addonRpath(found: FoundUnicorn, addonDir?: string): string;
export function staticArchive(found: FoundUnicorn): string | null;
export function wantsStaticLink(found: FoundUnicorn, env?: Record<string, string | undefined>): boolean;
export function linkArguments(found: FoundUnicorn, staticLink?: boolean): string[];
export const DEBIAN_KEYRING: string;
export type PrivateApt = (cmd: string, args: string[], cwd?: string) => import('node:child_process').SpawnSyncReturns<string>;
export function privateApt(mirror: string, suite: string, work: string): PrivateApt;
export function missingAptTool(): string | undefined;
export function fetchIntoPlace(suites: string[], work: string, dir: string,
  tryFetch: (mirror: string, suite: string, work: string, log: (message: string) => void) => string | null,
  log: (message: string) => void): string[] | null;
