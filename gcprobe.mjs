import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { login, signup } from './dist/src/client/account.js';
import { Profile } from './dist/src/client/profile.js';
import { fingerprintOf } from './dist/src/crypto/certificates.js';
import { TestCluster } from './dist/test/helpers/cluster.js';
const mode = process.argv[2];
const verb = process.argv[3] ?? 'put';
const cluster = await TestCluster.start({ servers: 3, replicas: 3, insecureHttp: mode === 'plain' });
const c = cluster.newClient();
const { identity } = await signup(c, 'bench');
const s = await login(c, 'bench', identity);
await c.close();
const profile = new Profile(join(cluster.root, 'profile'));
await profile.saveSession({ main: cluster.mainUrl, user: 'bench', userId: s.user.id, token: s.token, expiresAt: s.expiresAt, identity });
if (cluster.ca) await profile.saveTrust(cluster.mainUrl, { fingerprint: fingerprintOf(cluster.ca), ca: cluster.ca });
const cpuOf = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
const procs = [cluster.main, ...cluster.fileServers.map((f) => f.process)];
const run = async (args) => {
  const before = procs.map((p) => cpuOf(p.proc.pid));
  const out = await new Promise((res) => { const p = spawn(process.execPath, [...(process.env.CLIENT_ARGS?.split(' ').filter(Boolean) ?? []), 'dist/bench/client.js', ...args], { stdio: ['ignore', 'pipe', 'inherit'] }); let t = ''; p.stdout.on('data', (d) => (t += d)); p.on('exit', () => res(t)); });
  const r = JSON.parse(out.trim().split('\n').at(-1));
  const servers = procs.map((p, i) => cpuOf(p.proc.pid) - before[i]);
  console.log(mode, args[0], process.env.SEDFS_NODE_ARGS ?? '', 'MiB/s or files/s', (args[0] === 'small' ? 2000 / r.seconds : 1024 / r.seconds).toFixed(0), 'cpu client', r.cpuSeconds.toFixed(1), 'servers', servers.map((x) => x.toFixed(1)).join(' '), 'total', (r.cpuSeconds + servers.reduce((a, b) => a + b)).toFixed(1));
};
const hwm = () => procs.map((p) => Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${p.proc.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024));
const base = [cluster.mainUrl, join(cluster.root, 'profile', 'session.json')];
if (verb === 'cli') {
  const { execFileSync } = await import('node:child_process');
  const env = { ...process.env, SEDFS_HOME: join(cluster.root, 'profile') };
  const timed = (what, args) => {
    const t = performance.now();
    const out = execFileSync('/usr/bin/time', ['-f', '%U %S %M', process.execPath, 'bin/sedfs.js', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    return { s: (performance.now() - t) / 1000 };
  };
  for (let i = 0; i < 2; i++) {
    const r = execFileSync('sh', ['-c', `cat /tmp/big.bin > /dev/null; /usr/bin/time -f '%U %S %M' ${process.execPath} bin/sedfs.js put /tmp/big.bin /big${i}.bin 2>&1 >/dev/null | tail -1`], { env }).toString().trim();
    execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
    const t0 = performance.now();
    const r2 = execFileSync('sh', ['-c', `rm -f /tmp/readback.bin; /usr/bin/time -f '%U %S %M' ${process.execPath} bin/sedfs.js get /big${i}.bin /tmp/readback.bin 2>&1 >/dev/null | tail -1`], { env }).toString().trim();
    const getS = (performance.now() - t0) / 1000;
    console.log('cli put cpu(user sys maxrssKiB)', r, '| get', (1024 / getS).toFixed(0), 'MiB/s cpu', r2);
  }
} else if (verb === 'ls') {
  await run(['small', ...base, '/small', '2000', '4096']);
  const { execFileSync } = await import('node:child_process');
  for (let i = 0; i < 5; i++) {
    if (process.env.DROP) execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
    const t = performance.now();
    const out = execFileSync(process.execPath, [...(process.env.CLIENT_ARGS?.split(' ').filter(Boolean) ?? []), 'bin/sedfs.js', 'ls', '--json', '/small'], { env: { ...process.env, SEDFS_HOME: join(cluster.root, 'profile') } });
    console.log('ls', ((performance.now() - t) / 1000).toFixed(3), 's', (out.toString().match(/"name"/g) ?? []).length, 'entries');
  }
} else if (verb === 'small') await run(['small', ...base, '/small', '2000', '4096']);
else {
  await run(['put', ...base, '/x.bin', '1024', process.env.R ?? '3']);
  if (verb === 'get') await run(['get', ...base, '/x.bin']);
  console.log('peak RSS MiB main fs0 fs1 fs2:', hwm().join(' '));
}
cluster.fileServers.forEach((f, i) => writeFileSync(`/tmp/fs${i}-${mode}.log`, f.process.output()));
await cluster.stop();
