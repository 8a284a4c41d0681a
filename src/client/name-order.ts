/**
 * The order `ls` and `tree` list names in: the collation of the user's locale, chosen as
 * the system's own `ls` chooses it. `LC_ALL`, else `LC_COLLATE`, else `LANG` names the
 * locale; in the C and POSIX locales (and where none is set, except on Windows, whose
 * programs sort by the system's locale) names go in code point order, which is also the
 * order of their UTF-8 bytes. A named locale sorts by ICU's collation for its language
 * and region (modifiers such as `@latin` are not read), which differs from glibc's in
 * details: ICU does not pass over punctuation.
 *
 * Why not always `localeCompare`: its first call builds ICU's collator, 5 ms here and
 * 17 ms when the node binary's pages are not cached, a tenth of a short `sedfs ls`, to
 * sort in an order the C locale's user did not ask for.
 */
export type NameOrder = (a: string, b: string) => number;

let order: NameOrder | undefined;

/** Compares two names in the order of the locale this process runs in (made on first use). */
export function compareNames(a: string, b: string): number {
  order ??= nameOrderFor(process.env, process.platform);
  return order(a, b);
}

export function nameOrderFor(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): NameOrder {
  const locale = env.LC_ALL || env.LC_COLLATE || env.LANG;
  if (!locale) return platform === 'win32' ? new Intl.Collator().compare : byCodePoint;
  // `en_US.UTF-8`, `de_DE@euro`: the language and region, in BCP 47's spelling.
  const name = locale.split(/[.@]/)[0] as string;
  if (name === 'C' || name === 'POSIX' || name === '') return byCodePoint;
  try {
    return new Intl.Collator(name.replaceAll('_', '-')).compare;
  } catch {
    // Not a tag ICU reads (`RangeError`): the default locale's order, as ICU has it.
    return new Intl.Collator().compare;
  }
}

/**
 * Code point order. JavaScript's `<` compares UTF-16 code units, which puts a character
 * beyond U+FFFF (two surrogates, U+D800-U+DFFF) before U+E000-U+FFFF: surrogates are
 * moved above those here.
 */
export function byCodePoint(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}

const rank = (unit: number) => (unit >= 0xd800 && unit < 0xe000 ? unit + 0x2800 : unit);
