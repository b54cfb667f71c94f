#!/usr/bin/env bash
# Capacity of one server core, measured with chorus-load. Not run by CI.
#
#   perf/capacity.sh CODEC SIZE TALKERS USERS...
#   e.g. perf/capacity.sh pcmu 10 3 500 1000 2000
#
# For each USERS: a fresh `chorus serve` on one media core pinned to CPU 0, and chorus-load
# on one core pinned to CPU 1, placing USERS callers (conferences of SIZE with TALKERS
# talkers, SDES AES-CM-80, through the IVR) held 30 s. One line per run: calls established,
# RTP loss, the packets short of 50/s while every call was up (a server that falls behind
# skips ticks without a sequence gap), delay through the server (p50/p99), MOS (p50/min), the server's CPU (median with
# every call up) and its CPU per leg, the generator's CPU (! when saturated: its lateness is
# then in the figures), then the verdict. A run passes the capacity bar with
# loss under 0.1%, p99 delay under 60 ms and MOS >= 4.0. Environment: HOLD (default 30s),
# CHECKS (percentage of callers whose audio is checked, default 25), DIAL (ivr, the default,
# or direct: the conferences are created first and callers dial their IDs), SERVER_ARGS (more
# `chorus serve` flags, e.g. --mix-rate 8000), SILENCE (chorus-load
# --silence, default continuous), OUT (work directory), PROFILE (seconds of `perf record -a`
# once every call is up: profile.txt in the run's directory says where both CPUs went, by
# process and user/kernel, then the server's top symbols). Media ports 50000-53999. The
# generator is one source address placing 200 calls/s, so the server's admission limits are
# raised for the run (--calls-per-s, --calls-per-s-per-source).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 4 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
codec=$1 size=$2 talkers=$3
shift 3
hold=${HOLD:-30s}
checks=${CHECKS:-25}
silence=${SILENCE:-continuous}
dial=${DIAL:-ivr}
out=${OUT:-$(mktemp -d /tmp/chorus-capacity.XXXXXX)}
mkdir -p "$out"
[ -x target/release/chorus ] && [ -x target/release/chorus-load ] ||
  { cargo build --release --bin chorus && cargo build --release -p chorus-perf; }
command -v taskset >/dev/null || { echo "taskset missing: apt-get install util-linux" >&2; exit 1; }

server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

printf '%-7s %-6s %-8s %-8s %-13s %-11s %-9s %-10s %-7s %s\n' users up loss% short% delay50/99 mos50/min cpu% cpu%/leg gen% verdict
for users in "$@"; do
  dir=$out/$codec-$size-$talkers-$users
  rm -rf "$dir" && mkdir -p "$dir"
  if [ "$dial" = direct ]; then
    # chorus-load's conference IDs: 7000 and on, one per SIZE callers.
    for k in $(seq 0 $(((users + size - 1) / size - 1))); do
      target/release/chorus conference create $((7000 + k)) --data-dir "$dir/data" >/dev/null
    done
  fi
  taskset -c 0 target/release/chorus serve --sip udp:127.0.0.1:15990 --cores 1 \
    --pin-cores false --media-ports 50000-51999 --calls-per-s 1000 --calls-per-s-per-source 1000 \
    --data-dir "$dir/data" ${SERVER_ARGS:-} 2>"$dir/server.log" &
  server_pid=$!
  for _ in $(seq 50); do grep -q "answering SIP" "$dir/server.log" 2>/dev/null && break; sleep 0.1; done
  if [ -n "${PROFILE:-}" ]; then
    command -v perf >/dev/null || { echo "perf missing: apt-get install linux-perf" >&2; exit 1; }
    # From 10 s after the ramp (200 calls/s) ends.
    (sleep $((users / 200 + 10))
     taskset -c 1 perf record -q -F 499 -a -o "$dir/perf.data" -- sleep "$PROFILE" >/dev/null 2>&1
     { echo "# the server is pid $server_pid, its threads: $(ls /proc/"$server_pid"/task 2>/dev/null | tr '\n' ' ')"
       echo "# where both CPUs went (by thread and object)"
       perf report -i "$dir/perf.data" --stdio --sort pid,dso --percent-limit 0.5 2>/dev/null
       echo "# the server's top symbols (share of all samples)"
       perf report -i "$dir/perf.data" --stdio --pid "$server_pid" --sort dso,symbol \
         --percent-limit 0.5 2>/dev/null
     } | grep -v -e '^#* *$' -e '^# \(Samples\|Event count\|Total Lost\|To display\|(Tip\)' \
       >"$dir/profile.txt") &
  fi
  set +e
  taskset -c 1 target/release/chorus-load run --server 127.0.0.1:15990 --server-pid "$server_pid" \
    --users "$users" --conference-size "$size" --talkers "$talkers" --duration "$hold" \
    --ramp 200/s --codec "$codec" --srtp aes-cm-80 --dial "$dial" --silence "$silence" \
    --audio-checks "$checks" --cores 1 --media-ports 52000-53999 --progress false \
    --json "$dir/report.json" --plot "$dir/report.png" >"$dir/table.txt" 2>"$dir/load.log"
  status=$?
  set -e
  kill "$server_pid" 2>/dev/null; wait 2>/dev/null || true
  server_pid=""
  verdict=$([ $status -eq 0 ] && echo pass || grep -o 'FAILED: .*' "$dir/load.log" | cut -c1-90)
  python3 - "$dir/report.json" "$users" "$verdict" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
a, m = r["audio"]["delay_ms"], r["mos"]
cpu = r.get("server_cpu_pct")
f = lambda v, p=0: "-" if v is None else f"{v:.{p}f}"
per = None if cpu is None or not r["established"] else cpu / r["established"]
gen = f(r.get("generator_cpu_pct")) + ("!" if r.get("generator_saturated") else "")
print(f'{sys.argv[2]:<7} {r["established"]:<6} {r["rtp"]["loss_pct"]:<8.3f} '
      f'{f(r["rtp"].get("steady_short_pct"), 2):<8} '
      f'{f(a["p50"])}/{f(a["p99"]):<9} {f(m["p50"], 2)}/{f(m["min"], 2):<6} '
      f'{f(cpu, 1):<9} {f(per, 4):<10} {gen:<7} {sys.argv[3]}')
EOF
done
echo "reports, plots and logs: $out"
