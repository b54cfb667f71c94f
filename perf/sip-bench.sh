#!/usr/bin/env bash
# SIP benchmarks of `chorus serve` with sipp (Debian package sip-tester). Not run by CI.
#
#   perf/sip-bench.sh rate [RUNS]   sustained call setup rate: INVITE->200->ACK->BYE, no media,
#                                   stepping the rate up until calls fail or sipp falls behind;
#                                   the same steps against sipp's own UAS as the baseline
#   perf/sip-bench.sh hold [RUNS]   10,000 concurrent established calls (signaling plus media
#                                   legs) held together for a minute: RSS, memory per call, CPU
#   perf/sip-bench.sh all [RUNS]
#
# Prints one line per measurement and medians over RUNS (default 3). Everything binds to
# 127.0.0.1; media ports 48000-49999. Environment: CHORUS (binary, default
# target/release/chorus, built when missing), OUT (work directory).
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
runs=${2:-3}
chorus=${CHORUS:-target/release/chorus}
out=${OUT:-$(mktemp -d /tmp/chorus-sip-bench.XXXXXX)}
mkdir -p "$out"
[ -x "$chorus" ] || cargo build --release --bin chorus
command -v sipp >/dev/null || { echo "sipp missing: apt-get install sip-tester" >&2; exit 1; }
tck=$(getconf CLK_TCK)

server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# CPU seconds (user+system) of a process, or of one of its threads with a second argument.
cpu_s() {
  local f=/proc/$1/stat
  [ -n "${2:-}" ] && f=/proc/$1/task/$2/stat
  awk -v t="$tck" '{ sub(/^.*\) /, ""); printf "%.3f\n", ($12 + $13) / t }' "$f"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
now_s() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# A column of sipp's -trace_stat CSV, last row (cumulative counters) or the maximum.
stat_last() { awk -F';' -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next } NF > 1 { v = $k } END { print v + 0 }' "$1"; }
stat_max() { awk -F';' -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next } NF > 1 && $k + 0 > m { m = $k + 0 } END { print m + 0 }' "$1"; }

# Starts chorus on a free UDP port with extra flags; sets server_pid and sip_port.
start_chorus() {
  local name=$1; shift
  rm -rf "${out:?}/$name"
  "$chorus" serve --sip udp:127.0.0.1:0 --media-ports 48000-49999 --data-dir "$out/$name" \
    --pin-cores false --rtp-timeout-s 86400 "$@" 2>"$out/$name.log" &
  server_pid=$!
  for _ in $(seq 100); do
    sip_port=$(grep -ao 'sip="udp:127.0.0.1:[0-9]*' "$out/$name.log" | grep -o '[0-9]*$' || true)
    [ -n "$sip_port" ] && return
    sleep 0.1
  done
  echo "chorus did not start: $(cat "$out/$name.log")" >&2
  exit 1
}

# Starts sipp's own UAS (the baseline) on a free port; sets server_pid and sip_port.
start_sipp_uas() {
  sip_port=$(awk 'BEGIN { srand(); print 47000 + int(rand() * 900) }')
  sipp -sn uas -i 127.0.0.1 -p "$sip_port" -mp 49950 -t u1 -nostdin -trace_err \
    -error_file "$out/uas-errors.log" >/dev/null 2>&1 &
  server_pid=$!
  sleep 0.5
  kill -0 "$server_pid" || { echo "sipp UAS did not start (port $sip_port)" >&2; exit 1; }
}

stop_server() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=""; }

# One load step: $1 rate for $2 seconds against sip_port. Prints
# "ok|fail elapsed_s calls cpu_ms_per_call control_ms_per_call".
step() {
  local rate=$1 secs=$2 calls=$(($1 * $2))
  local stats="$out/step-$rate.csv" c0 m0 t0 t1 rc=0
  rm -f "$stats"
  c0=$(cpu_s "$server_pid"); m0=$(cpu_s "$server_pid" "$server_pid"); t0=$(now_s)
  sipp "127.0.0.1:$sip_port" -sn uac -i 127.0.0.1 -p 0 -mp 49900 -t u1 -r "$rate" -m "$calls" \
    -l $((rate * 4)) -d 0 -nostdin -timeout $((secs * 3 + 30))s -recv_timeout 10000 \
    -trace_stat -fd 1 -stf "$stats" \
    >/dev/null 2>&1 || rc=$?
  t1=$(now_s)
  local c1 m1 ok failed done
  c1=$(cpu_s "$server_pid"); m1=$(cpu_s "$server_pid" "$server_pid")
  failed=$(stat_last "$stats" 'FailedCall(C)')
  done=$(stat_last "$stats" 'SuccessfulCall(C)')
  ok=ok
  # Failed calls, or sipp could not start calls at the rate (took 10% longer than it should).
  if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$done" -ne "$calls" ] ||
    awk -v a="$t0" -v b="$t1" -v s="$secs" 'BEGIN { exit !(b - a > s * 1.1 + 1) }'; then
    ok=fail
  fi
  awk -v ok="$ok" -v a="$t0" -v b="$t1" -v n="$calls" -v c0="$c0" -v c1="$c1" -v m0="$m0" -v m1="$m1" \
    'BEGIN { printf "%s %.1f %d %.3f %.3f\n", ok, b - a, n, (c1 - c0) * 1000 / n, (m1 - m0) * 1000 / n }'
}

