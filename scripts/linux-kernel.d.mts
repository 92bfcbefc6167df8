// Types for scripts/linux-kernel.mjs, so tests can check the fetch logic under `npm run typecheck`.
export interface LocalKernel { vmlinuz: string; package: string; version: string; abi: string; sha256: string; mirror: string; suite: string }
export const linuxCacheDir: string;
export const META_PACKAGE: string;
export function dependsOf(text: string): string[];
export function resolveKernelPackage(dependsOfPackage: (name: string) => string[], meta?: string): { abi: string; image: string; binary: string } | string;
export function findVmlinuz(root: string): string | null;
export function localKernel(dir?: string): LocalKernel | null;
export function fetchLinuxKernel(log?: (message: string) => void, dir?: string): LocalKernel;
export function ensureLinuxKernel(log?: (message: string) => void, dir?: string): LocalKernel;
