#!/usr/bin/env bash
# CPU per participant, Janus AudioBridge against Chorus, the same callers back to back.
# Not run by CI.
#
#   perf/janus-compare.sh CODEC SIZE TALKERS USERS...
#   e.g. perf/janus-compare.sh pcmu 10 3 500 1000
#
# CODEC is pcmu, pcma or opus (AudioBridge has no G.722). For each USERS, back to back:
# Janus (Debian package janus, installed if missing) with only the AudioBridge plugin and
# the HTTP transport (127.0.0.1:18088), pinned to CPU 0, driven by chorus-load --target
# janus (a room per conference, mixing at 8 kHz for G.711 and 16 kHz for Opus, a plain-RTP
# participant per caller); then a fresh `chorus serve --cores 1` pinned to CPU 0, mixing at
# the room's rate like Janus (--mix-rate 8000 for G.711, 16000 for Opus) (SIP on
# 127.0.0.1:15991, the conferences created beforehand without join tones or count
# announcements), driven over SIP. chorus-load runs on one core pinned to CPU 1 with the
# same settings for both: plain RTP, --dial direct (no IVR on either side), USERS callers
# in conferences of SIZE with TALKERS talkers, held HOLD.
#
# One line per (server, USERS): participants up, RTP loss, delay through the server
# (p50/p99), MOS (p50/min), the server's CPU (median with every call up; for Janus its whole
# process, all threads) and per participant, the generator's CPU (! when saturated), the
# packets the generator sent against one per 20 ms of each call (under 100: it was
# descheduled, so its lateness is in the figures), the verdict; then per USERS the ratio
# Janus/Chorus of CPU per participant.
#
# Environment: HOLD (default 30s), CHECKS (percentage of callers whose audio is checked,
# default 25), SILENCE (continuous, dtx or none; default continuous), RAMP (default 100/s),
# JANUS_PORTS (AudioBridge's plain-RTP ports, two per participant: the default 54000-54999
# holds 500), OUT (work directory), BIN (directory holding chorus and chorus-load; default
# $CARGO_TARGET_DIR/release or target/release, built when missing). Generator media ports
# 55000-55999 (Janus) and 57000-57999 (Chorus); Chorus media ports 56000-56999.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 4 ] || { sed -n '2,30p' "$0" >&2; exit 2; }
codec=$1 size=$2 talkers=$3
shift 3
case $codec in pcmu | pcma | opus) ;; *) echo "CODEC must be pcmu, pcma or opus" >&2; exit 2 ;; esac
# The rate Janus's rooms mix at (8 kHz for G.711, 16 kHz for Opus); Chorus mixes at the same.
mix_rate=$([ "$codec" = opus ] && echo 16000 || echo 8000)
hold=${HOLD:-30s}
checks=${CHECKS:-25}
silence=${SILENCE:-continuous}
ramp=${RAMP:-100/s}
janus_ports=${JANUS_PORTS:-54000-54999}
out=${OUT:-$(mktemp -d /tmp/chorus-janus.XXXXXX)}
bin=${BIN:-${CARGO_TARGET_DIR:-target}/release}
mkdir -p "$out"
[ -x "$bin/chorus" ] && [ -x "$bin/chorus-load" ] ||
  { cargo build --release --bin chorus && cargo build --release -p chorus-perf; }
command -v taskset >/dev/null || { echo "taskset missing: apt-get install util-linux" >&2; exit 1; }
command -v janus >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y janus >&2
# Debian's plugin and transport folders (multiarch), from the package's own file list.
audiobridge=$(dpkg -L janus | grep '/plugins/libjanus_audiobridge\.so$')
http=$(dpkg -L janus | grep '/transports/libjanus_http\.so$')
plugins=$(dirname "$audiobridge") transports=$(dirname "$http")
others() { (cd "$1" && ls lib*.so 2>/dev/null | grep -vx "$2" | paste -sd, -); }

# Janus's configuration: the AudioBridge plugin and the HTTP transport only.
conf=$out/janus-conf
mkdir -p "$conf"
cat >"$conf/janus.jcfg" <<EOF
general: {
	configs_folder = "$conf"
	plugins_folder = "$plugins"
	transports_folder = "$transports"
	events_folder = "$(dirname "$plugins")/events"
	loggers_folder = "$(dirname "$plugins")/loggers"
	debug_level = 4
	session_timeout = 60
}
media: {
}
nat: {
}
plugins: {
	disable = "$(others "$plugins" libjanus_audiobridge.so)"
}
transports: {
	disable = "$(others "$transports" libjanus_http.so)"
}
events: {
	broadcast = false
}
loggers: {
	disable = "$(others "$(dirname "$plugins")/loggers" none)"
}
EOF
cat >"$conf/janus.plugin.audiobridge.jcfg" <<EOF
general: {
	rtp_port_range = "$janus_ports"
	local_ip = "127.0.0.1"
	events = false
}
EOF
cat >"$conf/janus.transport.http.jcfg" <<EOF
general: {
	base_path = "/janus"
	http = true
	port = 18088
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_http = false
}
EOF