# Steps the rate up against the running server until a step fails; prints per step and
# "max RATE CPU_MS_PER_CALL CONTROL_MS" for the fastest clean step.
ramp() {
  local label=$1 best=0 best_cpu=- best_ctl=- r line
  for r in 200 400 800 1200 1400 1600 1800 2000 2200 2400 2800 3200; do
    line=$(step "$r" 10)
    echo "  $label rate $r/s: $line" >&2
    set -- $line
    [ "$1" = ok ] || break
    best=$r; best_cpu=$4; best_ctl=$5
  done
  echo "max $best $best_cpu $best_ctl"
}

bench_rate() {
  echo "== call setup rate: sipp -sn uac, INVITE->200->ACK->BYE, no media, 10 s per step"
  local i res
  : >"$out/rate-chorus"; : >"$out/rate-uas"
  for i in $(seq "$runs"); do
    # chorus: one control thread (tokio current-thread) and one media core for the legs.
    start_chorus "rate$i" --cores 1 --max-calls 100000 --calls-per-s 100000 \
      --calls-per-s-per-source 100000
    res=$(ramp chorus); stop_server
    echo "run $i chorus: $res"; echo "$res" >>"$out/rate-chorus"
    start_sipp_uas
    res=$(ramp sipp-uas); stop_server
    echo "run $i sipp-uas: $res"; echo "$res" >>"$out/rate-uas"
  done
  local cr cc cm ur uc
  cr=$(awk '{ print $2 }' "$out/rate-chorus" | median)
  cc=$(awk '{ print $3 }' "$out/rate-chorus" | median)
  cm=$(awk '{ print $4 }' "$out/rate-chorus" | median)
  ur=$(awk '{ print $2 }' "$out/rate-uas" | median)
  uc=$(awk '{ print $3 }' "$out/rate-uas" | median)
  echo "median max clean rate: chorus $cr calls/s, sipp UAS $ur calls/s"
  echo "median CPU per call at that rate: chorus ${cc} ms (control thread ${cm} ms), sipp UAS ${uc} ms"
  awk -v a="$cc" -v b="$uc" -v r="$cr" -v u="$ur" \
    'BEGIN { if (b > 0 && u > 0) printf "ratios chorus/sipp-uas: rate %.2f, CPU per call %.2f\n", r / u, a / b }'
}

# Holds 10,000 calls at once for a minute; prints RSS and CPU figures.
hold_once() {
  local label=$1 calls=10000 rate=500 ramp_s=20 held_s=60
  local stats="$out/hold-$label.csv" rss0 rss1 rss2 c0 c1 rc=0 failed done peak
  rss0=$(rss_kib "$server_pid")
  # Every call pauses ramp+held seconds after its ACK, so all are up together for held_s.
  sipp "127.0.0.1:$sip_port" -sn uac -i 127.0.0.1 -p 0 -mp 49910 -t u1 -r "$rate" -m "$calls" \
    -l "$calls" -d $(((ramp_s + held_s) * 1000)) -nostdin -timeout 300s -trace_stat -fd 1 \
    -stf "$stats" >/dev/null 2>&1 &
  local sipp_pid=$!
  sleep $((ramp_s + 3))
  rss1=$(rss_kib "$server_pid"); c0=$(cpu_s "$server_pid")
  sleep $((held_s - 6))
  c1=$(cpu_s "$server_pid"); rss2=$(rss_kib "$server_pid")
  wait "$sipp_pid" || rc=$?
  sleep 2
  local rss3
  rss3=$(rss_kib "$server_pid")
  failed=$(stat_last "$stats" 'FailedCall(C)')
  done=$(stat_last "$stats" 'SuccessfulCall(C)')
  peak=$(stat_max "$stats" 'CurrentCall')
  awk -v l="$label" -v rc="$rc" -v f="$failed" -v d="$done" -v p="$peak" -v r0="$rss0" -v r1="$rss1" \
    -v r2="$rss2" -v r3="$rss3" -v c0="$c0" -v c1="$c1" -v s=$((held_s - 6)) -v n="$calls" \
    'BEGIN { printf "%s sipp_rc=%d ok=%d failed=%d peak_calls=%d rss_kib before=%d held=%d end_of_hold=%d after=%d per_call_kib=%.2f hold_cpu_pct=%.2f\n",
      l, rc, d, f, p, r0, r1, r2, r3, (r2 - r0) / n, (c1 - c0) * 100 / s }'
}

bench_hold() {
  echo "== 10,000 concurrent calls held for a minute: sipp -sn uac -t u1 -l 10000 -r 500"
  local i
  : >"$out/hold-chorus"; : >"$out/hold-uas"
  for i in $(seq "$runs"); do
    start_chorus "hold$i" --cores 2 --max-calls 10000 --calls-per-s 1000 --calls-per-s-per-source 1000
    hold_once chorus | tee -a "$out/hold-chorus"; stop_server
    start_sipp_uas
    hold_once sipp-uas | tee -a "$out/hold-uas"; stop_server
  done
  local f
  for f in chorus uas; do
    echo "median $f: per_call_kib $(grep -o 'per_call_kib=[0-9.]*' "$out/hold-$f" | cut -d= -f2 | median)" \
      "hold_cpu_pct $(grep -o 'hold_cpu_pct=[0-9.]*' "$out/hold-$f" | cut -d= -f2 | median)"
  done
}

case $what in
  rate) bench_rate ;;
  hold) bench_hold ;;
  all) bench_rate; bench_hold ;;
  *) echo "usage: $0 rate|hold|all [RUNS]" >&2; exit 2 ;;
esac
echo "work files: $out"
