#!/usr/bin/env bash
# Peak memory (VmHWM) of main and three file servers under one 1 GiB put at R=3, the
# servers started through the CLI exactly as the peer harness starts them (no source
# maps), and each file server's CPU seconds. Linux only (/proc). Run from anywhere:
#
#   bench/probes/servers-peak.sh [BIG_FILE]
#
# BIG_FILE defaults to a 1 GiB random file made once as $TMPDIR/sedfs-probe-big.bin.
# FS_NODE_ARGS adds node flags to the file servers only, e.g.
#   FS_NODE_ARGS="--import $PWD/bench/probes/gc-log.mjs"   (see gc-log.mjs)
# Compare two builds by running this script from each checkout, interleaved: this
# machine's noise is larger than most single effects.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLI="$ROOT/bin/sedfs.js"
BIG=${1:-${TMPDIR:-/tmp}/sedfs-probe-big.bin}
[ -f "$BIG" ] || head -c $((1024 * 1024 * 1024)) /dev/urandom > "$BIG"
SD=$(mktemp -d "${TMPDIR:-/tmp}/sedfs-probe-XXXXXX")
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$SD"; }
trap cleanup EXIT

node "$CLI" main --host 127.0.0.1 --port 0 --data "$SD/main" --replicas 3 --open-signup > "$SD/main.out" 2>&1 &
MAIN=$!; PIDS+=("$MAIN")
for _ in $(seq 100); do [ -s "$SD/main/join" ] && break; sleep 0.1; done
FS=()
for i in 1 2 3; do
  # shellcheck disable=SC2086
  node ${FS_NODE_ARGS:-} "$CLI" fileserver --join "$(cat "$SD/main/join")" --host 127.0.0.1 --port 0 \
    --data "$SD/fs$i" > "$SD/fs$i.out" 2>&1 &
  FS+=($!); PIDS+=($!)
done
export SEDFS_HOME="$SD/profile" SEDFS_PASSPHRASE=probe
node "$CLI" signup probe --main "$(cat "$SD/main/main.addr")" > /dev/null 2>&1
for _ in $(seq 50); do
  [ "$(node "$CLI" servers --json | grep -c '"state": "up"')" = 3 ] && break; sleep 0.2
done
sleep 1
cat "$BIG" > /dev/null
start=$(date +%s.%N)
node "$CLI" put "$BIG" /big.bin > /dev/null
end=$(date +%s.%N)
hwm() { awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$1/status"; }
cpu() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
total=$(hwm "$MAIN"); line="main $(hwm "$MAIN")"
for p in "${FS[@]}"; do total=$((total + $(hwm "$p"))); line+=" fs $(hwm "$p") MiB $(cpu "$p") s"; done
echo "put $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", 1024 / (e - s) }') MiB/s | $line | sum $total MiB"
