// Errors that cross the native boundary.
import { addon } from '../native/binding.js';

// libunicorn's uc_err values (unicorn.h), for readable error codes.
const UC_ERROR_NAMES = [
  'UC_ERR_OK', 'UC_ERR_NOMEM', 'UC_ERR_ARCH', 'UC_ERR_HANDLE', 'UC_ERR_MODE', 'UC_ERR_VERSION',
  'UC_ERR_READ_UNMAPPED', 'UC_ERR_WRITE_UNMAPPED', 'UC_ERR_FETCH_UNMAPPED', 'UC_ERR_HOOK',
  'UC_ERR_INSN_INVALID', 'UC_ERR_MAP', 'UC_ERR_WRITE_PROT', 'UC_ERR_READ_PROT', 'UC_ERR_FETCH_PROT',
  'UC_ERR_ARG', 'UC_ERR_READ_UNALIGNED', 'UC_ERR_WRITE_UNALIGNED', 'UC_ERR_FETCH_UNALIGNED',
  'UC_ERR_HOOK_EXIST', 'UC_ERR_RESOURCE', 'UC_ERR_EXCEPTION', 'UC_ERR_OVERFLOW',
] as const;

export function unicornErrorName(code: number): string {
  return UC_ERROR_NAMES[code] ?? `UC_ERR_${code}`;
}

/** A libunicorn call failed; `ucCode` is the uc_err value and `code` its name. */
export class UnicornError extends Error {
  readonly ucCode: number;
  readonly code: string;
  constructor(message: string, ucCode: number) {
    super(message);
    this.name = 'UnicornError';
    this.ucCode = ucCode;
    this.code = unicornErrorName(ucCode);
  }
}

/** The text of a delivery that failed (InjectionError's message, Vcpu.tryInject's result). */
export function injectionFailure(vector: number, reason: string): string {
  return `cannot deliver vector ${vector}: ${reason}`;
}

/** The guest's IDT, GDT or stack cannot take an injected event. */
export class InjectionError extends Error {
  readonly vector: number;
  constructor(vector: number, reason: string) {
    super(injectionFailure(vector, reason));
    this.name = 'InjectionError';
    this.vector = vector;
  }
}

let registered = false;
export function registerNativeErrors(): void {
  if (registered) return;
  addon().setUnicornErrorClass(UnicornError);
  registered = true;
}
