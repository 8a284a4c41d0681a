// What the whole machine did between two readings: CPU by kind and the busiest disk's
// counters. Shared by the probes.
import { readFileSync } from 'node:fs';

/** The whole-disk counters of the busiest disk: sectors read and written, ms busy. */
export const diskStats = () => {
  const rows = readFileSync('/proc/diskstats', 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => !/^(loop|ram|zram)/.test(f[2]));
  const f = rows.sort((a, b) => Number(b[12]) - Number(a[12]))[0];
  return { read: Number(f[5]), written: Number(f[9]), busyMs: Number(f[12]) };
};
/** The machine's CPU seconds (in 1/100 s) by kind, from /proc/stat. */
export const machineCpu = () => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { user: f[0] + f[1], system: f[2], idle: f[3], iowait: f[4], irq: f[5], softirq: f[6] };
};

/** CPU seconds by kind between two readings of machineCpu, as one line. */
export const machineDiff = (a, b) =>
  Object.keys(b)
    .map((k) => `${k} ${((b[k] - a[k]) / 100).toFixed(2)}`)
    .join(' ');
