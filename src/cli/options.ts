import type { Command } from 'commander';
import type { ConfigSpec } from '../common/config.js';

/** Adds one `--kebab-name` option per config key, with the help text the spec carries. */
export function addConfigOptions(cmd: Command, spec: ConfigSpec, only?: string[]): Command {
  for (const [key, field] of Object.entries(spec)) {
    if (only && !only.includes(key)) continue;
    const flag = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    const arg =
      field.kind === 'bool'
        ? ''
        : ` <${field.kind === 'url' ? 'url' : field.kind === 'string' ? 'value' : 'n'}>`;
    const env = field.env ? ` [env ${field.env}]` : '';
    const def = field.default !== undefined ? ` (default: ${String(field.default)})` : '';
    cmd.option(`--${flag}${arg}`, `${field.help ?? key}${def}${env}`);
  }
  return cmd;
}

/** Commander's parsed options without the keys it left undefined. */
export function definedOptions(opts: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
}
