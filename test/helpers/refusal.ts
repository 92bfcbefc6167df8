// The message of the error a call is expected to refuse with, for tests that compare messages.
import { expect } from 'vitest';

/**
 * The message of the `errorClass` error `run` throws. Fails the test when it throws another
 * exception, and throws `Error(accepted)` when it throws nothing.
 */
export function refusalMessage(run: () => unknown, errorClass: abstract new (...args: never[]) => Error, accepted = 'accepted'): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(errorClass);
    return (err as Error).message;
  }
  throw new Error(accepted);
}
