// Puts a big file through the real CLI into a fresh test cluster, then gets it back with
// the page cache dropped before each get (LIMIT=1: each followed by the disk's
// read-while-write limit on the same chunks, bench/read-while-write.ts); prints MiB/s,
// the client's user and system CPU and peak RSS, and each server's CPU (main first). Linux, root (drop_caches). Run from
// the repository root after `npm run build`:
//
//   R=1 PUTS=1 GETS=3 [LIMIT=1] node bench/probes/put-get.mjs [BIG_FILE]
//
// The cluster is the tests' (dist/test/helpers/cluster.js: source maps on, TLS on unless
// PLAIN=1). SEDFS_NODE_ARGS adds node flags to every server, e.g. "--cpu-prof
// --cpu-prof-dir=/tmp/prof". Interleave two builds' runs to compare them.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { benchSession } from '../../dist/bench/session.js';
import { TestCluster } from '../../dist/test/helpers/cluster.js';
import { machineCpu, machineDiff } from './machine.mjs';

const run = promisify(execFile);
const big = process.argv[2] ?? join(tmpdir(), 'sedfs-probe-big.bin');
if (!existsSync(big)) await run('sh', ['-c', `head -c ${1024 * 1024 * 1024} /dev/urandom > ${big}`]);
const mib = statSync(big).size / 1048576;
const readBack = join(tmpdir(), 'sedfs-probe-readback.bin');
const R = Number(process.env.R ?? 3);
/** node flags for the CLI alone, e.g. CLI_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" */
const cliNodeArgs = process.env.CLI_NODE_ARGS?.split(' ').filter(Boolean) ?? [];

const cluster = await TestCluster.start({ servers: R, replicas: R, insecureHttp: process.env.PLAIN === '1' });
try {
  await benchSession(cluster, 'probe');
  const env = { ...process.env, SEDFS_HOME: join(cluster.root, 'profile') };
  const servers = [cluster.main, ...cluster.fileServers.map((f) => f.process)].map((p) => p.proc.pid);
  const cpuOf = (pid) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  };
  /** Runs `sedfs args` under /usr/bin/time; prints what it cost. */
  const measure = async (label, args) => {
    const before = servers.map(cpuOf);
    const cpu0 = machineCpu();
    const t = performance.now();
    const { stderr } = await run(
      '/usr/bin/time',
      ['-f', '%U %S %M', process.execPath, ...cliNodeArgs, 'bin/sedfs.js', ...args],
      { env },
    );
    const secs = (performance.now() - t) / 1000;
    const machine = machineDiff(cpu0, machineCpu());
    const [user, sys, rss] = stderr.trim().split('\n').at(-1).split(' ');
    const used = servers.map((pid, i) => (cpuOf(pid) - before[i]).toFixed(2)).join(' ');
    console.log(
      `${label} ${(mib / secs).toFixed(0)} MiB/s ${secs.toFixed(2)} s | client user ${user} sys ${sys} rss ${(rss / 1024).toFixed(0)} MiB | servers ${used}\n  machine: ${machine}`,
    );
  };
  for (let i = 0; i < Number(process.env.PUTS ?? 1); i++) {
    await run('sh', ['-c', `cat ${big} > /dev/null`]);
    await measure('put', ['put', big, '/big.bin']);
  }
  for (let i = 0; i < Number(process.env.GETS ?? 3); i++) {
    await run('sh', ['-c', `rm -f ${readBack}; sync; echo 3 > /proc/sys/vm/drop_caches`]);
    await measure('get', ['get', '/big.bin', readBack]);
    if (process.env.LIMIT === '1') {
      // The disk's read-while-write limit on the same chunk files, as the bench's W2disk.
      await run('sh', ['-c', `rm -f ${readBack}; sync; echo 3 > /proc/sys/vm/drop_caches`]);
      const folders = cluster.fileServers.map((_, k) => join(cluster.root, `fs${k}`, 'chunks'));
      const { stdout } = await run(process.execPath, [
        'dist/bench/read-while-write.js',
        readBack,
        String(mib),
        ...folders,
      ]);
      console.log(`  disk read-while-write limit ${JSON.parse(stdout).mibs.toFixed(0)} MiB/s`);
    }
  }
} finally {
  await cluster.stop();
}
