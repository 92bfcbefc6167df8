// new-stub copies our firmware and decompressor without the build variants (planted bugs,
// fixtures, --tracking memmap): the copy must be what the honest default build compiles.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StripVariantsError, stripBuildVariants } from '../../../src/cli/strip-build-variants.js';

describe('stripBuildVariants', () => {
  it('drops #ifdef branches of variant macros, keeps #ifndef branches and #else of #ifdef, and removes their directives', () => {
    const source = [
      'a',
      '#ifdef MV_PLANT_X',
      'planted',
      '#else',
      'honest',
      '#endif',
      '#ifndef MV_TRACKING_MEMMAP /* the default */',
      'bitmap',
      '#ifdef MV_FIXTURE_Y',
      'fixture',
      '#endif',
      '#else',
      'memmap',
      '#endif',
      'z',
    ].join('\n');
    expect(stripBuildVariants(source)).toBe(['a', 'honest', 'bitmap', 'z'].join('\n'));
  });

  it('copies other conditionals as they are, and resolves variants nested in them', () => {
    const source = ['#ifndef GUARD_H', '#define GUARD_H', '#if FOO > 1', 'x', '#ifdef MV_PLANT_Q', 'q', '#endif', '#elif BAR', 'y', '#else', 'w', '#endif', '#endif'].join('\n');
    expect(stripBuildVariants(source)).toBe(['#ifndef GUARD_H', '#define GUARD_H', '#if FOO > 1', 'x', '#elif BAR', 'y', '#else', 'w', '#endif', '#endif'].join('\n'));
  });

  it('drops passed-through conditionals inside a dropped branch whole', () => {
    expect(stripBuildVariants(['#ifdef MV_PLANT_Q', '#ifdef OTHER', 'o', '#else', 'p', '#endif', '#endif', 'k'].join('\n'))).toBe('k');
    expect(stripBuildVariants(['#ifdef MV_PLANT_Q', '#if A', 'o', '#elif B', 'p', '#endif', '#endif', 'k'].join('\n'))).toBe('k');
  });

  it('takes only whole MV_PLANT_, MV_FIXTURE_ names in capitals for variants', () => {
    for (const name of ['MV_PLANT_lower', 'MV_PLANT_Ab', 'XMV_PLANT_A', 'MV_PLANTED']) {
      const source = [`#ifdef ${name}`, 'a', '#endif'].join('\n');
      expect(stripBuildVariants(source)).toBe(source);
    }
  });

  it.each([
    ['#if defined(MV_PLANT_X)\n#endif', /source:1: #if on a build variant/],
    ['#ifdef MV_PLANT_X\n', /1 #if without #endif/],
    ['#endif', /source:1: #endif without #if/],
    ['#ifdef MV_PLANT_X\n#elif FOO\n#endif', /source:2: #elif after a build-variant #ifdef/],
  ])('refuses what it cannot resolve: %j', (source, message) => {
    expect(() => stripBuildVariants(source)).toThrow(StripVariantsError);
    expect(() => stripBuildVariants(source)).toThrow(message);
  });

  it.each(['guest/decompressor/main.c', 'firmware/main.c'])('on our %s gives what gcc -E gives with the variant macros undefined', (file) => {
    // The preprocessor is the reference: both texts, preprocessed the same way without the
    // variants, must be the same token stream (the stripped text differs only in its directives).
    const root = join(import.meta.dirname, '../../..');
    const original = readFileSync(join(root, file), 'utf8');
    const stripped = stripBuildVariants(original, file);
    expect(stripped).not.toBe(original);
    expect(stripped).not.toMatch(/MV_PLANT_|MV_TRACKING_MEMMAP|MV_FIXTURE_/);
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-unifdef-'));
    const cpp = (text: string, name: string) => {
      writeFileSync(join(dir, name), text);
      const r = spawnSync('gcc', ['-E', '-P', '-I', join(root, 'guest/include'), '-I', join(root, 'guest/decompressor'), join(dir, name)], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    };
    expect(cpp(stripped, 'stripped.c')).toEqual(cpp(original, 'original.c'));
  });
});
