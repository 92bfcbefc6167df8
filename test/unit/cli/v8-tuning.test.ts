import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { withFuzzInliningBudget, withYoungGenerationKeptSmall } from '../../../src/cli/v8-tuning.js';

// V8 keys a code cache by the flags that differ from their defaults: the CLI writes its bundle's
// cache when a command ends, so the flag must be set only while the guest runs. Each check compiles
// a source this isolate has not seen (a seen one comes from V8's compilation cache and never looks
// at the code cache), of the same length as the one the cache was made from: V8 checks the length
// of the source, not its bytes, and its flags first.
let sources = 0;
const freshSource = () => `(function f${String(sources++).padStart(6, '0')}(a) { return a * 2; })`;
const cacheNow = () => new Script(freshSource()).createCachedData();
const rejectedNow = (cache: Buffer) => new Script(freshSource(), { cachedData: cache }).cachedDataRejected;

describe('withYoungGenerationKeptSmall', () => {
  it('runs under other V8 flags once keepSmall is called: a code cache made before is rejected then, one made then is accepted', () => {
    const before = cacheNow();
    expect(rejectedNow(before)).toBe(false);
    expect(withYoungGenerationKeptSmall((keepSmall) => {
      keepSmall();
      return rejectedNow(before);
    })).toBe(true);
    expect(withYoungGenerationKeptSmall((keepSmall) => {
      keepSmall();
      keepSmall();
      return rejectedNow(cacheNow());
    })).toBe(false);
  });

  it('changes no flag until keepSmall is called: a run that never calls it makes caches accepted after', () => {
    const before = cacheNow();
    const [rejectedBefore, inside] = withYoungGenerationKeptSmall(() => [rejectedNow(before), cacheNow()] as const);
    expect(rejectedBefore).toBe(false);
    expect(rejectedNow(inside)).toBe(false);
  });

  it('puts the flags back: caches made before and after it are accepted after, one made inside is not', () => {
    const before = cacheNow();
    const inside = withYoungGenerationKeptSmall((keepSmall) => {
      keepSmall();
      return cacheNow();
    });
    expect(rejectedNow(before)).toBe(false);
    expect(rejectedNow(inside)).toBe(true);
    expect(rejectedNow(cacheNow())).toBe(false);
  });

  it('returns what the run returns, and puts the flags back when it throws', () => {
    expect(withYoungGenerationKeptSmall(() => 42)).toBe(42);
    const before = cacheNow();
    expect(() => withYoungGenerationKeptSmall((keepSmall) => {
      keepSmall();
      throw new Error('the guest run failed');
    })).toThrow('the guest run failed');
    expect(rejectedNow(before)).toBe(false);
  });
});

describe('withFuzzInliningBudget', () => {
  it('runs the campaign under other V8 flags and puts them back, when it returns and when it throws', async () => {
    const before = cacheNow();
    const [rejectedInside, inside] = await withFuzzInliningBudget(async () => [rejectedNow(before), cacheNow()] as const);
    expect(rejectedInside).toBe(true);
    expect(rejectedNow(before)).toBe(false);
    expect(rejectedNow(inside)).toBe(true);
    await expect(withFuzzInliningBudget(async () => { throw new Error('the campaign failed'); })).rejects.toThrow('the campaign failed');
    expect(rejectedNow(before)).toBe(false);
    expect(rejectedNow(cacheNow())).toBe(false);
  });
});
