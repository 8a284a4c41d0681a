import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseConfig } from '../common/config.js';
import type { RunningFileServer } from '../file-server/file-server.js';
import { FILE_SERVER_CONFIG } from '../file-server/file-server-config.js';
import { MAIN_CONFIG } from '../main-server/main-config.js';
import type { RunningMain } from '../main-server/main-server.js';
import { fail, stopOnSignal } from './output.js';
import { hintLines, setVariables } from './shell-hints.js';

/**
 * A whole cluster on 127.0.0.1 in one process: main plus N file servers, each with its
 * own data folder and log under one root. One process means Ctrl-C or SIGTERM stops
 * everything and no server is ever left behind.
 */
export function registerDevCommand(program: Command): void {
  program
    .command('dev')
    .description('run a local cluster: main and N file servers on 127.0.0.1, one data folder')
    .option('--servers <n>', 'number of file servers', '3')
    .option('--data <dir>', 'data folder for the whole cluster', '.sedfs-dev')
    .option('--replicas <n>', 'copies of every chunk (default: 3, capped by --servers)')
    .option('--insecure-http', 'DEBUGGING ONLY: plain HTTP instead of TLS')
    .addHelpText('after', '\nExamples:\n  sedfs dev\n  sedfs dev --servers 5 --data /tmp/cluster')
    .action(async (opts: { servers: string; data: string; replicas?: string; insecureHttp?: boolean }) => {
      let stopping: ReturnType<typeof stopOnSignal> | undefined;
      let main: RunningMain | undefined;
      const servers: RunningFileServer[] = [];
      // File servers first, then main (which they report to); each closes its log.
      // Every one is closed even if another's close fails; the failures are then reported.
      const closeAll = async () => {
        const closed = await Promise.allSettled(servers.map((s) => s.close()));
        await main?.close();
        const failed = closed.flatMap((c) => (c.status === 'rejected' ? [c.reason] : []));
        if (failed.length > 0) throw new AggregateError(failed, 'a file server did not close cleanly');
      };
      try {
        const n = Number(opts.servers);
        if (!Number.isInteger(n) || n < 1 || n > 64)
          throw new Error('--servers must be a whole number from 1 to 64');
        const root = resolve(opts.data);
        const replicas = opts.replicas ?? String(Math.min(3, n));
        const { startMain } = await import('../main-server/main-server.js');
        const { startFileServer } = await import('../file-server/file-server.js');
        stopping = stopOnSignal();
        main = await startMain(
          parseConfig(
            MAIN_CONFIG,
            {
              host: '127.0.0.1',
              port: 0,
              data: join(root, 'main'),
              replicas,
              openSignup: true,
              insecureHttp: opts.insecureHttp === true,
            },
            process.env,
          ),
        );
        // A stop asked for meanwhile: no more servers, and the ones started are closed.
        for (let i = 1; i <= n && !stopping.signal.aborted; i++) {
          const config = parseConfig(
            FILE_SERVER_CONFIG,
            {
              main: main.url,
              joinToken: main.joinToken,
              ...(main.caFingerprint ? { caFingerprint: main.caFingerprint } : {}),
              insecureHttp: opts.insecureHttp === true,
              host: '127.0.0.1',
              port: 0,
              data: join(root, `fs${i}`),
            },
            {},
          );
          servers.push(
            await startFileServer(
              { ...config, main: main.url, joinToken: main.joinToken },
              { signal: stopping.signal },
            ),
          );
        }
        await Promise.all(servers.map((s) => s.joined));
        if (!stopping.signal.aborted) process.stdout.write(`${devStartupLines(main, n, root).join('\n')}\n`);
        stopping.whenUp(closeAll);
      } catch (err) {
        // Whether the start failed or gave up because a stop was asked for, decided before
        // closing: a signal during the closing does not turn a failure into a stop.
        const stopAsked = stopping?.signal.aborted === true;
        // It still closes what it had started: logs flushed, main's database closed.
        await closeAll().catch(() => undefined);
        if (stopping && stopAsked) stopping.stoppedEarly(err);
        else fail(err);
      }
    });
}

/** What `sedfs dev` prints once its cluster is up: how to point the user's shell at it. */
export function devStartupLines(
  main: Pick<RunningMain, 'url' | 'caFingerprint'>,
  servers: number,
  root: string,
  platform: NodeJS.Platform = process.platform,
): string[] {
  const label = 'In another terminal:  ';
  const vars: Record<string, string> = { SEDFS_MAIN: main.url };
  if (main.caFingerprint) vars.SEDFS_CA_FINGERPRINT = main.caFingerprint;
  return [
    `SEDFS dev cluster is up: main at ${main.url} with ${servers} file servers (data in ${root}).`,
    ...(main.caFingerprint ? [`Cluster CA fingerprint: ${main.caFingerprint}`] : []),
    ...hintLines(label, setVariables(vars, platform)),
    ...hintLines(' '.repeat(label.length), [
      { shell: undefined, text: 'sedfs signup YOURNAME   (signup is open on a dev cluster)' },
    ]),
    'Press Ctrl-C to stop.',
  ];
}
