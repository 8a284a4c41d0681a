// Times repair as the bench's W6 does (one file server stopped, its chunks wiped, started
// again; seconds until main has restored every copy onto it), ROUNDS times on one
// cluster holding a file put through the CLI, with each process's CPU seconds (main,
// then the file servers, the wiped one first) and the wiped one's peak RSS. Linux, root
// (drop_caches, so the sources read from the disk as they would minutes later). From the
// repository root after `npm run build`:
//
//   ROUNDS=3 [MAIN_ARGS="--repair-concurrency 8"] [PLAIN=1] node bench/probes/repair.mjs [BIG_FILE]
//
// PLAIN=1 runs the cluster over plain HTTP (`--insecure-http`), to see what TLS costs.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { benchSession } from '../../dist/bench/session.js';
import { TestCluster } from '../../dist/test/helpers/cluster.js';
import { diskStats, machineCpu, machineDiff } from './machine.mjs';

const run = promisify(execFile);
const big = process.argv[2] ?? join(tmpdir(), 'sedfs-probe-big.bin');
if (!existsSync(big)) await run('sh', ['-c', `head -c ${1024 * 1024 * 1024} /dev/urandom > ${big}`]);
const mib = statSync(big).size / 1048576;

const cluster = await TestCluster.start({
  servers: 3,
  replicas: 3,
  mainArgs: process.env.MAIN_ARGS?.split(' ').filter(Boolean) ?? [],
  insecureHttp: process.env.PLAIN === '1',
});
const cpuOf = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
try {
  await benchSession(cluster, 'probe');
  const env = { ...process.env, SEDFS_HOME: join(cluster.root, 'profile') };
  await run(process.execPath, ['bin/sedfs.js', 'put', big, '/big.bin'], { env });
  const admin = await cluster.client();
  for (let i = 0; i < Number(process.env.ROUNDS ?? 3); i++) {
    await cluster.killFileServer(0, 'SIGTERM');
    rmSync(join(cluster.fileServers[0].data, 'chunks'), { recursive: true, force: true });
    await run('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
    const others = [cluster.main, ...cluster.fileServers.slice(1).map((f) => f.process)].map(
      (p) => p.proc.pid,
    );
    const before = others.map(cpuOf);
    const disk0 = diskStats();
    const cpu0 = machineCpu();
    const t0 = performance.now();
    const startedAt = Date.now();
    await cluster.startFileServer(0);
    const pid = cluster.fileServers[0].process.proc.pid;
    const id = cluster.fileServers[0].id;
    let firstCopyAt;
    const restored = (await admin.call('GET', '/v1/check')).repair.chunks;
    for (;;) {
      const c = await admin.call('GET', '/v1/check');
      const s = c.servers.find((x) => x.id === id);
      if (firstCopyAt === undefined && c.repair.chunks > restored) firstCopyAt = performance.now();
      if ((s?.inventoryAt ?? 0) >= startedAt && c.underReplicated === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const secs = (performance.now() - t0) / 1000;
    const disk1 = diskStats();
    const cpu1 = machineCpu();
    const machine = machineDiff(cpu0, cpu1);
    const used = [cpuOf(pid), ...others.map((p, j) => cpuOf(p) - before[j])];
    // The wiped server's peak resident memory since its start (its whole repair).
    const peak = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
    console.log(
      `repair ${(mib / secs).toFixed(0)} MiB/s ${secs.toFixed(2)} s (first copy seen at ${((firstCopyAt - t0) / 1000).toFixed(2)} s) | cpu wiped ${used[0].toFixed(2)} main ${used[1].toFixed(2)} sources ${used
        .slice(2)
        .map((u) => u.toFixed(2))
        .join(
          ' ',
        )} | wiped peak RSS ${peak.toFixed(0)} MiB | disk read ${((disk1.read - disk0.read) / 2048).toFixed(0)} MiB written ${((disk1.written - disk0.written) / 2048).toFixed(0)} MiB busy ${((disk1.busyMs - disk0.busyMs) / 1000).toFixed(2)} s\n  machine: ${machine}`,
    );
  }
} finally {
  await cluster.stop();
}
