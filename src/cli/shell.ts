import { homedir } from 'node:os';
import { createInterface } from 'node:readline';
import { type Command, CommanderError } from 'commander';
import { joinPath, splitPath } from '../client/paths.js';
import { SedfsError } from '../protocol/errors.js';
import { CliEnv } from './env.js';
import { describeError, fail, printable } from './output.js';
import { buildProgram } from './program.js';

/** A line cut into words, and how it ends: for running it, and for completing its last word. */
interface Words {
  words: string[];
  /** where the last word starts in the line as typed, if the line ends inside a word */
  lastStart?: number;
  /** the quote still open at the end, if any */
  open?: string;
}

/**
 * Cuts a line into words; with `home`, a word's unquoted `~` alone or before a separator
 * (`~/todo.txt`, `~\\a.txt` on Windows) is that folder, as a POSIX shell takes it.
 */
function cutWords(line: string, platform: NodeJS.Platform, home?: string): Words {
  const escapes = platform !== 'win32';
  const separators = platform === 'win32' ? ['/', '\\'] : ['/'];
  const words: string[] = [];
  let cur = '';
  let start: number | undefined;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length && (escapes || line[i + 1] === '"'))
        cur += line[++i];
      else cur += c;
    } else if (/\s/.test(c)) {
      if (start !== undefined) words.push(cur);
      cur = '';
      start = undefined;
    } else {
      const next = line[i + 1];
      if (
        start === undefined &&
        c === '~' &&
        home !== undefined &&
        (next === undefined || /\s/.test(next) || separators.includes(next))
      ) {
        start = i;
        cur += home;
        continue;
      }
      start ??= i;
      if (c === '"' || c === "'") quote = c;
      else if (c === '\\' && escapes && i + 1 < line.length) cur += line[++i];
      else cur += c;
    }
  }
  if (start === undefined) return { words };
  words.push(cur);
  return { words, lastStart: start, ...(quote ? { open: quote } : {}) };
}

/**
 * Splits a line into words, honouring '…' and "…" quotes and backslash escapes, with an
 * unquoted leading `~` as the home folder (`put ~/todo.txt`; `'~/x'` is a name). On
 * Windows a backslash is a path separator, so it stays as typed (`put C:\Users\me\a.txt`)
 * and escapes only a double quote inside double quotes.
 */
export function splitWords(
  line: string,
  platform: NodeJS.Platform = process.platform,
  home: string = homedir(),
): string[] {
  const { words, open } = cutWords(line, platform, home);
  if (open) throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'unclosed quote');
  return words;
}