server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# Runs chorus-load against the server $server_pid with the extra flags given; prints the
# result line and appends "SERVER USERS CPU_PER_PARTICIPANT" to $out/per.txt.
measure() {
  local name=$1 users=$2 dir=$3
  shift 3
  set +e
  taskset -c 1 "$bin/chorus-load" run "$@" --server-pid "$server_pid" \
    --users "$users" --conference-size "$size" --talkers "$talkers" --duration "$hold" \
    --ramp "$ramp" --codec "$codec" --srtp none --dial direct --silence "$silence" \
    --audio-checks "$checks" --cores 1 --progress false \
    --json "$dir/report.json" --plot "$dir/report.png" >"$dir/table.txt" 2>"$dir/load.log"
  local status=$?
  set -e
  kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true
  server_pid=""
  local verdict=pass
  [ $status -eq 0 ] ||
    verdict=$(grep -o 'FAILED: .*\|chorus-load: .*' "$dir/load.log" | head -1 | cut -c1-90) || verdict=failed
  [ -s "$dir/report.json" ] || { printf '%-7s %-7s %s\n' "$name" "$users" "$verdict"; return; }
  python3 - "$dir/report.json" "$name" "$users" "$verdict" "$out/per.txt" "$silence" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
a, m = r["audio"]["delay_ms"], r["mos"]
cpu = r.get("server_cpu_pct")
f = lambda v, p=0: "-" if v is None else f"{v:.{p}f}"
per = None if cpu is None or not r["established"] else cpu / r["established"]
gen = f(r.get("generator_cpu_pct")) + ("!" if r.get("generator_saturated") else "")
# The packets the generator sent against one per 20 ms of every call's hold: under 100
# (with continuous silence) it was descheduled and skipped ticks, so its lateness is in the
# figures (a loaded machine; the busier server pushes other work onto the generator's CPU).
calls = r["calls"]
want = sum(c.get("held_s") or 0 for c in calls) * 50
sent = sum(c.get("rtp_out") or 0 for c in calls)
sent = 100 * sent / want if want and sys.argv[6] == "continuous" else None
delay = f'{f(a["p50"])}/{f(a["p99"])}'
mos = f'{f(m["p50"], 2)}/{f(m["min"], 2)}'
print(f'{sys.argv[2]:<7} {sys.argv[3]:<7} {r["established"]:<6} {r["rtp"]["loss_pct"]:<8.3f} '
      f'{delay:<13} {mos:<11} {f(cpu, 1):<9} {f(per, 4):<11} {gen:<7} {f(sent, 1):<6} {sys.argv[4]}')
if per is not None:
    open(sys.argv[5], "a").write(f"{sys.argv[2]} {sys.argv[3]} {per}\n")
EOF
}

rm -f "$out/per.txt"
printf '%-7s %-7s %-6s %-8s %-13s %-11s %-9s %-11s %-7s %-6s %s\n' \
  server users up loss% delay50/99 mos50/min cpu% cpu%/part gen% sent% verdict
for users in "$@"; do
  conferences=$(((users + size - 1) / size))

  dir=$out/janus-$codec-$size-$talkers-$users
  rm -rf "$dir" && mkdir -p "$dir"
  taskset -c 0 janus -C "$conf/janus.jcfg" -F "$conf" -N -L "$dir/janus.log" >/dev/null 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do grep -q "HTTP webserver started" "$dir/janus.log" 2>/dev/null && break; sleep 0.1; done
  measure janus "$users" "$dir" --target janus --janus-url http://127.0.0.1:18088/janus \
    --media-ports 55000-55999

  dir=$out/chorus-$codec-$size-$talkers-$users
  rm -rf "$dir" && mkdir -p "$dir"
  for k in $(seq 0 $((conferences - 1))); do
    "$bin/chorus" conference create $((7000 + k)) --data-dir "$dir/data" \
      --no-announce-count --no-join-tones >/dev/null
  done
  taskset -c 0 "$bin/chorus" serve --sip udp:127.0.0.1:15991 --cores 1 --mix-rate "$mix_rate" \
    --pin-cores false --media-ports 56000-56999 --calls-per-s 1000 --calls-per-s-per-source 1000 \
    --data-dir "$dir/data" 2>"$dir/server.log" &
  server_pid=$!
  for _ in $(seq 50); do grep -q "answering SIP" "$dir/server.log" 2>/dev/null && break; sleep 0.1; done
  measure chorus "$users" "$dir" --target sip --server 127.0.0.1:15991 --media-ports 57000-57999
done
python3 - "$out/per.txt" <<'EOF'
import sys
per = {}
try:
    for line in open(sys.argv[1]):
        name, users, v = line.split()
        per[(name, users)] = float(v)
except FileNotFoundError:
    pass
for (name, users), v in per.items():
    c = per.get(("chorus", users))
    if name == "janus" and c:
        print(f"{users} participants: Janus/Chorus CPU per participant = {v:.4f}/{c:.4f} = {v / c:.2f}x")
EOF
echo "reports, plots and logs: $out"
