#!/usr/bin/env bash
# An independent cross-check of chorus-load's loss figures with tools we did not write. Not
# run by CI; needs root (tcpdump) and 2 CPUs.
#
#   perf/sipp-crosscheck.sh [CALLS]      (default 1000)
#
# Two runs of the same shape, each against a fresh `chorus serve --cores 1` pinned to CPU 0
# (admission limits raised, as perf/capacity.sh), callers pinned to CPU 1, CALLS callers in
# conferences of 10 (IDs 7000 on, created in the directory and dialed directly: the
# Request-URI user is the conference ID), plain RTP PCMU, every caller sending audio, held
# HOLD, then BYE:
#   1. sipp (perf/sipp/conference_call.xml): each call streams a looped mu-law file with
#      rtp_stream. tcpdump captures the media on loopback; tshark's RTP analysis counts what
#      the server sent each caller (packets, lost from the sequence numbers, largest gap,
#      jitter) and what sipp sent (a check on sipp itself).
#   2. chorus-load --talkers 10 --codec pcmu --srtp none --dial direct, measuring the same
#      quantity itself (RFC 3550); captured and analysed by tshark the same way.
# Then both side by side, with jitter, receive-side drops (/proc/net/snmp RcvbufErrors and
# each socket's drops: tcpdump sees a packet when it is sent, before the receiving socket)
# and the server's CPU (median over the seconds with every caller in its conference).
#
# sipp 3.6.1's rtp_stream sends every call's stream from one socket (-mp, 59000) and never
# reads it: the scenario announces each call's SSRC (a=ssrc) so the server can tell the calls
# apart, the script checks that each server leg received its own caller's stream, and the
# drops at sipp's unread socket are expected (they are after the capture point).
#
# Environment: HOLD (seconds, default 30), RATE (call attempts/s, default 200), OUT (work
# directory), CHORUS and CHORUS_LOAD (binaries; default the release build, built if missing),
# KEEP_PCAP=1 (keep the captures), SERVER_ARGS (more `chorus serve` flags, e.g. --io syscalls,
# for both runs). Ports: SIP 15992 (server) and 15993 (sipp), server media
# 58000-58999, sipp media 59000-61999 (control port 61990), chorus-load media 62000-62999.
# Exits 1 with a line saying why when a call fails or is refused, the capture is empty or
# dropped packets, or a stream was misrouted.
set -euo pipefail
cd "$(dirname "$0")/.."

calls=${1:-1000}
hold=${HOLD:-30}
hold=${hold%s}
rate=${RATE:-200}
rate=${rate%/s}
size=10
base=7000
out=${OUT:-$(mktemp -d /tmp/chorus-sipp-crosscheck.XXXXXX)}
target=${CARGO_TARGET_DIR:-target}
chorus=${CHORUS:-$target/release/chorus}
load=${CHORUS_LOAD:-$target/release/chorus-load}
helper=perf/sipp/crosscheck.py
scenario=$PWD/perf/sipp/conference_call.xml

fail() { echo "sipp-crosscheck: $*" >&2; exit 1; }
[[ $calls =~ ^[1-9][0-9]*$ ]] || { sed -n '2,34p' "$0" >&2; exit 2; }
[[ $hold =~ ^[1-9][0-9]*$ ]] || fail "HOLD=$hold: whole seconds, e.g. 30"
[[ $rate =~ ^[1-9][0-9]*$ ]] || fail "RATE=$rate: calls per second, e.g. 200"
ramp_s=$(((calls + rate - 1) / rate))
[ "$hold" -ge $((ramp_s + 5)) ] ||
  fail "HOLD=$hold s is too short: placing $calls calls at $rate/s takes $ramp_s s, and every call must be up together for a while"
[ "$(id -u)" -eq 0 ] || fail "run as root: tcpdump captures on the loopback interface"
[ "$(nproc)" -ge 2 ] || fail "needs 2 CPUs (server on CPU 0, callers on CPU 1)"
mkdir -p "$out"

# What is missing, installed noninteractively (apt-get update only then).
need=()
command -v sipp >/dev/null || need+=(sip-tester)
command -v tshark >/dev/null || need+=(tshark)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"; } \
    >"$out/apt.log" 2>&1 || fail "apt-get install ${need[*]} failed: see $out/apt.log"
