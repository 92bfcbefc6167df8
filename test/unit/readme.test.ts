// The README is read by users who have only the repository (issue 13: it pointed at
// `../shared/seed` and at "issue notes"): every relative link resolves inside the repository, and
// no path climbs out of it.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(`${root}README.md`, 'utf8');

describe('README', () => {
  it('links only to files in the repository', () => {
    const targets = [...readme.matchAll(/\]\(([^)\s#]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/.test(t));
    expect(targets.length).toBeGreaterThan(0);
    expect(targets.filter((t) => !existsSync(`${root}${t}`))).toEqual([]);
  });

  it('names no path outside the repository and nothing only the developers have', () => {
    expect(readme.match(/(^|[\s`(])\.\.\/\S*/gm) ?? []).toEqual([]);
    expect(readme.match(/shared\/seed|issue notes?|\/work\//gi) ?? []).toEqual([]);
  });
});