/** Escapes what splitWords would otherwise split or strip, for completed names. */
export function escapeWord(word: string, platform: NodeJS.Platform = process.platform): string {
  if (platform !== 'win32') return word.replace(/[\s'"\\]/g, (c) => `\\${c}`);
  // Single quotes take everything as it is, a backslash before the closing one too; a
  // single quote itself goes between double quotes, the pieces making one word.
  if (!/[\s'"]/.test(word)) return word;
  return `'${word.replace(/'/g, `'"'"'`)}'`;
}

/**
 * What completing the line's last word needs: the word as typed (which the completions
 * must start with, for readline), the remote folder to list and the start of the name
 * in it, both unescaped, and how to write a name's rest after what was typed, in the
 * quoting the word is in (a file's completion closes an open quote; a folder's keeps it
 * open for the next name).
 */
export function completionOf(
  line: string,
  platform: NodeJS.Platform = process.platform,
): { typed: string; folder: string; prefix: string; complete(name: string, isFolder: boolean): string } {
  const { words, lastStart, open } = cutWords(line, platform);
  const typed = lastStart === undefined ? '' : line.slice(lastStart);
  const value = lastStart === undefined ? '' : (words[words.length - 1] as string);
  const slash = value.lastIndexOf('/');
  const prefix = value.slice(slash + 1);
  const rest = (text: string): string => {
    if (open === "'") return text.replace(/'/g, `'"'"'`);
    if (open === '"')
      return platform === 'win32' ? text.replace(/"/g, '\\"') : text.replace(/["\\]/g, (c) => `\\${c}`);
    return escapeWord(text, platform);
  };
  return {
    typed,
    folder: slash < 0 ? '.' : value.slice(0, slash + 1),
    prefix,
    complete: (name, isFolder) =>
      `${typed}${rest(name.slice(prefix.length))}${isFolder ? '/' : (open ?? '')}`,
  };
}

type Completer = (line: string, done: (err: null, result: [string[], string]) => void) => void;

/**
 * The lines typed at the shell's prompt. On a terminal each is read by a readline of
 * its own, closed while the line's command runs: one left open keeps the terminal in raw
 * mode and reads it, so it took keys meant for an editor (`edit`), echoed a passphrase
 * typed at `login` and ran it as a command, and swallowed Ctrl-C, which now ends the
 * shell during a command as at the prompt (nothing half-sent is committed). Lines pasted
 * together still run one after another. From a pipe or a file, one reader takes every
 * line: nothing is typed there, and what it has read ahead must not be lost.
 */
async function* shellLines(completer: Completer, prompt: () => string): AsyncGenerator<string> {
  if (!process.stdin.isTTY) {
    const rl = createInterface({ input: process.stdin, output: process.stdout, completer });
    rl.setPrompt(prompt());
    rl.prompt();
    try {
      for await (const line of rl) {
        yield line;
        rl.setPrompt(prompt());
        rl.prompt();
      }
    } finally {
      rl.close();
    }
    return;
  }
  let history: string[] = [];
  for (;;) {
    const lines = await new Promise<string[]>((resolve) => {
      const rl = createInterface({
        input: process.stdin,
        output: process.stdout,
        completer,
        history,
        historySize: 1000,
      });
      const got: string[] = [];
      rl.on('line', (line: string) => {
        got.push(line);
        // The rest of a paste comes in the same turn of the loop: kept, then closed.
        if (got.length === 1) setImmediate(() => rl.close());
      });
      // Ctrl-C leaves the shell, as Ctrl-D does.
      rl.on('SIGINT', () => rl.close());
      rl.on('close', () => {
        history = (rl as unknown as { history: string[] }).history;
        resolve(got);
      });
      rl.setPrompt(prompt());
      rl.prompt();
    });
    if (lines.length === 0) return;
    yield* lines;
  }
}

/** The shell keeps one session and a working folder; an error prints and the prompt returns. */
class ShellEnv extends CliEnv {
  override async run(body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (err) {
      process.stderr.write(`sedfs: ${describeError(err)}\n`);
    }
  }
  override async close(): Promise<void> {
    // Connections stay open between commands; the shell closes them when it exits.
  }
  async shutdown(): Promise<void> {
    await super.close();
  }
}

export function registerShellCommand(program: Command): void {
  program
    .command('shell')
    .description('an interactive prompt with every file verb plus cd and pwd, history and completion')
    .addHelpText(
      'after',
      '\nexit, Ctrl-D or Ctrl-C leaves it; Ctrl-C while a command runs stops the command too\n(a put not finished commits nothing).\n\nExample:\n  sedfs shell\n  sedfs:/> mkdir notes\n  sedfs:/> cd notes\n  sedfs:/notes> put ~/todo.txt',
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const env = new ShellEnv();
      // As the original client did: ask for the main server when none is configured.
      const main = await env.mainUrl(cmd).catch(fail);
      const profile = env.profile(cmd);
      const config = await profile.config();
      if (!config.main) await profile.saveConfig({ ...config, main });
      const session = await profile.session();
      process.stdout.write(
        session
          ? `SEDFS shell: ${session.user} at ${session.main}. Type help, or exit.\n`
          : `SEDFS shell at ${main}. Not logged in: type login USER (or signup USER). Type help, or exit.\n`,
      );
      const globalArgs = [
        '--main',
        main,
        ...(cmd.optsWithGlobals().profile ? ['--profile', cmd.optsWithGlobals().profile] : []),
      ];

      const completer: Completer = (line, done) => {
        const { typed, folder, prefix, complete } = completionOf(line);
        env
          .fileSystem(cmd)
          .then((fs) => fs.list(folder, env.cwd))
          .then((entries) => {
            const hits = entries
              .filter((e) => e.name.startsWith(prefix))
              .map((e) => complete(e.name, e.kind === 'dir'));
            done(null, [hits, typed]);
          })
          .catch(() => done(null, [[], typed]));
      };

      // A prompt or listing written once stdout has failed (its reader gone: `sedfs shell
      // | head`) goes nowhere instead of ending the session; cat says its own failures.
      process.stdout.on('error', () => undefined);
      const promptText = () => `sedfs:${printable(env.cwd)}> `;
      for await (const line of shellLines(completer, promptText)) {
        let words: string[];
        try {
          words = splitWords(line);
        } catch (err) {
          process.stderr.write(`sedfs: ${describeError(err)}\n`);
          continue;
        }
        const [verb] = words;
        if (verb === undefined) continue;
        if (verb === 'exit' || verb === 'quit') break;
        if (verb === 'pwd') process.stdout.write(`${env.cwd}\n`);
        else if (verb === 'cd') {
          // cd goes through remote folders only: its `~` is the remote home folder, `/`.
          const where = splitWords(line, process.platform, '/')[1] ?? '/';
          await env.run(async () => {
            const fs = await env.fileSystem(cmd);
            const node = await fs.resolve(where, env.cwd);
            if (node.entry.kind !== 'dir')
              throw new SedfsError('SEDFS_ERR_NOT_A_FOLDER', `${node.path} is a file`);
            env.setCwd(joinPath(splitPath(node.path)));
          });
        } else {
          const shellProgram = buildProgram(env, { servers: false, throwOnExit: true });
          if (verb === 'help') shellProgram.addHelpText('after', '\nIn the shell also: cd [PATH], pwd, exit');
          try {
            await shellProgram.parseAsync([...globalArgs, ...words], { from: 'user' });
          } catch (err) {
            if (!(err instanceof CommanderError)) process.stderr.write(`sedfs: ${describeError(err)}\n`);
          }
          // A new login or logout changes who the shell acts as.
          if (verb === 'login' || verb === 'logout' || verb === 'signup') await env.shutdown();
        }
      }
      // The loop ends on exit, Ctrl-D or the end of piped input, after every line ran.
      await env.shutdown();
      process.stdout.write('\n');
    });
}
