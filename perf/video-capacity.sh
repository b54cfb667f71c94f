#!/usr/bin/env bash
# Video rooms per server core, measured with chorus-load --video. Not run by CI.
#
#   perf/video-capacity.sh SIZE ROOMS...
#   e.g. perf/video-capacity.sh 10 1 2 4
#
# For each ROOMS: a fresh `chorus serve` on one media core pinned to CPU 0 (release build),
# and chorus-load on one core pinned to CPU 1 placing ROOMS conferences of SIZE callers
# (SDES AES-CM-80, dialled directly), every caller publishing the simulcast H.264 clip
# (180p/360p/720p) and taking every other publisher's stream (a meeting: SIZE x (SIZE-1)
# streams per room), held HOLD (default 30s). One line per run: calls up, frames the
# subscribers completed and broke after retransmission, frame delay p50/p99, the layers
# received, the server's CPU (median with every call up) and per room, video packets the
# server forwarded per second (its legs' final counters over the hold), the generator's CPU
# (! when saturated: its lateness is then in the figures), and the verdict. A run passes with
# every call up and no frame broken after retransmission. Environment: HOLD, SERVER_ARGS
# (more `chorus serve` flags, e.g. --gso false), LOAD_ARGS (more chorus-load flags, e.g.
# --video-bandwidth 600 --video-limited 5), OUT (work directory). Ports: SIP 15994, media
# 50000-53999.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 2 ] || { sed -n '2,18p' "$0" >&2; exit 2; }
size=$1
shift
hold=${HOLD:-30s}
out=${OUT:-$(mktemp -d /tmp/chorus-video-capacity.XXXXXX)}
mkdir -p "$out"
[ -x target/release/chorus ] && [ -x target/release/chorus-load ] ||
  { cargo build --release --bin chorus && cargo build --release -p chorus-perf; }
command -v taskset >/dev/null || { echo "taskset missing: apt-get install util-linux" >&2; exit 1; }

server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

printf '%-6s %-6s %-8s %-7s %-12s %-16s %-6s %-9s %-9s %-6s %s\n' \
  rooms up frames broken delay50/99 layers cpu% cpu%/room fwd/s gen% verdict
for rooms in "$@"; do
  users=$((rooms * size))
  dir=$out/video-$size-$rooms
  rm -rf "$dir" && mkdir -p "$dir"
  for k in $(seq 0 $((rooms - 1))); do
    target/release/chorus conference create $((7000 + k)) --data-dir "$dir/data" >/dev/null
  done
  taskset -c 0 target/release/chorus serve --sip udp:127.0.0.1:15994 --cores 1 \
    --pin-cores false --media-ports 50000-51999 --calls-per-s 1000 --calls-per-s-per-source 1000 \
    --data-dir "$dir/data" ${SERVER_ARGS:-} 2>"$dir/server.log" &
  server_pid=$!
  for _ in $(seq 50); do grep -q "answering SIP" "$dir/server.log" 2>/dev/null && break; sleep 0.1; done
  set +e
  taskset -c 1 target/release/chorus-load run --server 127.0.0.1:15994 --server-pid "$server_pid" \
    --users "$users" --conference-size "$size" --talkers 1 --duration "$hold" \
    --ramp 50/s --codec pcmu --srtp aes-cm-80 --dial direct --cores 1 \
    --media-ports 52000-52999 --video --video-ports 53000-53999 --progress false \
    ${LOAD_ARGS:-} --json "$dir/report.json" >"$dir/table.txt" 2>"$dir/load.log"
  status=$?
  set -e
  kill -INT "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true
  server_pid=""
  verdict=$([ $status -eq 0 ] && echo pass || grep -o 'FAILED: .*' "$dir/load.log" | cut -c1-90)
  python3 - "$dir/report.json" "$dir/server.log" "$rooms" "$hold" "$verdict" <<'EOF'
import json, re, sys
r = json.load(open(sys.argv[1]))
v = r["video"]
def secs(t):  # chorus-load's duration syntax: 500ms, 30s, 2m
    for unit, k in (("ms", 0.001), ("s", 1), ("m", 60)):
        if t.endswith(unit):
            return float(t[: -len(unit)]) * k
    return float(t)
rooms, hold = int(sys.argv[3]), secs(sys.argv[4])
out = sum(int(m) for m in re.findall(r"video_out=(\d+)", open(sys.argv[2]).read()))
layers = v["layers"]
frames = sum(l["frames"] for l in layers.values())
broken = sum(l["broken"] for l in layers.values())
top = max(layers, key=lambda h: layers[h]["frames"], default=None)
d = layers[top]["delay_ms"] if top else {"p50": None, "p99": None}
cpu = r.get("server_cpu_pct")
f = lambda x, p=0: "-" if x is None else f"{x:.{p}f}"
mix = "/".join(f'{h}:{layers[h]["frames"] * 100 // max(frames, 1)}%'
               for h in sorted(layers, key=int))
gen = f(r.get("generator_cpu_pct")) + ("!" if r.get("generator_saturated") else "")
print(f'{rooms:<6} {r["established"]:<6} {frames:<8} {broken:<7} '
      f'{f(d["p50"], 1)}/{f(d["p99"], 1):<7} {mix:<16} {f(cpu, 1):<6} '
      f'{f(None if cpu is None else cpu / rooms, 1):<9} {out / hold:<9.0f} {gen:<6} {sys.argv[5]}')
EOF
done
echo "reports and logs: $out"
