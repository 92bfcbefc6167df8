// The addon itself refuses what would be unsafe, even when called without the TypeScript layer.
import { describe, expect, it } from 'vitest';
import { addon } from '../../src/native/binding.js';
import { UnicornError, unicornErrorName } from '../../src/cpu/errors.js';
import { Machine } from '../../src/cpu/machine.js';
import { toNativeMarker } from '../../src/memory/address-marker.js';

const marker = toNativeMarker({ kind: 'none' });

describe('native binding argument checks', () => {
  const { NativeMachine } = addon();

  it('rejects bad constructor arguments with TypeError/RangeError', () => {
    const area = new BigUint64Array(32);
    expect(() => new NativeMachine(4096 as unknown as bigint, true, area, marker)).toThrow(TypeError);
    expect(() => new NativeMachine(4095n, true, area, marker)).toThrow(RangeError);
    expect(() => new NativeMachine(-1n, true, area, marker)).toThrow(RangeError);
    expect(() => new NativeMachine(4096n, true, new BigUint64Array(4), marker)).toThrow(TypeError);
    expect(() => new NativeMachine(4096n, true, new Float64Array(32) as unknown as BigUint64Array, marker)).toThrow(TypeError);
    expect(() => new NativeMachine(4096n, true, area, { ...marker, bit: 99 })).toThrow(RangeError);
    expect(() => new NativeMachine(4096n, true, area, null as unknown as typeof marker)).toThrow(TypeError);
    expect(() => (NativeMachine as unknown as () => void)()).toThrow();
  });

  it('rejects out-of-range memory, registers and gate arguments', () => {
    const m = new NativeMachine(1n << 20n, true, new BigUint64Array(32), marker);
    expect(() => m.readInto(1n << 20n, new Uint8Array(1))).toThrow(RangeError);
    expect(() => m.readInto((1n << 64n) - 1n, new Uint8Array(2))).toThrow(RangeError);
    expect(() => m.readInto(0n, [1, 2] as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => m.readInto(0n, new Uint16Array(2) as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => m.fill(0n, 1n << 63n, 0)).toThrow(RangeError);
    expect(() => m.write(0n, [1, 2] as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => m.window(0n, 2 ** 31)).toThrow(RangeError);
    expect(() => m.setGate(0, 0n, 1n << 21n, 2, 3)).toThrow(RangeError);
    expect(() => m.setGate(2, 0n, 4096n, 2, 3)).toThrow(RangeError);
    expect(() => m.setGate(0, 1n, 4096n, 2, 3)).toThrow(RangeError);
    expect(() => m.setGate(0, 0n, 4096n, 4, 3)).toThrow(RangeError);
    expect(() => m.setGate(0, 0n, 4096n, 2, 4)).toThrow(RangeError); // fetch: two CPL bits
    expect(() => (m.setGate as (...args: unknown[]) => void)(0, 0n, 4096n, 2)).toThrow(TypeError);
    expect(() => m.setGate(0, 0n, 4096n, 3, 3)).toThrow(RangeError); // ciphertext is for shared reads only
    expect(() => m.writeShadow(0n, new Uint8Array(16))).toThrow(TypeError);
    expect(() => m.readSpecial(999)).toThrow(RangeError);
    expect(() => m.writeSpecial(0, 1 as unknown as bigint)).toThrow(TypeError);
    expect(() => m.inject(300)).toThrow(RangeError);
    expect(() => m.restore(12345)).toThrow(RangeError);
    expect(() => m.translate(0n, 7)).toThrow(RangeError);
    m.close();
    expect(() => m.run()).toThrow(/closed/);
    expect(() => m.close()).not.toThrow();
  });

  it('names Unicorn error codes', () => {
    const err = new UnicornError('run: exception', 21);
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('UC_ERR_EXCEPTION');
    expect(unicornErrorName(6)).toBe('UC_ERR_READ_UNMAPPED');
  });

  it('releases guest memory on close: many large VMs in a row do not accumulate', () => {
    const rss0 = process.memoryUsage().rss;
    for (let i = 0; i < 50; i++) {
      const vm = new Machine({ memoryBytes: 1n << 30n });
      vm.gate.set('private', 0n, 1n << 30n, 'readwrite');
      vm.memory.fill(0n, 4n << 20n, 0xaa);  // make 4 MiB resident
      vm.close();
    }
    expect(process.memoryUsage().rss - rss0).toBeLessThan(100 * 2 ** 20);
  });
});
