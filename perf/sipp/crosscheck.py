#!/usr/bin/env python3
"""The helpers of perf/sipp-crosscheck.sh (see there): the callers' audio file and sipp's
injection file, a sampler of the server's CPU and of UDP socket drops, and the analysis of
each run (tshark's RTP streams, tcpdump's drops, the server's log, chorus-load's JSON) into
the side-by-side table.

    crosscheck.py audio FILE                      the looped mu-law file sipp streams
    crosscheck.py inject FILE CALLS SIZE BASE     sipp's -inf file: conference ID; SSRC
    crosscheck.py snmp                            Udp RcvbufErrors from /proc/net/snmp
    crosscheck.py monitor PID FILE                sample once a second until SIGTERM
    crosscheck.py analyse DIR KIND CALLS HOLD_S   one run's summary.json; exit 1 on a fault
    crosscheck.py report OUT                      the two runs side by side
    crosscheck.py selftest                        checks of the encoder and the parsers
"""

import json
import math
import os
import re
import signal
import statistics
import sys
import time
from datetime import datetime, timezone

# sipp 3.6.1's rtp_stream numbers its streams' SSRCs from this value, one per call in the
# order the calls start (rtpstream.cpp, global_ssrc_id). The scenario announces each call's
# SSRC with a=ssrc, so the server can tell the calls apart: they all send from one port.
SIPP_SSRC_BASE = 0xCA110000
PACKETS_PER_S = 50.0

SERVER_PORTS = (58000, 58999)
SIPP_PORTS = (59000, 61999)
LOAD_PORTS = (62000, 62999)


def ulaw(sample):
    """G.711 mu-law code of a 16-bit linear sample (ITU-T G.711, with the 0x84 bias)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = 7
    while exponent > 0 and not magnitude & (0x4000 >> (7 - exponent)):
        exponent -= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_decode(code):
    """The 16-bit linear value of a G.711 mu-law code (the decoder, for the self-test)."""
    code = ~code & 0xFF
    magnitude = ((((code & 0x0F) << 3) + 0x84) << ((code >> 4) & 0x07)) - 0x84
    return -magnitude if code & 0x80 else magnitude


def audio_samples():
    """Two seconds at 8 kHz: a second of a voiced, syllable-shaped signal (a 180 Hz glottal
    tone gliding to 220 Hz with two formant-like partials, four syllables, about -20 dBov),
    then a second of silence, as a talker in a conversation."""
    out = []
    phase = 0.0
    for n in range(16_000):
        if n >= 8_000:
            out.append(0)
            continue
        t = n / 8_000
        f0 = 180.0 + 40.0 * t
        phase += 2 * math.pi * f0 / 8_000
        syllable = math.sin(math.pi * ((t * 4) % 1.0)) ** 2
        v = math.sin(phase) + 0.5 * math.sin(3 * phase) + 0.3 * math.sin(5 * phase)
        out.append(int(2_000 * syllable * v))
    return out


def write_audio(path):
    with open(path, "wb") as f:
        f.write(bytes(ulaw(s) for s in audio_samples()))


def write_injection(path, calls, size, base):
    """One line per call, in call order: its conference ID (calls in conferences of `size`
    from `base`) and the SSRC sipp will stream it with."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(calls):
            f.write(f"{base + i // size};{SIPP_SSRC_BASE + i};\n")


def rcvbuf_errors():
    """Udp RcvbufErrors (datagrams dropped for a full receive buffer), all sockets."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    header, values = rows[0], rows[1]
    return int(values[header.index("RcvbufErrors")])


def udp_sockets():
    """Local port, inode and drop count of every IPv4 UDP socket."""
    socks = {}
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            fields = line.split()
            port = int(fields[1].split(":")[1], 16)
            socks[fields[9]] = (port, int(fields[12]))
    return socks


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def monitor(pid, path):
    """A JSON line a second: wall time, the server's CPU ticks, every UDP socket's drops."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with open(path, "w") as f:
        while not stop:
            try:
                sample = {"t": time.time(), "cpu": cpu_ticks(pid), "udp": udp_sockets()}
            except OSError:
                break
            f.write(json.dumps(sample) + "\n")
            f.flush()
            time.sleep(1.0)


