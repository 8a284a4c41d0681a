import { SedfsError } from '../protocol/errors.js';

/**
 * Settings are declared once as a spec: type, default, bounds and the `SEDFS_*`
 * environment name. Parsing does no I/O, rejects unknown keys and returns a frozen
 * object; gathering flags and environment is the caller's separate step.
 */
export type FieldSpec =
  | { kind: 'int'; default?: number; min?: number; max?: number; env?: string; help?: string }
  | { kind: 'number'; default?: number; min?: number; max?: number; env?: string; help?: string }
  | { kind: 'string'; default?: string; env?: string; help?: string }
  | { kind: 'url'; default?: string; env?: string; help?: string }
  | { kind: 'bool'; default?: boolean; env?: string; help?: string };

export type ConfigSpec = Record<string, FieldSpec>;

type ValueOf<F extends FieldSpec> = F extends { kind: 'int' | 'number' }
  ? number
  : F extends { kind: 'bool' }
    ? boolean
    : string;

export type ConfigOf<S extends ConfigSpec> = {
  readonly [K in keyof S]: S[K] extends { default: unknown } ? ValueOf<S[K]> : ValueOf<S[K]> | undefined;
};

function fail(key: string, why: string): never {
  throw new SedfsError('SEDFS_ERR_CONFIG', `invalid setting ${key}: ${why}`, { key });
}

function coerce(key: string, field: FieldSpec, raw: unknown): unknown {
  switch (field.kind) {
    case 'int':
    case 'number': {
      const n =
        typeof raw === 'number'
          ? raw
          : typeof raw === 'string' && raw.trim() !== ''
            ? Number(raw)
            : Number.NaN;
      if (!Number.isFinite(n)) fail(key, `expected a number, got ${JSON.stringify(raw)}`);
      if (field.kind === 'int' && !Number.isInteger(n)) fail(key, `expected a whole number, got ${n}`);
      if (field.min !== undefined && n < field.min) fail(key, `must be at least ${field.min}`);
      if (field.max !== undefined && n > field.max) fail(key, `must be at most ${field.max}`);
      return n;
    }
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      return fail(key, `expected true or false, got ${JSON.stringify(raw)}`);
    case 'url': {
      if (typeof raw !== 'string') return fail(key, 'expected a URL');
      try {
        const u = new URL(raw);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(key, 'expected an http(s) URL');
        return raw.replace(/\/+$/, '');
      } catch (err) {
        if (err instanceof SedfsError) throw err;
        return fail(key, `not a URL: ${JSON.stringify(raw)}`);
      }
    }
    case 'string':
      if (typeof raw !== 'string') return fail(key, 'expected text');
      return raw;
  }
}

/** A setting's name on the command line and in config files: `heartbeatTimeout` → `heartbeat-timeout`. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * Merges sources, earlier winning (flags, then environment, then the config file), fills
 * defaults and validates. `env` is the process environment or any record standing in
 * for it; `file` is a parsed config file, keyed by the flag names (`heartbeat-timeout`).
 */
export function parseConfig<S extends ConfigSpec>(
  spec: S,
  flags: Record<string, unknown>,
  env: Record<string, string | undefined> = {},
  file: Record<string, unknown> = {},
): ConfigOf<S> {
  for (const key of Object.keys(flags)) {
    if (!Object.hasOwn(spec, key)) fail(key, 'unknown setting');
  }
  const byFlag = new Map(Object.keys(spec).map((k) => [flagName(k), k]));
  const fromFile: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(file)) {
    const key = byFlag.get(name);
    if (key === undefined) fail(name, 'unknown setting in the config file');
    fromFile[key] = value;
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(spec)) {
    const fromEnv = field.env ? env[field.env] : undefined;
    const raw = flags[key] ?? (fromEnv === '' ? undefined : fromEnv) ?? fromFile[key] ?? field.default;
    if (raw !== undefined) out[key] = coerce(key, field, raw);
  }
  return Object.freeze(out) as ConfigOf<S>;
}
