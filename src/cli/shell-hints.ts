/**
 * Commands sedfs prints for the user to type (`export SEDFS_MAIN=…`, `--join "$(cat …)"`).
 * Elsewhere than Windows they are for a POSIX shell. Windows users type into PowerShell
 * or cmd, which read neither `export` nor `$(…)`, so both of their forms are given, each
 * named, in that order (PowerShell is the default there).
 */
export interface ShellCommand {
  /** The shell it is for; undefined: a POSIX shell, the only one offered. */
  shell: 'PowerShell' | 'cmd' | undefined;
  text: string;
}

/** Setting environment variables for the commands typed after it in the same terminal. */
export function setVariables(
  vars: Record<string, string>,
  platform: NodeJS.Platform = process.platform,
): ShellCommand[] {
  const pairs = Object.entries(vars);
  if (platform !== 'win32')
    return [
      { shell: undefined, text: `export ${pairs.map(([k, v]) => `${k}=${posixQuoted(v)}`).join(' ')}` },
    ];
  return [
    { shell: 'PowerShell', text: pairs.map(([k, v]) => `$env:${k} = ${powerShellQuoted(v)}`).join('; ') },
    // `set "K=V"`: the quotes keep a trailing space or an `&` out of the value.
    { shell: 'cmd', text: pairs.map(([k, v]) => `set "${k}=${v}"`).join(' & ') },
  ];
}

/** Starting a file server with the join string main keeps in `joinFile`. */
export function startFileServer(
  joinFile: string,
  platform: NodeJS.Platform = process.platform,
): ShellCommand[] {
  if (platform !== 'win32')
    return [{ shell: undefined, text: `sedfs fileserver --join "$(cat ${posixQuoted(joinFile)})"` }];
  return [
    { shell: 'PowerShell', text: `sedfs fileserver --join (Get-Content ${powerShellQuoted(joinFile)})` },
    // cmd has no command substitution: SEDFS_JOIN is read from the file instead.
    { shell: 'cmd', text: `set /p SEDFS_JOIN=<"${joinFile}" & sedfs fileserver` },
  ];
}

/**
 * The commands as lines: `label` before the first, the others aligned under it, each
 * named by its shell when there is more than one.
 */
export function hintLines(label: string, commands: ShellCommand[]): string[] {
  return commands.map((c, i) => {
    const head = i === 0 ? label : ' '.repeat(label.length);
    return c.shell ? `${head}(${c.shell}) ${c.text}` : `${head}${c.text}`;
  });
}

/**
 * One word of a command the user is told to run (a path, a name), quoted where the shell
 * would split or expand it. On Windows in double quotes, which cmd and PowerShell both
 * take for a path with spaces, unless it holds what PowerShell expands there (`$`, a
 * backtick): then in PowerShell's single quotes.
 */
export function commandWord(value: string, platform: NodeJS.Platform = process.platform): string {
  if (platform !== 'win32') return posixQuoted(value);
  if (/^[\w@%+=:,./\\-]+$/.test(value)) return value;
  return /[$`]/.test(value) ? powerShellQuoted(value) : `"${value}"`;
}

/** As it is, when only safe characters; else in single quotes, which a POSIX shell takes literally. */
function posixQuoted(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** In single quotes, PowerShell's literal strings, where only `'` is doubled. */
function powerShellQuoted(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