STREAM = re.compile(
    r"^\s*(?P<start>[\d.]+)\s+(?P<end>[\d.]+)\s+(?P<src>\S+)\s+(?P<sport>\d+)\s+(?P<dst>\S+)\s+"
    r"(?P<dport>\d+)\s+(?P<ssrc>0x[0-9A-Fa-f]+)\s+(?P<payload>.*?)\s+(?P<pkts>\d+)\s+"
    r"(?P<lost>-?\d+)\s+\((?P<lost_pct>-?[\d.]+)%\)\s+(?P<min_delta>[\d.]+)\s+"
    r"(?P<mean_delta>[\d.]+)\s+(?P<max_delta>[\d.]+)\s+(?P<min_jitter>[\d.]+)\s+"
    r"(?P<mean_jitter>[\d.]+)\s+(?P<max_jitter>[\d.]+)\s*(?P<problem>X?)\s*$"
)


def parse_streams(text):
    """The rows of `tshark -q -z rtp,streams` (Wireshark 3.x/4.x layout)."""
    streams = []
    for line in text.splitlines():
        m = STREAM.match(line)
        if not m:
            continue
        s = m.groupdict()
        for k in ("sport", "dport", "pkts", "lost"):
            s[k] = int(s[k])
        for k in ("start", "end", "max_delta", "mean_jitter", "max_jitter"):
            s[k] = float(s[k])
        s["ssrc"] = int(s["ssrc"], 16)
        streams.append(s)
    return streams


def within(port, ports):
    return ports[0] <= port <= ports[1]


def summarize(streams, src_ports, dst_ports):
    """Sums over the streams from `src_ports` to `dst_ports`: packets, lost (tshark: expected
    from the sequence numbers minus received), loss in % of expected, the largest gap
    between two packets, jitter (the median over streams of each stream's mean RFC 3550
    jitter, and the largest value any stream reached), packets per second of a stream."""
    mine = [s for s in streams if within(s["sport"], src_ports) and within(s["dport"], dst_ports)]
    pkts = sum(s["pkts"] for s in mine)
    lost = sum(max(s["lost"], 0) for s in mine)
    rates = [s["pkts"] / (s["end"] - s["start"]) for s in mine if s["end"] - s["start"] >= 1.0]
    # A sender that stalls and then goes on numbering where it stopped (a late tick is not
    # replayed) loses no sequence numbers: what is missing shows only against the clock.
    short = sum(
        max(0, round((s["end"] - s["start"]) * PACKETS_PER_S) + 1 - s["pkts"] - max(s["lost"], 0))
        for s in mine
    )
    return {
        "streams": len(mine),
        "packets": pkts,
        "lost": lost,
        "loss_pct": 100.0 * lost / (pkts + lost) if pkts + lost else 0.0,
        "max_delta_ms": max((s["max_delta"] for s in mine), default=None),
        "jitter_ms_p50": statistics.median(s["mean_jitter"] for s in mine) if mine else None,
        "jitter_ms_max": max((s["max_jitter"] for s in mine), default=None),
        "pps_p50": statistics.median(rates) if rates else None,
        "short": short,
        "short_pct": 100.0 * short / (pkts + lost + short) if pkts + lost + short else 0.0,
        "ssrcs": sorted(s["ssrc"] for s in mine),
    }


def out_of_call_order(streams, slack_s=0.25):
    """Streams whose SSRC is below that of a stream that started more than `slack_s` earlier.
    sipp numbers SSRCs in call order and calls start in order, so a stream that starts
    clearly later must carry a higher SSRC; otherwise the a=ssrc each call announced (from
    the injection file) names another call's stream."""
    ordered = sorted(streams, key=lambda s: s["start"])
    bad, earlier_max, j = 0, -1, 0
    for s in ordered:
        while j < len(ordered) and ordered[j]["start"] < s["start"] - slack_s:
            earlier_max = max(earlier_max, ordered[j]["ssrc"])
            j += 1
        bad += s["ssrc"] < earlier_max
    return bad


def tcpdump_counts(text):
    """(captured, dropped by the kernel) from tcpdump's closing lines."""
    def count(what):
        m = re.search(rf"(\d+) packets? {what}", text)
        return int(m.group(1)) if m else None
    return count("captured"), count("dropped by kernel")


def log_time(line):
    """The UTC timestamp that starts a `chorus serve` log line, as Unix seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z", line)
    if not m:
        return None
    stamp = m.group(1)
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in stamp else "%Y-%m-%dT%H:%M:%S"
    return datetime.strptime(stamp[:26], fmt).replace(tzinfo=timezone.utc).timestamp()


LEG_REMOVED = re.compile(r"media leg removed leg=\S+ rtp_in=(\d+) rtp_out=(\d+) lost=(-?\d+)")


def server_log(path):
    """From the server's log: (time, +1 / -1) as callers join and leave conferences, and each
    leg's final counters (RTP received from its caller, sent to it, lost, RFC 3550)."""
    events, legs = [], []
    with open(path, errors="replace") as f:
        for line in f:
            t = log_time(line)
            if " joined conference " in line and t is not None:
                events.append((t, 1))
            elif " left conference " in line and t is not None:
                events.append((t, -1))
            m = LEG_REMOVED.search(line)
            if m:
                legs.append(tuple(int(g) for g in m.groups()))
    return events, legs


