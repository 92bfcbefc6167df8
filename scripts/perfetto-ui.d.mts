// Types for scripts/perfetto-ui.mjs, for the Perfetto test under `npm run typecheck`.
export interface FoundPerfettoUi { root: string; perfettoVersion: string; source: string }
export const localDir: string;
export const PACKAGE: string;
export const VERSION: string;
export function findPerfettoUi(dir?: string): FoundPerfettoUi | null;
export function ensurePerfettoUi(log?: (message: string) => void): FoundPerfettoUi;