fi
version=$(sipp -v 2>&1 || true)
[[ $version == *RTPSTREAM* ]] || fail "this sipp has no rtp_stream (RTPSTREAM): $(grep -m1 SIPp <<<"$version")"
[ -x "$chorus" ] || cargo build --release --bin chorus
[ -x "$load" ] || cargo build --release -p chorus-perf
python3 "$helper" selftest >/dev/null

for port in 15992 15993; do
  ! ss -Hlun "sport = :$port" | grep -q . || fail "UDP port $port is in use"
done

server_pid="" capture_pid="" monitor_pid=""
stop() { [ -n "${1:-}" ] && kill "-${2:-TERM}" "$1" 2>/dev/null && wait "$1" 2>/dev/null || true; }
cleanup() { stop "$capture_pid" INT; stop "$monitor_pid"; stop "$server_pid"; }
trap cleanup EXIT

# A fresh server for run $1 (its directory), its conferences in its own data directory.
start_server() {
  local dir=$1 n=$(((calls + size - 1) / size)) i
  for ((i = 0; i < n; i++)); do
    "$chorus" conference create $((base + i)) --data-dir "$dir/data" >/dev/null ||
      fail "could not create conference $((base + i))"
  done
  taskset -c 0 "$chorus" serve --sip udp:127.0.0.1:15992 --cores 1 --pin-cores false \
    --media-ports 58000-58999 --calls-per-s 1000 --calls-per-s-per-source 1000 \
    --data-dir "$dir/data" ${SERVER_ARGS:-} 2>"$dir/server.log" &
  server_pid=$!
  for _ in $(seq 50); do grep -q "answering SIP" "$dir/server.log" 2>/dev/null && return; sleep 0.1; done
  fail "chorus serve did not start: $(tail -3 "$dir/server.log")"
}

# Captures RTP between the server's media ports and the callers' ($2) into $1, even ports
# only (RTP; RTCP is on the odd ones), 64 bytes of each packet (headers through RTP's). The
# capture and the sampler run on the callers' CPU, leaving the server's CPU to the server.
start_capture() {
  local dir=$1 callers=$2
  python3 "$helper" snmp >"$dir/snmp.before"
  taskset -c 1 tcpdump -i lo -n -s 64 -B 65536 -w "$dir/rtp.pcap" \
    "udp and udp[0:2] & 1 = 0 and udp[2:2] & 1 = 0 and \
     ((src portrange 58000-58999 and dst portrange $callers) or \
      (src portrange $callers and dst portrange 58000-58999))" 2>"$dir/tcpdump.err" &
  capture_pid=$!
  for _ in $(seq 50); do grep -q "listening on" "$dir/tcpdump.err" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$dir/tcpdump.err" || fail "tcpdump did not start: $(cat "$dir/tcpdump.err")"
  taskset -c 1 python3 "$helper" monitor "$server_pid" "$dir/monitor.jsonl" &
  monitor_pid=$!
}

# Ends run $1: the capture, the sampler, the server; then tshark's RTP streams.
finish_run() {
  local dir=$1
  sleep 1
  stop "$capture_pid" INT; capture_pid=""
  stop "$monitor_pid"; monitor_pid=""
  python3 "$helper" snmp >"$dir/snmp.after"
  stop "$server_pid"; server_pid=""
  tshark -r "$dir/rtp.pcap" -q -n -d udp.port==58000-58999,rtp -z rtp,streams \
    >"$dir/streams.txt" 2>"$dir/tshark.err" || fail "tshark failed: $(tail -3 "$dir/tshark.err")"
  [ "${KEEP_PCAP:-0}" = 1 ] || rm -f "$dir/rtp.pcap"
}

echo "$calls callers in conferences of $size, PCMU, plain RTP, held ${hold} s, placed at $rate/s; work directory $out" >&2

