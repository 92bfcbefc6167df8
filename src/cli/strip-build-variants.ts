// `minivisor new-stub --stage firmware|decompressor` copies our own stage's sources into the
// user's folder, so the template is the code our boots run, from one source. Those sources also
// carry the compile-time variants only this repository builds (guest/lib/variants.mk: planted bugs
// MV_PLANT_*, test fixtures MV_FIXTURE_*, `--tracking memmap`'s MV_TRACKING_MEMMAP): the copy
// drops them, as `unifdef -U` would, keeping what the honest default build compiles.

/** Macros the honest default build leaves undefined (guest/lib/variants.mk). */
export function isBuildVariantMacro(name: string): boolean {
  return /^MV_(PLANT|FIXTURE)_[A-Z0-9_]+$/.test(name) || name === 'MV_TRACKING_MEMMAP';
}

export class StripVariantsError extends Error {
  override name = 'StripVariantsError';
}

interface Frame {
  /** A conditional on a variant macro, resolved here (its directives vanish), or any other, passed through. */
  resolved: boolean;
  /** Whether the lines of the current branch are kept (before the enclosing frames are considered). */
  branchKept: boolean;
  /** Whether the enclosing frames keep this frame's lines. */
  outerKept: boolean;
}

const DIRECTIVE = /^\s*#\s*(ifdef|ifndef|if|elif|else|endif)\b\s*([A-Za-z_][A-Za-z0-9_]*)?/;

/**
 * `text` with every `#ifdef`/`#ifndef` on a build-variant macro resolved as undefined: the
 * `#ifdef` branch dropped, the `#ifndef` branch kept, the directives themselves removed. Other
 * conditionals are copied as they are. `#if`/`#elif` on a variant macro are refused: the
 * sources use only the two plain forms, and a refusal beats a wrong guess.
 */
export function stripBuildVariants(text: string, file = 'source'): string {
  const out: string[] = [];
  const stack: Frame[] = [];
  const kept = () => stack.every((f) => f.branchKept);
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const m = DIRECTIVE.exec(line);
    if (!m) {
      if (kept()) out.push(line);
      return;
    }
    const [, directive, name] = m;
    const where = `${file}:${i + 1}`;
    switch (directive) {
      case 'ifdef':
      case 'ifndef': {
        const outerKept = kept();
        if (name !== undefined && isBuildVariantMacro(name)) {
          stack.push({ resolved: true, branchKept: directive === 'ifndef', outerKept });
        } else {
          stack.push({ resolved: false, branchKept: true, outerKept });
          if (outerKept) out.push(line);
        }
        return;
      }
      case 'if':
      case 'elif': {
        if ((line.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []).some(isBuildVariantMacro)) throw new StripVariantsError(`${where}: #${directive} on a build variant; write it as #ifdef/#ifndef`);
        if (directive === 'if') {
          stack.push({ resolved: false, branchKept: true, outerKept: kept() });
          if (stack.at(-1)!.outerKept) out.push(line);
          return;
        }
        const frame = stack.at(-1);
        if (!frame) throw new StripVariantsError(`${where}: #elif without #if`);
        if (frame.resolved) throw new StripVariantsError(`${where}: #elif after a build-variant #ifdef`);
        if (frame.outerKept) out.push(line);
        return;
      }
      case 'else': {
        const frame = stack.at(-1);
        if (!frame) throw new StripVariantsError(`${where}: #else without #if`);
        if (frame.resolved) frame.branchKept = !frame.branchKept;
        else if (frame.outerKept) out.push(line);
        return;
      }
      case 'endif': {
        const frame = stack.pop();
        if (!frame) throw new StripVariantsError(`${where}: #endif without #if`);
        if (!frame.resolved && frame.outerKept) out.push(line);
        return;
      }
    }
  });
  if (stack.length) throw new StripVariantsError(`${file}: ${stack.length} #if without #endif`);
  return out.join('\n');
}
