#!/usr/bin/env bash
# compare-redis.sh: feedmesh against Redis on this machine, same workload (issue 6).
#
# Redis side, run twice: appendfsync always, then everysec, on the primary.
#  - 3 redis-server processes on 127.0.0.1, free ports picked at run time, data
#    in a temp dir: one primary and two replicas (replicaof the primary).
#    All three appendonly yes. The primary's appendfsync is the setting under
#    test; the replicas always use everysec, because Redis replication is
#    asynchronous (a primary acknowledges a SET before any replica has it), so
#    fsync always on a replica adds no guarantee a client can observe and only
#    slows the stream: this is Redis's best durable configuration.
#    Tuned in Redis's favour: auto AOF rewrite off (a fork mid-run makes the
#    figures noisy), repl-diskless-sync-delay 0 (the default waits 5 s for more
#    replicas before a full sync), and a replication backlog that holds the
#    missed writes, so a partial resync is possible if Redis can do one (the
#    kind it did is reported).
#  - Throughput: redis-benchmark SET, -d VALUE, -r OPS (keys key:000000NNNNNN,
#    16 bytes), -c WRITERS, -n OPS, with -P 1 and with -P 16 (--csv output).
#  - Replica lag: benches/redis_lag.py samples during the -P 1 run (see there).
#  - Catch-up: stop replica 2, write MISSED SETs to the primary (-P 16),
#    restart replica 2 on its AOF, and time from its start until it reports
#    master_link_status:up, master_sync_in_progress:0 and the primary's
#    master_repl_offset. Bytes = the restarted replica's
#    total_net_repl_input_bytes (a fresh process: everything it received from
#    the primary, RDB payload or backlog). Missed bytes = MISSED * (VALUE + 16).
#  - GET p50: redis-benchmark GET, one client. RSS (less the replication
#    backlog) and AOF size of the primary, per million keys it holds.
# feedmesh side: `$FEEDMESH bench sessions|catchup ... --json` (built with
# cargo build --release unless FEEDMESH is set); "not available" if absent.
# Every server it starts is stopped and the temp dir removed on exit,
# failure or Ctrl-C.
# The same redis-benchmark on both sides (issue 13's figures, issue 15's
# targets): `-t set|get -d VALUE -r 1000000 -c 64 -n OPS`, with -P 1 and
# -P 16, against the RESP port (`feedmesh serve --resp`) of node 1 of a
# 3-node mesh and against the Redis primary (appendfsync always, 2
# replicas). A SET run counts until every node holds every write: its
# throughput is OPS / (benchmark time + the time until the other nodes'
# view digests equal node 1's, or the replicas reach the primary's offset).
# Then resident memory per million live sessions of node 1 and of the
# primary. Printed as a second table; --resp-only runs just this part.
# Usage: benches/compare-redis.sh [--ops M] [--writers C]
#   [--value-bytes B] [--missed M] [--json] [--resp-only]
set -euo pipefail

OPS=200000 WRITERS=256 VALUE=200 MISSED=200000 JSON=0 RESP_ONLY=0 RESP_CLIENTS=64
while [ $# -gt 0 ]; do
  case "$1" in
    --resp-only) RESP_ONLY=1; shift ;;
    --ops) OPS=$2; shift 2 ;;
    --writers) WRITERS=$2; shift 2 ;;
    --value-bytes) VALUE=$2; shift 2 ;;
    --missed) MISSED=$2; shift 2 ;;
    --json) JSON=1; shift ;;
    *) echo "usage: $0 [--ops M] [--writers C] [--value-bytes B] [--missed M] [--json] [--resp-only]" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
