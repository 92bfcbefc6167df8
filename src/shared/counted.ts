// A count with its noun, for messages: "1 decision", "3 decisions".

/** `n noun`, the noun plural (+s) for every n but 1. */
export function counted(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
