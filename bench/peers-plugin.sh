# SEDFS as a peer of ../shared/peers/run.sh, so one invocation measures it next to
# MooseFS and rclone on the same workloads (sourced by run.sh; see bench/README.md):
#
#   sudo PEER_PLUGINS=$PWD/bench/peers-plugin.sh PEERS="physical moosefs rclone sedfs sedfs1" \
#     bash ../shared/peers/run.sh > peers.jsonl
#
# Peers: `sedfs` (main + 3 file servers, R=3: compare with MooseFS goal 3) and `sedfs1`
# (main + 1 file server, R=1: compare with rclone crypt, one copy). Everything binds
# 127.0.0.1 with TLS, data under $PB/sedfs; the client runs the real `sedfs` CLI.
# Needs `npm ci` (which builds dist/) in the project first.

SEDFS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SD=$PB/sedfs
SD_MAIN_PID=""; SD_FS_PIDS=()

# The CLI as the bench user; `timeout` cannot run a shell function, so this is a command line.
SEDFS_CLI=(env SEDFS_HOME="$PB/sedfs/profile" SEDFS_PASSPHRASE=peerbench node "$SEDFS_ROOT/bin/sedfs.js")

# sedfs_start REPLICAS SERVERS
sedfs_start() {
  local replicas=$1 servers=$2 i n
  [ -f "$SEDFS_ROOT/dist/src/cli/index.js" ] || { log "sedfs: run npm ci in $SEDFS_ROOT first"; return 1; }
  rm -rf "$SD"; mkdir -p "$SD" || return 1
  node "$SEDFS_ROOT/bin/sedfs.js" main --host 127.0.0.1 --port 0 --data "$SD/main" --replicas "$replicas" \
    --open-signup > "$SD/main.out" 2>&1 9>&- &
  SD_MAIN_PID=$!; remember_pid "$SD_MAIN_PID" node
  for ((i = 0; i < T_UP * 10; i++)); do [ -s "$SD/main/join" ] && break; sleep 0.1; done
  [ -s "$SD/main/join" ] || { log "sedfs: main did not start"; return 1; }
  SD_FS_PIDS=()
  for ((i = 1; i <= servers; i++)); do
    node "$SEDFS_ROOT/bin/sedfs.js" fileserver --join "$(cat "$SD/main/join")" --host 127.0.0.1 --port 0 \
      --data "$SD/fs$i" > "$SD/fs$i.out" 2>&1 9>&- &
    SD_FS_PIDS+=($!); remember_pid "$!" node
  done
  timeout 60 "${SEDFS_CLI[@]}" signup peerbench --main "$(cat "$SD/main/main.addr")" >> "$LOG" 2>&1 || return 1
  for ((i = 0; i < T_UP * 10; i++)); do
    n=$("${SEDFS_CLI[@]}" servers --json 2>/dev/null | grep -c '"state": "up"')
    [ "$n" = "$servers" ] && break; sleep 0.2
  done
  [ "$n" = "$servers" ] || { log "sedfs: $n of $servers file servers up"; return 1; }
  log "sedfs: main pid $SD_MAIN_PID, $servers file servers (${SD_FS_PIDS[*]}), R=$replicas, TLS"
}

# sedfs_disk_limit: prints the disk's read-while-write MiB/s (each way) on the stored
# chunks, read from the file servers in turn as a get's manifest spreads them; fails if
# it could not be measured.
sedfs_disk_limit() {
  drop_caches "$SD"; rm -f "$READBACK"
  timeout "$T_BIG" node "$SEDFS_ROOT/dist/bench/read-while-write.js" "$READBACK" "$BIG_MIB" "$SD"/fs*/chunks 2>> "$LOG" \
    | python3 -c 'import json, sys; print("%.2f" % json.load(sys.stdin)["mibs"])' 2>> "$LOG"
}

sedfs_stop() {
  local p
  for p in "${SD_FS_PIDS[@]}"; do stop_pid "$p"; done
  stop_pid "$SD_MAIN_PID"; SD_MAIN_PID=""; SD_FS_PIDS=(); rm -rf "$SD"
}

