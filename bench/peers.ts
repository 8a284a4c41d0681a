/**
 * The peer comparison of `npm run bench`: runs ../shared/peers/run.sh with SEDFS added as
 * two peers (bench/peers-plugin.sh: `sedfs` at R=3, `sedfs1` at R=1) and returns the
 * ratios SEDFS ÷ peer from the medians of that one invocation: R=3 against MooseFS
 * (goal 3), R=1 against rclone crypt, and each get against the disk's read-while-write
 * limit measured on its own chunk files (W2disk). Needs root (the harness installs the peers with
 * apt-get, mounts FUSE and makes a network namespace); without it, says why it skipped.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export interface PeerMedian {
  peer: string;
  workload: string;
  value: number;
  unit: string;
}

const PAIRS: [string, string][] = [
  ['sedfs', 'moosefs'],
  ['sedfs1', 'rclone'],
];
const WORKLOADS: [string, string][] = [
  ['W1', 'higher is better'],
  ['W2', 'higher is better'],
  ['W3', 'higher is better'],
  ['W4', 'lower is better'],
  ['W5', 'lower is better'],
  ['W5c', 'lower is better'],
];

export async function runPeers(repoRoot: string): Promise<{ lines: string[]; medians: PeerMedian[] }> {
  const harness = resolve(repoRoot, '../shared/peers/run.sh');
  if (process.getuid?.() !== 0)
    return {
      lines: ['peers skipped: the peer harness needs root (apt-get, FUSE, a network namespace)'],
      medians: [],
    };
  if (!existsSync(harness)) return { lines: [`peers skipped: no harness at ${harness}`], medians: [] };
  const out = await new Promise<string>((res, rej) => {
    const p = spawn('bash', [harness], {
      env: {
        ...process.env,
        PEER_PLUGINS: resolve(repoRoot, 'bench/peers-plugin.sh'),
        PEERS: process.env.BENCH_PEERS_LIST ?? 'physical moosefs rclone sedfs sedfs1',
        RUNS: process.env.BENCH_PEERS_RUNS ?? '3',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    p.stdout.on('data', (d: Buffer) => {
      text += d.toString();
    });
    p.on('exit', (code) => (code === 0 ? res(text) : rej(new Error(`peer harness exited ${code}`))));
  });
  const medians = out
    .split('\n')
    .filter((l) => l.includes('"run":"median"'))
    .map((l) => JSON.parse(l) as PeerMedian);
  const value = (peer: string, workload: string) =>
    medians.find((m) => m.peer === peer && m.workload === workload)?.value;
  const lines = ['SEDFS ÷ peer, medians of one invocation of ../shared/peers/run.sh:'];
  for (const [ours, theirs] of PAIRS) {
    for (const [w, better] of WORKLOADS) {
      const a = value(ours, w);
      const b = value(theirs, w);
      if (a === undefined || b === undefined) continue;
      lines.push(`  ${w.padEnd(4)} ${ours} ÷ ${theirs}: ${(a / b).toFixed(2)}  (${a} vs ${b}; ${better})`);
    }
    // Issue 7: where the peer's read is above what this disk does when a get reads the
    // chunks and writes the file at once, W2 within 10 % of that limit counts as met.
    const get = value(ours, 'W2');
    const disk = value(ours, 'W2disk');
    const peer = value(theirs, 'W2');
    if (get !== undefined && disk !== undefined && peer !== undefined) {
      const above = peer > disk;
      lines.push(
        `  W2   ${ours} ÷ disk read-while-write limit: ${(get / disk).toFixed(2)}  (${get} vs ${disk} MiB/s each way; ` +
          `${theirs}'s ${peer} is ${above ? 'above it: ≥ 0.90 counts as met' : 'not above it: the peer ratio counts'})`,
      );
    }
  }
  return { lines, medians };
}