KEY_BYTES=16 # redis-benchmark -r keys: "key:" + 12 digits
T_START=$EPOCHREALTIME
secs_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "compare-redis [$(secs_since "$T_START") s]: $*" >&2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/compare-redis.XXXXXX")
PIDS=()
forget() { # drop a reaped pid from PIDS, so cleanup never signals a reused pid
  local keep=() p
  for p in ${PIDS[@]+"${PIDS[@]}"}; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=(${keep[@]+"${keep[@]}"})
}
stop_pid() { # TERM, then KILL after 10 s
  forget "$1"
  kill "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() { # newest first: the lag sampler before the servers it polls
  while [ ${#PIDS[@]} -gt 0 ]; do stop_pid "${PIDS[-1]}"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  log "installing redis-server and redis-tools"
  $SUDO apt-get update -qq >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >&2
fi

free_ports() { python3 -c 'import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])'; }
info() { redis-cli -h 127.0.0.1 -p "$1" info "$2" 2>/dev/null | tr -d '\r'; }
field() { awk -F: -v f="$1" '$1 == f { print $2 }'; }
csv_field() { awk -F'"' -v t="$1" -v n="$2" '$2 == t { print $n }'; } # n=4 rps, 10 p50 ms
bench() { redis-benchmark -h 127.0.0.1 -p "$P0" -d "$VALUE" -r "$OPS" -c "$WRITERS" --csv "$@"; }

declare -A PID
start_redis() { # name port fsync [replicaof-port]
  local name=$1 port=$2 fsync=$3 dir=$RUN/$1
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --logfile "$dir/redis.log" \
    --daemonize no --save '' --appendonly yes --appendfsync "$fsync" \
    --auto-aof-rewrite-percentage 0 --repl-diskless-sync-delay 0 --repl-backlog-size $((MISSED * (VALUE + 80) + 1048576)) \
    ${4:+--replicaof 127.0.0.1 "$4"} &
  PID[$name]=$!
  PIDS+=("$!")
  for _ in $(seq 1500); do # up to 30 s (an AOF to load)
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && return 0
    kill -0 "${PID[$name]}" 2>/dev/null || break
    sleep 0.02
  done
  log "redis $name did not start:"; tail -5 "$dir/redis.log" >&2; exit 1
}
in_sync() { # replica-port: link up, no sync in progress, primary's offset
  local r p
  r=$(info "$1" replication)
  p=$(info "$P0" replication | field master_repl_offset)
  [ "$(field master_link_status <<<"$r")" = up ] && [ "$(field master_sync_in_progress <<<"$r")" = 0 ] &&
    [ "$(field master_repl_offset <<<"$r")" = "$p" ]
}
wait_sync() { # replica-port...
  for _ in $(seq 3000); do # up to 60 s
    local ok=1
    for port in "$@"; do in_sync "$port" || { ok=0; break; }; done
    [ $ok = 1 ] && return 0
    sleep 0.01
  done
  log "replicas did not sync"; exit 1
}

run_redis() { # fsync policy on the primary; writes $WORK/redis-$1.txt (name value lines)
  local fsync=$1 out=$WORK/redis-$1.txt t0 lagpid
  RUN=$WORK/$fsync
  read -r P0 P1 P2 < <(free_ports)
  start_redis primary "$P0" "$fsync"
  start_redis replica1 "$P1" everysec "$P0"
  start_redis replica2 "$P2" everysec "$P0"
  wait_sync "$P1" "$P2"
  log "redis $fsync: ports $P0 $P1 $P2; SET -P 1 with lag sampling"

  python3 "$HERE/redis_lag.py" --primary "$P0" --replica "$P1" --replica "$P2" \
    --deadline-secs 240 --ready-file "$RUN/lag.ready" >"$RUN/lag.json" &
  lagpid=$!
  PIDS+=("$lagpid")
  for _ in $(seq 500); do [ -e "$RUN/lag.ready" ] && break; sleep 0.01; done
  echo "ops_p1 $(bench -t set -n "$OPS" -P 1 | csv_field SET 4)" >"$out"
  kill -TERM "$lagpid"; wait "$lagpid" || true
  forget "$lagpid"
  python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms", "samples", "timeouts"): print(k, d[k])' "$RUN/lag.json" >>"$out"

  log "redis $fsync: SET -P 16, GET"
  echo "ops_p16 $(bench -t set -n "$OPS" -P 16 | csv_field SET 4)" >>"$out"
  echo "get_p50_us $(bench -t get -n 20000 -c 1 | csv_field GET 10 | awk '{ print $1 * 1000 }')" >>"$out"
  local keys rss aof
  wait_sync "$P1" "$P2"
  keys=$(redis-cli -h 127.0.0.1 -p "$P0" dbsize)
  rss=$(info "$P0" memory | awk -F: '$1 == "used_memory_rss" { r = $2 } $1 == "mem_replication_backlog" { b = $2 } END { print r - b }')
  aof=$(du -sb "$RUN/primary" | awk '{ print $1 }')
  echo "rss_mb_per_million $(awk -v a="$rss" -v k="$keys" 'BEGIN { print a / 1048576 / k * 1e6 }')" >>"$out"
  echo "disk_mb_per_million $(awk -v a="$aof" -v k="$keys" 'BEGIN { print a / 1048576 / k * 1e6 }')" >>"$out"

  log "redis $fsync: catch-up after $MISSED missed SETs"
  local full0 part0
  full0=$(info "$P0" stats | field sync_full)
  part0=$(info "$P0" stats | field sync_partial_ok)
  stop_pid "${PID[replica2]}"
  bench -t set -n "$MISSED" -P 16 >/dev/null
  t0=$EPOCHREALTIME
  start_redis replica2 "$P2" everysec "$P0"
  wait_sync "$P2"
  echo "catchup_secs $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" >>"$out"
  # After a full sync the replica rewrites its AOF (a fork): until then the
  # caught-up data is in memory only. Reported separately.
  for _ in $(seq 3000); do
    info "$P2" persistence | grep -qE '^aof_rewrite_(in_progress|scheduled):1' || break
    sleep 0.01
  done
  echo "catchup_durable_secs $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" >>"$out"
  local stats; stats=$(info "$P2" stats) # total_net_repl_input_bytes: Redis >= 7.0
  echo "catchup_bytes $(field total_net_repl_input_bytes <<<"$stats" | grep . || field total_net_input_bytes <<<"$stats")" >>"$out"
  echo "missed_entry_bytes $((MISSED * (VALUE + KEY_BYTES)))" >>"$out"
  echo "keys_at_catchup $(redis-cli -h 127.0.0.1 -p "$P0" dbsize)" >>"$out"
  echo "sync_full $(($(info "$P0" stats | field sync_full) - full0))" >>"$out"
  echo "sync_partial $(($(info "$P0" stats | field sync_partial_ok) - part0))" >>"$out"

  for name in replica2 replica1 primary; do stop_pid "${PID[$name]}"; done
  # Redis's own sign of a busy disk: a write held back behind a slow fsync.
  echo "slow_fsync_warnings $(cat "$RUN"/*/redis.log | grep -c 'fsync is taking too long' || true)" >>"$out"
  rm -rf "$RUN"
}

# The same redis-benchmark against both systems (see the header). Writes
# $WORK/same-redis.txt and $WORK/same-feedmesh.txt (name value lines).
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
same_bench() { # port test pipeline: prints requests/s of redis-benchmark's own clock
  redis-benchmark -h 127.0.0.1 -p "$1" -t "$2" -d "$VALUE" -r 1000000 -c "$RESP_CLIENTS" -n "$OPS" -P "$3" --csv |
    csv_field "$(tr a-z A-Z <<<"$2")" 4
}
# Runs the four benchmarks on port $1; after each SET, `$2` must return
# once every node holds every write. Writes lines to $3.
same_runs() {
  # (not `port`: wait_sync's loop variable would overwrite it)
  local target=$1 settle=$2 out=$3 p t0 rps secs
  for p in 1 16; do
    t0=$(now)
    rps=$(same_bench "$target" set "$p")
    $settle
    secs=$(elapsed "$t0")
    echo "set_p${p}_rps $rps" >>"$out"
    echo "set_p${p}_held_rps $(awk -v n="$OPS" -v s="$secs" 'BEGIN { print n / s }')" >>"$out"
    echo "get_p${p}_rps $(same_bench "$target" get "$p")" >>"$out"
  done
}
redis_settle() { wait_sync "$P1" "$P2"; }
same_redis() {
  local out=$WORK/same-redis.txt
  RUN=$WORK/same-redis
  read -r P0 P1 P2 < <(free_ports)
  start_redis primary "$P0" always
  start_redis replica1 "$P1" everysec "$P0"
  start_redis replica2 "$P2" everysec "$P0"
  wait_sync "$P1" "$P2"
  log "same benchmark, redis (appendfsync always): ports $P0 $P1 $P2"
  : >"$out"
  same_runs "$P0" redis_settle "$out"
  local keys rss
  keys=$(redis-cli -h 127.0.0.1 -p "$P0" dbsize)
  rss=$(info "$P0" memory | awk -F: '$1 == "used_memory_rss" { r = $2 } $1 == "mem_replication_backlog" { b = $2 } END { print r - b }')
  echo "keys $keys" >>"$out"
  echo "rss_mb_per_million $(awk -v a="$rss" -v k="$keys" 'BEGIN { print a / 1048576 / k * 1e6 }')" >>"$out"
  for name in replica2 replica1 primary; do stop_pid "${PID[$name]}"; done
  rm -rf "$RUN"
}
feedmesh_settle() { # until nodes 2 and 3 show node 1's digest and clock (one poller, up to 120 s)
  python3 - "${FM_API[@]}" <<'PY' || { log "feedmesh nodes did not converge"; exit 1; }
import json, sys, time, urllib.request
def state(port):
    d = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/view/digest", timeout=10))
    return d["digest"], json.dumps(d["clock"], sort_keys=True)
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    states = [state(port) for port in sys.argv[1:]]
    if all(s == states[0] for s in states):
        sys.exit(0)
    time.sleep(0.01)
sys.exit(1)
PY
}
same_feedmesh() {
  local out=$WORK/same-feedmesh.txt dir=$WORK/same-feedmesh i peers
  mkdir -p "$dir"
  "$FEEDMESH" network-key --out "$dir/key" >/dev/null
  read -r L0 L1 L2 < <(free_ports)
  read -r R0 R1 R2 < <(free_ports)
  read -r A0 A1 A2 < <(free_ports)
  FM_LISTEN=("$L0" "$L1" "$L2") FM_RESP=("$R0" "$R1" "$R2") FM_API=("$A0" "$A1" "$A2")
  for i in 0 1 2; do
    "$FEEDMESH" init --dir "$dir/n$i" --network-key-file "$dir/key" >/dev/null
    peers=()
    for j in 0 1 2; do [ "$j" -lt "$i" ] && peers+=(--peer "127.0.0.1:${FM_LISTEN[$j]}"); done
    RUST_LOG=warn "$FEEDMESH" serve --dir "$dir/n$i" --listen "127.0.0.1:${FM_LISTEN[$i]}" \
      --api "127.0.0.1:${FM_API[$i]}" --resp "127.0.0.1:${FM_RESP[$i]}" ${peers[@]+"${peers[@]}"} \
      2>"$dir/n$i.log" &
    PID[fm$i]=$!
    PIDS+=("$!")
  done
  for i in 0 1 2; do
    for _ in $(seq 3000); do
      [ "$(redis-cli -h 127.0.0.1 -p "${FM_RESP[$i]}" ping 2>/dev/null)" = PONG ] && break
      sleep 0.01
    done
  done
  for _ in $(seq 3000); do # every node sees its two peers
    local ok=1
    for i in 0 1 2; do
      [ "$(info "${FM_RESP[$i]}" replication | field connected_slaves)" = 2 ] || ok=0
    done
    [ $ok = 1 ] && break
    sleep 0.01
  done
  log "same benchmark, feedmesh: RESP ports ${FM_RESP[*]}"
  : >"$out"
  same_runs "$R0" feedmesh_settle "$out"
  local keys rss
  keys=$(redis-cli -h 127.0.0.1 -p "$R0" dbsize)
  rss=$(awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/${PID[fm0]}/status")
  echo "keys $keys" >>"$out"
  echo "rss_mb_per_million $(awk -v a="$rss" -v k="$keys" 'BEGIN { print a / 1048576 / k * 1e6 }')" >>"$out"
  for i in 2 1 0; do stop_pid "${PID[fm$i]}"; done
}
same_table() {
  python3 - "$WORK" "$OPS" "$VALUE" "$RESP_CLIENTS" <<'PY'
import sys
work, ops, value, clients = sys.argv[1], *map(int, sys.argv[2:5])
def load(p):
    try:
        return {k: float(v) for k, v in (l.split() for l in open(p) if l.strip())}
    except FileNotFoundError:
        return {}
r, f = load(f"{work}/same-redis.txt"), load(f"{work}/same-feedmesh.txt")
rows = [
    ("SET -P 1, requests/s (redis-benchmark)", "set_p1_rps"),
    ("SET -P 1, held by all 3 nodes, /s", "set_p1_held_rps"),
    ("SET -P 16, requests/s (redis-benchmark)", "set_p16_rps"),
    ("SET -P 16, held by all 3 nodes, /s", "set_p16_held_rps"),
    ("GET -P 1, requests/s", "get_p1_rps"),
    ("GET -P 16, requests/s", "get_p16_rps"),
    ("RSS MB per million live keys (node 1 / primary)", "rss_mb_per_million"),
]
print(f"\nThe same redis-benchmark on both (-d {value} -r 1000000 -c {clients} -n {ops}):")
table = [("figure", "feedmesh", "redis always", "feedmesh/redis")]
fmt = lambda x: "-" if x is None else f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
for label, k in rows:
    a, b = f.get(k), r.get(k)
    table.append((label, fmt(a), fmt(b), f"{a / b:.2f}" if a is not None and b else "-"))
w = [max(len(t[i]) for t in table) for i in range(4)]
for i, t in enumerate(table):
    print("  ".join(c.ljust(w[j]) if j == 0 else c.rjust(w[j]) for j, c in enumerate(t)))
    if i == 0:
        print("  ".join("-" * x for x in w))
PY
}

if [ "$RESP_ONLY" = 0 ]; then
run_redis always
run_redis everysec
fi

# feedmesh side.
FM_STATUS="feedmesh side: not available" BUILD_SECS=0
if [ -z "${FEEDMESH:-}" ]; then
  log "cargo build --release"
  t0=$EPOCHREALTIME
  if (cd "$ROOT" && cargo build --release --quiet) >"$WORK/build.log" 2>&1; then
    BUILD_SECS=$(secs_since "$t0")
    FEEDMESH=$ROOT/target/release/feedmesh
  else
    log "cargo build failed:"; tail -5 "$WORK/build.log" >&2
  fi
fi
same_redis
if [ -n "${FEEDMESH:-}" ] && "$FEEDMESH" serve --help 2>/dev/null | grep -q -- --resp; then
  same_feedmesh
else
  log "feedmesh has no --resp: the same-benchmark table has no feedmesh column"
fi
if [ "$RESP_ONLY" = 1 ]; then
  same_table
  exit 0
fi
if [ -n "${FEEDMESH:-}" ] && "$FEEDMESH" bench --help >/dev/null 2>&1; then
  log "feedmesh bench sessions, bench catchup"
  if timeout 180 "$FEEDMESH" bench sessions --nodes 3 --writers "$WRITERS" --ops "$OPS" --value-bytes "$VALUE" --json |
    tail -1 >"$WORK/fm-sessions.json" &&
    timeout 120 "$FEEDMESH" bench catchup --missed "$MISSED" --value-bytes "$VALUE" --json |
    tail -1 >"$WORK/fm-catchup.json"; then
    FM_STATUS=ok
  else
    FM_STATUS="feedmesh side: failed"
  fi
fi

python3 - "$WORK" "$FM_STATUS" "$JSON" "$(secs_since "$T_START")" "$BUILD_SECS" "$OPS" "$WRITERS" "$VALUE" "$MISSED" <<'EOF'
import json, sys
work, fm_status, as_json = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
wall, build = float(sys.argv[4]), float(sys.argv[5])
ops, writers, value, missed = map(int, sys.argv[6:10])
def load_txt(p):
    return {k: float(v) for k, v in (l.split() for l in open(p) if l.strip())}
redis = {f: load_txt(f"{work}/redis-{f}.txt") for f in ("always", "everysec")}
fm = None
if fm_status == "ok":
    fm = {**json.load(open(f"{work}/fm-sessions.json")), **json.load(open(f"{work}/fm-catchup.json"))}
for r in redis.values():
    r["catchup_ratio"] = r["catchup_bytes"] / r["missed_entry_bytes"]
# (label, feedmesh field, redis field)
rows = [
    (f"put ops/s, not pipelined (-P 1, {writers} clients)*", "ops_per_sec", "ops_p1"),
    ("put ops/s, pipelined (-P 16)", None, "ops_p16"),
    ("replication lag p50, ms", "lag_p50_ms", "lag_p50_ms"),
    ("replication lag p99, ms", "lag_p99_ms", "lag_p99_ms"),
    ("replication lag max, ms", "lag_max_ms", "lag_max_ms"),
    ("GET p50 over the network (HTTP / RESP), us", "http_get_p50_us", "get_p50_us"),
    ("GET p50 in process (feedmesh embedded), us", "get_p50_us", None),
    ("RSS MB per million keys", "rss_mb_per_million", "rss_mb_per_million"),
    ("disk MB per million keys", "disk_mb_per_million", "disk_mb_per_million"),
    (f"catch-up time after {missed} missed puts, s", "catchup_secs", "catchup_secs"),
    ("  redis: until its AOF rewrite ends, s", None, "catchup_durable_secs"),
    ("catch-up bytes transferred", "bytes_transferred", "catchup_bytes"),
    ("missed entry bytes", "missed_entry_bytes", "missed_entry_bytes"),
    ("catch-up bytes / missed bytes", "ratio", "catchup_ratio"),
]
# Issue 6's done-when, against the appendfsync always run of this same invocation.
ra = redis["always"]
done = fm and {
    "ops_at_least_redis_always": fm["ops_per_sec"] >= ra["ops_p1"],
    "lag_p99_under_100ms": fm["lag_p99_ms"] < 100,
    "catchup_bytes_at_most_1.2x_missed": fm["ratio"] <= 1.2,
    "catchup_faster_than_redis_resync": fm["catchup_secs"] < ra["catchup_secs"],
}
if as_json:
    print(json.dumps({"params": {"ops": ops, "writers": writers, "value_bytes": value, "missed": missed},
                      "wall_secs": wall, "build_secs": build, "feedmesh": fm if fm else fm_status,
                      "redis_always": redis["always"], "redis_everysec": redis["everysec"], "done_when": done}))
    sys.exit()
def fmt(x):
    return "-" if x is None else f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
table = [("figure", "feedmesh", "redis always", "redis everysec", "feedmesh/redis-always")]
for label, fk, rk in rows:
    f = None if fm is None or fk is None else fm.get(fk)
    a, e = redis["always"].get(rk), redis["everysec"].get(rk)
    fcell = fm_status if fm is None and fk else fmt(f)
    table.append((label, fcell, fmt(a), fmt(e), f"{f / a:.2f}" if f is not None and a else "-"))
w = [max(len(r[i]) for r in table) for i in range(5)]
for i, r in enumerate(table):
    print("  ".join(c.ljust(w[j]) if j == 0 else c.rjust(w[j]) for j, c in enumerate(r)))
    if i == 0:
        print("  ".join("-" * x for x in w))
kinds = ", ".join(f"{k}: {'full' if r['sync_full'] else 'partial' if r['sync_partial'] else '?'} resync" for k, r in redis.items())
print(f"\n* feedmesh: durable puts, acknowledged once held on all 3 nodes; redis: acknowledged by the"
      f"\n  primary (replicas asynchronous). {ops} ops, {value}-byte values, keyspace {ops}."
      f"\n  Redis replicas: appendonly yes, appendfsync everysec. Redis {kinds}."
      f"\n  Redis lag samples (timeouts): " + ", ".join(f"{k} {r['samples']:.0f} ({r['timeouts']:.0f})" for k, r in redis.items())
      + ". Redis 'AOF fsync is taking too long' warnings: "
      + ", ".join(f"{k} {r['slow_fsync_warnings']:.0f}" for k, r in redis.items())
      + f".\n  A Redis full resync sends the whole dataset ({ra['keys_at_catchup']:.0f} keys here), whatever was missed."
      + f"\n  Wall time {wall:.0f} s, of which cargo build {build:.0f} s.")
if done:
    print("\ndone-when (issue 6): " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in done.items()))
EOF
[ "$JSON" = 1 ] || same_table