# sedfs_workloads PEER RUN
sedfs_workloads() {
  local p=$1 r=$2 rc n hwm pid plain k detail before after
  # W1
  drop_caches; warm_big
  span_start
  timeout "$T_BIG" /usr/bin/time -f %M -o "$SD/client.maxrss" env SEDFS_HOME="$SD/profile" \
    node "$SEDFS_ROOT/bin/sedfs.js" put "$BIG" /big.bin >> "$LOG" 2>&1 && timeout "$T_SYNC" sync
  rc=$?; span_end
  if [ $rc = 0 ]; then emit "$p" W1 "$r" "$(rate "$BIG_MIB" "$ELAPSED")" MiB/s "\"seconds\":$(fmt3 "$ELAPSED")"
  else emit_err "$p" W1 "$r" MiB/s "sedfs put/sync rc=$rc"; fi
  hwm=0; detail=""; n=0
  for pid in "$SD_MAIN_PID" "${SD_FS_PIDS[@]}"; do
    k=$(vmhwm_kib "$pid"); k=${k:-0}; hwm=$((hwm + k))
    if [ "$n" = 0 ]; then detail="main="; else detail+=" fs$n="; fi
    detail+=$(awk -v k="$k" 'BEGIN{printf "%.1f", k/1024}'); n=$((n + 1))
  done
  emit "$p" W5 "$r" "$(awk -v k="$hwm" 'BEGIN{printf "%.1f", k/1024}')" MiB "\"detail\":$(jstr "main + file servers, summed: $detail")"
  emit "$p" W5c "$r" "$(awk -v k="$(tail -1 "$SD/client.maxrss" 2>/dev/null)" 'BEGIN{printf "%.1f", k/1024}')" MiB '"detail":"sedfs put (client)"'
  # Servers hold ciphertext only: the file's first 4 KiB appear in no chunk file.
  plain=$(python3 - "$BIG" "$SD" <<'PY'
import pathlib, sys
probe = open(sys.argv[1], 'rb').read(4096)
print(sum(probe in p.read_bytes() for p in pathlib.Path(sys.argv[2]).glob('fs*/chunks/*/*')) + sum(probe in p.read_bytes() for p in pathlib.Path(sys.argv[2]).glob('fs*/packs/*.pack')))
PY
)
  if [ "$plain" = 0 ]; then emit "$p" encrypted_at_rest "$r" 1 bool; else emit "$p" encrypted_at_rest "$r" 0 bool; fi
  # W2, between two measurements of its disk limit (issue 7): the chunk files the get
  # reads, read while as many bytes are written where it writes, caches dropped as for the
  # get (bench/read-while-write.ts). Whichever reads second may find them still in the
  # VM host's cache, so the faster of the two is the limit.
  before=$(sedfs_disk_limit) || before=""
  drop_caches "$SD"; rm -f "$READBACK"
  span_start
  timeout "$T_BIG" env SEDFS_HOME="$SD/profile" node "$SEDFS_ROOT/bin/sedfs.js" get /big.bin "$READBACK" >> "$LOG" 2>&1
  rc=$?; span_end
  if [ $rc != 0 ]; then emit_err "$p" W2 "$r" MiB/s "sedfs get rc=$rc"
  elif ! timeout "$T_CMP" cmp -s "$BIG" "$READBACK"; then emit_err "$p" W2 "$r" MiB/s "read-back differs"
  else emit "$p" W2 "$r" "$(rate "$BIG_MIB" "$ELAPSED")" MiB/s "\"seconds\":$(fmt3 "$ELAPSED"),\"verified\":true"; fi
  rm -f "$READBACK"
  after=$(sedfs_disk_limit) || after=""
  if [ -n "$before" ] && [ -n "$after" ]; then
    emit "$p" W2disk "$r" "$(awk -v a="$before" -v b="$after" 'BEGIN{print (a > b) ? a : b}')" MiB/s \
      "\"detail\":$(jstr "O_DIRECT read of the chunk files while writing as many bytes, each way; before the get $before, after $after")"
  else emit_err "$p" W2disk "$r" MiB/s "read-while-write failed (see $LOG)"; fi
  # W3
  warm_small
  span_start
  timeout "$T_SMALL" env SEDFS_HOME="$SD/profile" node "$SEDFS_ROOT/bin/sedfs.js" put -r "$SMALL" /small >> "$LOG" 2>&1 \
    && timeout "$T_SYNC" sync
  rc=$?; span_end
  if [ $rc = 0 ]; then emit "$p" W3 "$r" "$(rate "$SMALL_N" "$ELAPSED")" files/s "\"seconds\":$(fmt3 "$ELAPSED")"
  else emit_err "$p" W3 "$r" files/s "sedfs put -r rc=$rc"; fi
  # W4
  drop_caches "$SD"
  span_start
  n=$(timeout "$T_LIST" env SEDFS_HOME="$SD/profile" node "$SEDFS_ROOT/bin/sedfs.js" ls --json /small | grep -o '"name"' | wc -l)
  span_end
  if [ "$n" != "$SMALL_N" ]; then emit_err "$p" W4 "$r" s "listed $n files, expected $SMALL_N"
  elif ! { timeout "$T_SMALL" env SEDFS_HOME="$SD/profile" node "$SEDFS_ROOT/bin/sedfs.js" get -r /small "$SD/check" >> "$LOG" 2>&1 \
           && diff -r "$SMALL" "$SD/check" > /dev/null; }; then emit_err "$p" W4 "$r" s "sedfs get -r / diff failed"
  else emit "$p" W4 "$r" "$(fmt3 "$ELAPSED")" s "\"verified\":true"; fi
}

sedfs_up()    { sedfs_start 3 3; }
sedfs_run()   { sedfs_workloads sedfs "$1"; }
sedfs_down()  { sedfs_stop; }
sedfs1_up()   { sedfs_start 1 1; }
sedfs1_run()  { sedfs_workloads sedfs1 "$1"; }
sedfs1_down() { sedfs_stop; }