def calls_up_at(events, t):
    return sum(d for (te, d) in events if te <= t)


def monitor_figures(path, events):
    """Server CPU, % of a core: the median over the one-second intervals with every caller in
    its conference at both ends (as chorus-load takes its own figure); the drops each socket
    counted, summed per port range (the largest count seen per socket: a socket's count goes
    when it closes)."""
    samples = []
    with open(path) as f:
        for line in f:
            try:
                samples.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    tck = os.sysconf("SC_CLK_TCK")
    ups = [calls_up_at(events, s["t"]) for s in samples]
    peak = max(ups, default=0)
    cpu = [
        100.0 * (b["cpu"] - a["cpu"]) / tck / (b["t"] - a["t"])
        for a, b, ua, ub in zip(samples, samples[1:], ups, ups[1:])
        if peak > 0 and ua == peak and ub == peak and b["t"] > a["t"]
    ]
    drops = {}
    for s in samples:
        for inode, (port, n) in s["udp"].items():
            drops[inode] = (port, max(n, drops.get(inode, (port, 0))[1]))
    by_range = {}
    for name, ports in (("server", SERVER_PORTS), ("sipp", SIPP_PORTS), ("load", LOAD_PORTS)):
        by_range[name] = sum(n for (p, n) in drops.values() if within(p, ports))
    return {
        "server_cpu_pct": statistics.median(cpu) if cpu else None,
        "cpu_samples": len(cpu),
        "peak_calls_up": peak,
        "socket_drops": by_range,
    }


def analyse(run_dir, kind, calls, hold_s):
    """Summarizes one run into DIR/summary.json; returns the faults that make the figures
    wrong (each one line), empty when the run is sound."""
    faults = []
    client_ports = SIPP_PORTS if kind == "sipp" else LOAD_PORTS

    def text(name):
        try:
            with open(os.path.join(run_dir, name), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    streams = parse_streams(text("streams.txt"))
    down = summarize(streams, SERVER_PORTS, client_ports)
    up = summarize(streams, client_ports, SERVER_PORTS)
    captured, dropped = tcpdump_counts(text("tcpdump.err"))
    events, legs = server_log(os.path.join(run_dir, "server.log"))
    mon = monitor_figures(os.path.join(run_dir, "monitor.jsonl"), events)
    before, after = text("snmp.before").strip(), text("snmp.after").strip()
    rcvbuf = int(after) - int(before) if before and after else None
    legs_in = sum(leg[0] for leg in legs)
    legs_lost = sum(max(leg[2], 0) for leg in legs)
    established = text("established").strip()
    summary = {
        "kind": kind,
        "calls": calls,
        "established": int(established) if established else None,
        "hold_s": hold_s,
        "down": down,
        "up": up,
        "captured": captured,
        "capture_dropped": dropped,
        "rcvbuf_errors": rcvbuf,
        "server_legs": len(legs),
        "server_rtp_in": legs_in,
        "server_lost": legs_lost,
        "server_loss_pct": 100.0 * legs_lost / (legs_in + legs_lost) if legs_in + legs_lost else 0.0,
        **mon,
    }
    if kind == "load":
        try:
            with open(os.path.join(run_dir, "report.json")) as f:
                summary["load"] = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError) as e:
            faults.append(f"chorus-load wrote no report ({e})")

    if not captured or not streams:
        faults.append(
            f"the capture is empty ({captured or 0} packets, {len(streams)} RTP streams): "
            "tcpdump saw no media between the server and the callers"
        )
    if dropped:
        faults.append(f"tcpdump dropped {dropped} packets: the capture undercounts, loss is overstated")
    if streams and down["streams"] < calls:
        faults.append(f"only {down['streams']} server-to-caller RTP streams captured for {calls} calls")
    if mon["peak_calls_up"] < calls:
        faults.append(
            f"at most {mon['peak_calls_up']} of {calls} callers were in their conferences at once "
            "(the server's log): calls did not reach their conference, or not all were up together"
        )
    if kind == "sipp" and streams:
        expected = [SIPP_SSRC_BASE + i for i in range(calls)]
        if up["ssrcs"] != expected:
            faults.append(
                f"sipp streamed {up['streams']} SSRCs that are not the {calls} its SDP announced "
                f"(0x{SIPP_SSRC_BASE:08X} + call): the server could not tell the calls apart"
            )
        disordered = out_of_call_order(
            [st for st in streams if within(st["sport"], SIPP_PORTS) and within(st["dport"], SERVER_PORTS)]
        )
        if disordered:
            faults.append(
                f"{disordered} of sipp's streams started well after one with a higher SSRC: "
                "sipp did not number its streams in call order, so the a=ssrc lines are wrong"
            )
        if len(legs) < calls:
            faults.append(f"the server logged {len(legs)} media legs for {calls} calls")
        # Each leg must have received about its own caller's stream (not none, not two).
        starved = [leg for leg in legs if leg[0] < 0.8 * PACKETS_PER_S * hold_s]
        doubled = [leg for leg in legs if leg[0] > 1.2 * PACKETS_PER_S * (hold_s + 1)]
        if starved or doubled:
            faults.append(
                f"{len(starved)} server legs received under 80% and {len(doubled)} over 120% "
                f"of a caller's {PACKETS_PER_S:.0f} packets/s for {hold_s} s: streams misrouted"
            )
    # Far from 50/s is a packetization the figures do not expect (not 20 ms PCMU); a little
    # under it is the server falling behind, which the report shows as gaps in time.
    pps = down["pps_p50"]
    if pps is not None and not 0.5 * PACKETS_PER_S <= pps <= 1.5 * PACKETS_PER_S:
        faults.append(f"server-to-caller streams run at {pps:.1f} packets/s, not {PACKETS_PER_S:.0f}")
    summary["faults"] = faults
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return faults