# 1. sipp, captured.
dir=$out/sipp
rm -rf "$dir" && mkdir -p "$dir"
python3 "$helper" audio "$dir/audio.ulaw"
python3 "$helper" inject "$dir/calls.csv" "$calls" "$size" "$base"
start_server "$dir"
start_capture "$dir" 59000-61999
echo "sipp: placing $calls calls" >&2
rc=0
(cd "$dir" && taskset -c 1 sipp 127.0.0.1:15992 -sf "$scenario" -inf calls.csv \
  -i 127.0.0.1 -p 15993 -mi 127.0.0.1 -mp 59000 -cp 61990 -t u1 \
  -r "$rate" -m "$calls" -l "$calls" -d $((hold * 1000)) -nostdin \
  -timeout $((ramp_s + hold + 60))s -timeout_error -recv_timeout 10000 \
  -trace_err -trace_stat -fd 1 -stf sipp-stat.csv >sipp.out 2>&1) || rc=$?
finish_run "$dir"
stat_last() { awk -F';' -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next } NF > 1 { v = $k } END { print v + 0 }' "$1"; }
ok=$(stat_last "$dir/sipp-stat.csv" 'SuccessfulCall(C)' 2>/dev/null || echo 0)
failed=$(stat_last "$dir/sipp-stat.csv" 'FailedCall(C)' 2>/dev/null || echo 0)
if [ "$rc" -ne 0 ] || [ "$ok" -ne "$calls" ]; then
  # The answers that failed calls (e.g. "10 x SIP/2.0 503 Service Unavailable"), else the last error.
  why=$(cat "$dir"/*_errors.log 2>/dev/null | grep -ao "received 'SIP/2.0 [0-9]*[^']*" |
    sed "s/^received '//; s/\r$//" | sort | uniq -c | awk '{ $1 = $1 " x"; print }' | paste -sd ';' || true)
  [ -n "$why" ] || why=$(cat "$dir"/*_errors.log 2>/dev/null | grep -a 'Aborting\|rror' | tail -1 | cut -c1-200 || true)
  fail "sipp: $ok of $calls calls succeeded, $failed failed (exit $rc): ${why:-see $dir/sipp.out}"
fi
echo "$ok" >"$dir/established"
python3 "$helper" analyse "$dir" sipp "$calls" "$hold" || fail "sipp run unusable (above); files in $dir"

# 2. chorus-load, the same shape, captured the same way.
dir=$out/load
rm -rf "$dir" && mkdir -p "$dir"
start_server "$dir"
start_capture "$dir" 62000-62999
echo "chorus-load: placing $calls calls" >&2
rc=0
taskset -c 1 "$load" run --server 127.0.0.1:15992 --server-pid "$server_pid" \
  --users "$calls" --conference-size "$size" --talkers "$size" --conference-base "$base" \
  --codec pcmu --srtp none --dial direct --duration "${hold}s" --ramp "$rate/s" \
  --audio-checks 0 --max-loss-pct 100 --cores 1 --media-ports 62000-62999 \
  --progress false --json "$dir/report.json" >"$dir/table.txt" 2>"$dir/load.log" || rc=$?
finish_run "$dir"
[ "$rc" -eq 0 ] || fail "chorus-load failed (exit $rc): $(grep -v '^$' "$dir/load.log" | tail -2 | tr '\n' ' ')"
python3 "$helper" analyse "$dir" load "$calls" "$hold" || fail "chorus-load run unusable (above); files in $dir"

echo
echo "$calls callers, conferences of $size, PCMU, plain RTP, held $hold s ($(date -u +%F))"
python3 "$helper" report "$out"
cat <<EOF

lost: expected (from the sequence numbers) minus received, per stream, summed; % of expected.
short of 50/s: packets a stream's first-to-last time should have held beyond those received
or lost: a server that falls behind skips ticks without skipping sequence numbers, so its
gaps are not loss to RFC 3550 (nor to chorus-load's loss figure) but silence to a caller.
jitter: tshark: the median over streams of each stream's mean RFC 3550 jitter / the largest
any stream reached; chorus-load: each call's last RFC 3550 jitter, median / largest.
receive drops: the capture sees packets before the receiving socket; sipp never reads its
media socket, so drops there are expected and are not loss in the figures above. RcvbufErrors
counts every socket of the machine; the socket rows only the runs' own.
server CPU: this script's sampler of /proc/PID/stat (sipp and tshark columns), chorus-load's
own (its column); both the median over the seconds with every caller in its conference.
files: $out (summary.json of each run, server logs, tshark's streams, chorus-load's report)
EOF
