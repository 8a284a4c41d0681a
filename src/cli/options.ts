import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { type ConfigOf, type ConfigSpec, flagName, parseConfig } from '../common/config.js';
import { editedText } from '../common/edited-text.js';
import { SedfsError } from '../protocol/errors.js';

/** Adds one `--kebab-name` option per config key, with the help text the spec carries. */
export function addConfigOptions(cmd: Command, spec: ConfigSpec, only?: string[]): Command {
  for (const [key, field] of Object.entries(spec)) {
    if (only && !only.includes(key)) continue;
    const flag = flagName(key);
    const arg =
      field.kind === 'bool'
        ? ''
        : ` <${field.kind === 'url' ? 'url' : field.kind === 'string' ? 'value' : 'n'}>`;
    const env = field.env ? ` [env ${field.env}]` : '';
    const def = field.default !== undefined ? ` (default: ${String(field.default)})` : '';
    cmd.option(`--${flag}${arg}`, `${field.help ?? key}${def}${env}`);
  }
  cmd.option('--config <file>', 'JSON file of settings named like these flags [env SEDFS_CONFIG]');
  return cmd;
}

/**
 * Reads the config file named by `--config` or SEDFS_CONFIG: a JSON object whose keys
 * are the flag names, e.g. `{ "heartbeat-timeout": 10, "lost-after": 300 }`.
 */
async function readConfigFile(path: string | undefined): Promise<Record<string, unknown>> {
  if (!path) return {};
  let text: string;
  try {
    text = editedText(await readFile(path));
  } catch (err) {
    throw new SedfsError('SEDFS_ERR_CONFIG', `cannot read config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new SedfsError('SEDFS_ERR_CONFIG', `config file ${path} is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new SedfsError('SEDFS_ERR_CONFIG', `config file ${path} must hold a JSON object`);
  return parsed as Record<string, unknown>;
}

/** Flags, environment and config file merged into one validated config. */
export async function configFromCommand<S extends ConfigSpec>(
  spec: S,
  opts: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<ConfigOf<S>> {
  const { config: file, ...flags } = definedOptions(opts);
  const fromFile = await readConfigFile(
    (file as string | undefined) ?? (process.env.SEDFS_CONFIG || undefined),
  );
  return parseConfig(spec, { ...flags, ...extra }, process.env, fromFile);
}

/** Commander's parsed options without the keys it left undefined. */
export function definedOptions(opts: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
}
