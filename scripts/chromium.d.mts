// Types for scripts/chromium.mjs, for the browser test under `npm run typecheck`.
export interface FoundChromium { executablePath: string; env: Record<string, string>; source: string }
export const localDir: string;
export function findChromium(dir?: string): FoundChromium | null;
export function ensureChromium(log?: (message: string) => void): FoundChromium;