def fmt(v, digits=0, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{unit}"
    return f"{v:,}{unit}"


def report(out):
    """The two runs side by side: what sipp's callers were sent (tshark), what chorus-load's
    callers counted (chorus-load), and what tshark saw of the chorus-load run."""
    with open(os.path.join(out, "sipp", "summary.json")) as f:
        s = json.load(f)
    with open(os.path.join(out, "load", "summary.json")) as f:
        c = json.load(f)
    r = c.get("load", {})
    cols = ["sipp + tshark", "chorus-load", "chorus-load run: tshark"]
    rows = []

    def row(label, a, b, t):
        rows.append((label, a, b, t))

    def loss(d):
        return f"{fmt(d['lost'])} ({d['loss_pct']:.3f}%)"

    def jitter(d):
        return f"{fmt(d['jitter_ms_p50'], 2)} / {fmt(d['jitter_ms_max'], 2)}"

    rtp = r.get("rtp", {})
    jit = r.get("jitter_ms", {})
    row("calls placed / established", f"{s['calls']} / {fmt(s['established'])}",
        f"{r.get('attempted', '-')} / {r.get('established', '-')}", "")
    row("server -> callers", "", "", "")
    row("  RTP streams", fmt(s["down"]["streams"]), fmt(r.get("established")), fmt(c["down"]["streams"]))
    row("  packets", fmt(s["down"]["packets"]), fmt(rtp.get("received")), fmt(c["down"]["packets"]))
    row("  lost (% of expected)", loss(s["down"]),
        f"{fmt(rtp.get('lost'))} ({rtp.get('loss_pct', 0.0):.3f}%)" if rtp else "-", loss(c["down"]))
    row("  packets/s per stream, p50", fmt(s["down"]["pps_p50"], 1), "", fmt(c["down"]["pps_p50"], 1))
    row("  short of 50/s in time (%)", f"{fmt(s['down']['short'])} ({s['down']['short_pct']:.3f}%)", "",
        f"{fmt(c['down']['short'])} ({c['down']['short_pct']:.3f}%)")
    row("  max gap between packets, ms", fmt(s["down"]["max_delta_ms"], 1), "", fmt(c["down"]["max_delta_ms"], 1))
    row("  jitter p50 / max, ms", jitter(s["down"]),
        f"{fmt(jit.get('p50'), 2)} / {fmt(jit.get('max'), 2)}" if jit else "-", jitter(c["down"]))
    row("callers -> server", "", "", "")
    row("  packets (tshark)", fmt(s["up"]["packets"]), "", fmt(c["up"]["packets"]))
    row("  lost (tshark)", loss(s["up"]), "", loss(c["up"]))
    row("  received / lost (server's legs)",
        f"{fmt(s['server_rtp_in'])} / {fmt(s['server_lost'])} ({s['server_loss_pct']:.3f}%)", "",
        f"{fmt(c['server_rtp_in'])} / {fmt(c['server_lost'])} ({c['server_loss_pct']:.3f}%)")
    row("capture: packets / dropped", f"{fmt(s['captured'])} / {fmt(s['capture_dropped'])}", "",
        f"{fmt(c['captured'])} / {fmt(c['capture_dropped'])}")
    row("receive drops: Udp RcvbufErrors", fmt(s["rcvbuf_errors"]), "", fmt(c["rcvbuf_errors"]))
    row("  at the server's sockets", fmt(s["socket_drops"]["server"]), "", fmt(c["socket_drops"]["server"]))
    row("  at the callers' sockets", fmt(s["socket_drops"]["sipp"]), "", fmt(c["socket_drops"]["load"]))
    row("server CPU %, all calls up (p50)", fmt(s["server_cpu_pct"], 1),
        fmt(r.get("server_cpu_pct"), 1), fmt(c["server_cpu_pct"], 1))
    row("generator CPU %", "", fmt(r.get("generator_cpu_pct"), 1)
        + ("!" if r.get("generator_saturated") else ""), "")

    w0 = max(len(x[0]) for x in rows)
    widths = [max(len(cols[i]), *(len(str(x[i + 1])) for x in rows)) for i in range(3)]
    print(f"{'':<{w0}}  " + "  ".join(f"{cols[i]:>{widths[i]}}" for i in range(3)))
    for label, *vals in rows:
        print(f"{label:<{w0}}  " + "  ".join(f"{str(vals[i]):>{widths[i]}}" for i in range(3)))


def selftest():
    # Every G.711 code's decoded value encodes back to that code (-0, 0x7F, gives +0, 0xFF);
    # full scale clips to the end codes.
    for code in range(256):
        assert ulaw(ulaw_decode(code)) == (0xFF if code == 0x7F else code), hex(code)
    assert ulaw(32767) == 0x80 and ulaw(-32768) == 0x00
    samples = audio_samples()
    assert len(samples) == 16_000 and all(v == 0 for v in samples[8_000:])
    rms = math.sqrt(sum(v * v for v in samples[:8_000]) / 8_000)
    assert 500 < rms < 5_000, rms
    line = ("     0.236205      3.197142       127.0.0.1 59000       127.0.0.1 58000 0xCA110002"
            "            g711U   149     0 (0.0%)           0.008          20.006          36.362"
            "           0.011           0.908           2.845 ")
    lost = ("     1.0      31.0       127.0.0.1 58000       127.0.0.1 59000 0x08D12DFD"
            "            g711U   1490     -2 (-0.1%)           0.008          20.006          36.362"
            "           0.011           0.908           2.845 X")
    (a, b) = parse_streams("\n".join(["header", line, lost, "====="]))
    assert (a["sport"], a["ssrc"], a["pkts"], a["lost"]) == (59000, 0xCA110002, 149, 0)
    assert (b["lost"], b["problem"], b["max_jitter"]) == (-2, "X", 2.845)
    d = summarize([a, b], SERVER_PORTS, SIPP_PORTS)
    assert (d["streams"], d["packets"], d["lost"], d["pps_p50"]) == (1, 1490, 0, 49.666666666666664)
    assert d["short"] == 30 * 50 + 1 - 1490
    streams = [{"start": t, "ssrc": x} for t, x in ((0.0, 1), (0.02, 3), (0.03, 2), (0.5, 4))]
    assert out_of_call_order(streams) == 0
    assert out_of_call_order(streams + [{"start": 0.6, "ssrc": 0}]) == 1
    assert tcpdump_counts("911 packets captured\n1822 packets received by filter\n"
                          "3 packets dropped by kernel\n") == (911, 3)
    assert log_time("2026-12-02T13:55:08.295898Z  INFO x") == 1796219708.295898
    m = LEG_REMOVED.search("media leg removed leg=leg17 rtp_in=200 rtp_out=201 lost=-1 dtmf_digits=0")
    assert m and m.groups() == ("200", "201", "-1")
    print("selftest ok")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "audio" and len(argv) == 3:
        write_audio(argv[2])
    elif cmd == "inject" and len(argv) == 6:
        write_injection(argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
    elif cmd == "snmp" and len(argv) == 2:
        print(rcvbuf_errors())
    elif cmd == "monitor" and len(argv) == 4:
        monitor(int(argv[2]), argv[3])
    elif cmd == "analyse" and len(argv) == 6:
        faults = analyse(argv[2], argv[3], int(argv[4]), float(argv[5]))
        for fault in faults:
            print(f"{argv[3]} run: {fault}", file=sys.stderr)
        return 1 if faults else 0
    elif cmd == "report" and len(argv) == 3:
        report(argv[2])
    elif cmd == "selftest" and len(argv) == 2:
        selftest()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
