"""The pipeline benchmark (run by tests/bench.sh, which starts the servers and builds the
release binary): measures in one run, against real mosquitto and InfluxDB on this machine,

  a. the broker's own QoS-1 ceiling: mosquitto_sub counting the N messages simulate publishes;
  b. riverwatch run storing the same N readings (200 stations): time until all are queryable;
  c. daemon CPU seconds per reading (from /proc) and peak RSS, and peak RSS with 1,000
     stations whose rule windows are full (7 days of 4-hourly analysers, 24 h of 5-minute
     probes);
  d. reading -> alert email latency, p50 and p99 over 100 alerts with persistence 1;
  e. the spool's drain rate after an InfluxDB outage;

then prints a table and writes JSON (BENCH_JSON, default target/bench/pipeline.json).
Environment: the RIVERWATCH_TEST_* variables of tests/servers.sh; BENCH_N (default 100000);
BENCH_ONLY_THROUGHPUT=1 or BENCH_ONLY_MEMORY=1 for one part; BENCH_PERF=1 to record a perf
profile of (b) in target/bench/perf.data, with call graphs from frame pointers, so point
BENCH_BIN at a build made with RUSTFLAGS="-C force-frame-pointers=yes" (BENCH_PERF_CALLGRAPH
chooses another unwinder); BENCH_PROBE_HOURS for the memory run's probe window.
"""
import json
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

RW = os.path.abspath(os.environ.get("BENCH_BIN", "target/release/riverwatch"))
MQTT = int(os.environ["RIVERWATCH_TEST_MQTT_PORT"])
SMTP = int(os.environ["RIVERWATCH_TEST_SMTP_PORT"])
MAILDIR = os.environ["RIVERWATCH_TEST_MAILDIR"]
N = int(os.environ.get("BENCH_N", "100000"))
OUT = os.environ.get("BENCH_JSON", "target/bench/pipeline.json")
TICK = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="riverwatch-bench.")


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(what, check, limit=120.0, every=0.05):
    deadline = time.monotonic() + limit
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


class Influx:
    """A private InfluxDB 1.6.7, so the outage of (e) stops only this one."""

    def __init__(self):
        self.port = free_port()
        d = os.path.join(WORK, "influx")
        os.makedirs(d, exist_ok=True)
        self.conf = os.path.join(d, "influxdb.conf")
        with open(self.conf, "w") as f:
            f.write(
                f'reporting-disabled = true\nbind-address = "127.0.0.1:{free_port()}"\n'
                f'[meta]\n  dir = "{d}/meta"\n[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n'
                f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
                f"[monitor]\n  store-enabled = false\n"
            )
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["influxd", "-config", self.conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait("InfluxDB", self.ping)

    def ping(self):
        try:
            return urllib.request.urlopen(f"{self.url}/ping", timeout=1).status == 204
        except OSError:
            return False

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()

    def cpu_seconds(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def query(self, db, q):
        data = urllib.parse.urlencode({"db": db, "q": q}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=30) as r:
            return json.load(r)

    def count(self, db, field="ph"):
        try:
            v = self.query(db, f'SELECT COUNT("{field}") FROM "water_quality"')
            return v["results"][0]["series"][0]["values"][0][1]
        except (KeyError, IndexError, OSError):
            return 0


def config(name, stations, db, influx_url, extra=""):
    path = os.path.join(WORK, f"{name}.toml")
    body = [
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{MQTT}"\nclient_id = "rw-bench-{name}"\n',
        f'[influxdb]\nurl = "{influx_url}"\napi = "v1"\ndatabase = "{db}"\n',
        f'[spool]\ndir = "{WORK}/{name}-spool"\n',
        '[http]\nlisten = "127.0.0.1:0"\n',
        f'[smtp]\nurl = "smtp://127.0.0.1:{SMTP}"\nfrom = "riverwatch bench <rw@example.org>"\n',
        '[[bureau]]\nid = "qingyuan"\nname = "清远市生态环境局"\nemail = ["bench@example.org"]\n',
        '[[river]]\nid = "bei"\nname = "北江"\n',
        extra,
    ]
    for i in range(stations):
        body.append(f'[[station]]\nid = "s{i:04}"\nname = "station {i}"\nriver = "bei"\ncity = "qingyuan"\ntarget_class = 3\n')
    with open(path, "w") as f:
        f.write("\n".join(body))
    return path


class Daemon:
    def __init__(self, cfg, name):
        self.log = os.path.join(WORK, f"{name}.log")
        env = dict(os.environ, RIVERWATCH_LOG="info", NO_COLOR="1")
        self.proc = subprocess.Popen([RW, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=open(self.log, "w"), env=env)
        self.addr = wait("HTTP address", self.http_addr, limit=30)
        wait("subscribed", lambda: "subscribed" in open(self.log).read())

    def http_addr(self):
        if self.proc.poll() is not None:
            raise SystemExit(f"riverwatch exited:\n{open(self.log).read()}")
        m = re.search(r"HTTP listening.*?addr=(\S+)", open(self.log).read())
        return m.group(1) if m else None

    def metric(self, name):
        with urllib.request.urlopen(f"http://{self.addr}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.split("{")[0].split(" ")[0] == name)

    def cpu_seconds(self, which=(11, 12)):
        """User plus system CPU seconds (utime and stime of /proc/PID/stat); `which=(11,)`
        for user time only."""
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return sum(int(fields[i]) for i in which) / TICK

    def peak_rss_mib(self, field="VmHWM"):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def simulate(cfg, count, *args):
    out = subprocess.run([RW, "simulate", "--config", cfg, "--broker", f"mqtt://127.0.0.1:{MQTT}", "--count", str(count), *args],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def ceiling(cfg):
    """(a) mosquitto_sub receiving the N QoS-1 messages simulate publishes."""
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(MQTT), "-q", "1", "-i", "bench-ceiling",
                            "-t", "wq/#", "-C", str(N)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)  # let it subscribe; the bench is not a test, and nothing signals this
    t0 = time.monotonic()
    sim = simulate(cfg, N, "--client-id", "bench-publisher-a")
    sub.wait(timeout=600)
    took = time.monotonic() - t0
    return {"messages": N, "seconds": round(took, 3), "rate": round(N / took), "publisher_rate": sim["rate"]}


def throughput(cfg, influx, db):
    """(b) and (c): riverwatch run storing the same N readings."""
    d = Daemon(cfg, "throughput")
    # BENCH_PERF=1: profile the daemon during this phase (perf record, for `perf report`).
    perf = None
    if os.environ.get("BENCH_PERF"):
        os.makedirs("target/bench", exist_ok=True)
        perf = subprocess.Popen(["perf", "record", "-F", "999", "--call-graph", os.environ.get("BENCH_PERF_CALLGRAPH", "fp"), "-p", str(d.proc.pid), "-o", "target/bench/perf.data"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    cpu0, user0, influx0 = d.cpu_seconds(), d.cpu_seconds((11,)), influx.cpu_seconds()
    t0 = time.monotonic()
    sim = simulate(cfg, N, "--client-id", "bench-publisher-b", "--newest-minutes-ago", "5")
    # The daemon counts a reading stored when InfluxDB has answered 204 to its write, after
    # which InfluxDB 1.x answers queries with it. Polling that counter costs the run nothing;
    # a COUNT over InfluxDB every few milliseconds would take CPU from the pipeline it
    # measures. The count is checked in InfluxDB once the counter is there.
    wait("all readings stored", lambda: d.metric("riverwatch_readings_stored_total") >= N, limit=600, every=0.005)
    took = time.monotonic() - t0
    wait("all readings queryable", lambda: influx.count(db) >= N, limit=60, every=0.05)
    cpu, user = d.cpu_seconds() - cpu0, d.cpu_seconds((11,)) - user0
    writes = d.metric("riverwatch_write_seconds_count")
    # InfluxDB shares the two cores: its CPU per reading shows how much of the machine the
    # database takes beside the daemon.
    influx_cpu = influx.cpu_seconds() - influx0
    rss = d.peak_rss_mib()
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    return d, {"readings": N, "seconds": round(took, 3), "rate": round(N / took), "publisher_rate": sim["rate"],
               "cpu_us_per_reading": round(cpu * 1e6 / N, 2), "user_us_per_reading": round(user * 1e6 / N, 2),
               "database_writes": int(writes), "influxdb_cpu_us_per_reading": round(influx_cpu * 1e6 / N, 2),
               "peak_rss_mib": round(rss, 1)}


def spool_drain(d, cfg, influx, db):
    """(e): InfluxDB down while 20,000 readings arrive (spooled), then back."""
    n = 20000
    influx.stop()
    acked0 = d.metric("riverwatch_messages_acked_total")
    simulate(cfg, n, "--client-id", "bench-publisher-e", "--newest-minutes-ago", "200000")
    wait("spooled and acknowledged", lambda: d.metric("riverwatch_messages_acked_total") >= acked0 + n, limit=300)
    batches = d.metric("riverwatch_spool_batches")
    spool_bytes = d.metric("riverwatch_spool_bytes")
    stored0 = d.metric("riverwatch_readings_stored_total")
    influx.start()
    t0 = time.monotonic()
    # The drainer retries a failed write after a backoff that grows while the database is
    # down, so it resumes up to one backoff after the database is back: timed apart from the
    # drain itself, which runs from its first stored batch to its last.
    first = wait("the drain to start", lambda: d.metric("riverwatch_readings_stored_total") - stored0 or None, limit=120, every=0.005)
    t1 = time.monotonic()
    wait("spool drained", lambda: d.metric("riverwatch_readings_stored_total") >= stored0 + n, limit=600, every=0.005)
    t2 = time.monotonic()
    wait("the drained readings queryable", lambda: influx.count(db) >= N + n, limit=60, every=0.05)
    rate = (n - first) / max(t2 - t1, 1e-6)
    return {"readings": n, "batches": int(batches), "bytes": int(spool_bytes), "resumed_after_s": round(t1 - t0, 3),
            "seconds": round(t2 - t1, 3), "rate": round(rate)}


def memory(influx):
    """(c) peak RSS with the target's load: 1,000 stations, each holding a 7-day window of its
    4-hourly analysers (CODMn, NH3-N, TP, TN: 42 readings) and 24 h of its five probes at
    5 minutes (temperature, pH, DO, conductivity, turbidity: 288 readings). BENCH_PROBE_HOURS
    changes the 24 h."""
    hours = int(os.environ.get("BENCH_PROBE_HOURS", "24"))
    db = "bench_memory"
    influx.query("", f"CREATE DATABASE {db}")
    cfg = config("memory", 1000, db, influx.url)
    d = Daemon(cfg, "memory")
    log(f"RSS at start: {d.peak_rss_mib('VmRSS'):.1f} MiB")
    base = 400000  # minutes ago of the newest reading: far from the other runs' data
    chem = 42
    simulate(cfg, 1000 * chem, "--client-id", "bench-publisher-c", "--interval", "4h",
             "--params", "codmn,nh3n,tp,tn", "--newest-minutes-ago", str(base))
    wait(f"{1000 * chem} analyser readings stored", lambda: influx.count(db, "codmn") >= 1000 * chem, limit=600, every=0.5)
    log(f"RSS after the analysers' 7 days: {d.peak_rss_mib('VmRSS'):.1f} MiB (peak {d.peak_rss_mib():.1f})")
    # In chunks of 48 readings per station: the test broker queues at most 100,000 messages
    # for a subscriber (max_queued_messages) and drops the rest.
    per = hours * 12
    chunk = 48
    for k in range(0, per, chunk):
        n = min(chunk, per - k)
        newest = base + (per - k - n) * 5
        simulate(cfg, 1000 * n, "--client-id", "bench-publisher-c", "--interval", "5m",
                 "--params", "temp,ph,do,cond,turb", "--newest-minutes-ago", str(newest))
        done = 1000 * (k + n)
        wait(f"{done} probe readings stored", lambda: influx.count(db) >= done, limit=600, every=0.5)
        log(f"RSS after {k + n} probe readings per station: {d.peak_rss_mib('VmRSS'):.1f} MiB (peak {d.peak_rss_mib():.1f})")
    rss = d.peak_rss_mib()
    d.stop()
    return {"stations": 1000, "analyser_readings_per_station": chem, "probe_readings_per_station": per,
            "readings": 1000 * (chem + per), "peak_rss_mib": round(rss, 1)}


# --- a minimal MQTT 3.1.1 publisher, so (d) times the pipeline, not process start-up --------
def _str(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def _packet(kind, body):
    n, rem = len(body), b""
    while True:
        byte, n = n % 128, n // 128
        rem += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([kind]) + rem + body


class Publisher:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", MQTT))
        self.s.sendall(_packet(0x10, _str("MQTT") + bytes([4, 2]) + struct.pack("!H", 60) + _str("bench-latency")))
        self.s.recv(4)  # CONNACK
        self.pid = 0

    def publish(self, topic, payload):
        self.pid += 1
        self.s.sendall(_packet(0x32, _str(topic) + struct.pack("!H", self.pid) + payload.encode()))
        self.s.recv(4)  # PUBACK


def latency(influx):
    """(d) publish → alert email in the Maildir, 100 alerts with persistence 1."""
    db = "bench_latency"
    influx.query("", f"CREATE DATABASE {db}")
    extra = ("[alerts]\nfire_after = 1\nwindow = 1\nclear_after = 1\n"
             "[rate]\nfraction = 100.0\n[shift]\nmin_change = 10.0\n")
    cfg = config("latency", 1, db, influx.url, extra)
    d = Daemon(cfg, "latency")
    new = os.path.join(MAILDIR, "new")
    pub = Publisher()
    base = int(time.time()) - 400 * 60
    lat = []
    for k in range(200):
        exceed = k % 2 == 0
        before = len(os.listdir(new))
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + 60 * k))
        payload = json.dumps({"ts": ts, "values": {"nh3n": 2.5 if exceed else 0.3, "ph": 7.4}})
        t0 = time.monotonic()
        pub.publish("wq/bei/s0000/reading", payload)
        wait("the email", lambda: len(os.listdir(new)) > before, limit=30, every=0.0005)
        if exceed:
            lat.append((time.monotonic() - t0) * 1000)
    d.stop()
    lat.sort()
    # Nearest rank: the p-th percentile of n sorted values is the ceil(p·n)-th of them (the
    # 99th of 100), so a single slowest alert shows in the maximum, not in p99.
    p99 = lat[max(0, -(-99 * len(lat) // 100) - 1)]
    return {"alerts": len(lat), "p50_ms": round(statistics.median(lat), 1),
            "p99_ms": round(p99, 1), "max_ms": round(lat[-1], 1)}


def main():
    influx = Influx()
    influx.start()
    if os.environ.get("BENCH_ONLY_MEMORY"):
        log("(c) memory with 1,000 stations")
        log(memory(influx))
        influx.stop()
        return
    db = "bench"
    influx.query("", f"CREATE DATABASE {db}")
    cfg = config("throughput", 200, db, influx.url)
    log(f"(a) broker ceiling, {N} QoS-1 messages")
    a = ceiling(cfg)
    log(a)
    log(f"(b, c) riverwatch run, {N} readings from 200 stations")
    d, b = throughput(cfg, influx, db)
    log(b)
    log("(e) spool drain after an InfluxDB outage")
    e = spool_drain(d, cfg, influx, db)
    log(e)
    d.stop()
    if os.environ.get("BENCH_ONLY_THROUGHPUT"):
        influx.stop()
        return
    log("(d) alert latency")
    lat = latency(influx)
    log(lat)
    log("(c) memory with 1,000 stations")
    m = memory(influx)
    log(m)
    influx.stop()
    result = {
        "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
        "broker_ceiling": a, "pipeline": b, "ratio_to_ceiling": round(b["rate"] / a["rate"], 3),
        "alert_latency": lat, "spool_drain": e, "memory_1000_stations": m,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(result, f, indent=2)
    rows = [
        ("(a) broker ceiling, mosquitto_sub QoS 1", f"{a['rate']:,} msg/s", f"{N:,} messages in {a['seconds']} s"),
        ("(b) riverwatch run → InfluxDB queryable", f"{b['rate']:,} readings/s", f"{b['rate'] / a['rate']:.2f} × ceiling (target ≥ 0.9)"),
        ("(c) daemon CPU per reading", f"{b['cpu_us_per_reading']} µs", "target ≤ 5 µs"),
        ("(c) of which in user space", f"{b['user_us_per_reading']} µs", "the rest is the kernel's: sockets, mostly one PUBACK write per message"),
        ("(c) InfluxDB's CPU per reading, same run", f"{b['influxdb_cpu_us_per_reading']} µs", "the database shares the two cores"),
        ("(c) peak RSS, 200 stations", f"{b['peak_rss_mib']} MiB", ""),
        ("(c) peak RSS, 1,000 stations, windows full", f"{m['peak_rss_mib']} MiB", "target ≤ 64 MiB (7 d at 4 h + 24 h of probes at 5 min)"),
        ("(d) reading → email latency p50 / p99 / max", f"{lat['p50_ms']} / {lat['p99_ms']} / {lat['max_ms']} ms", "target p99 ≤ 100 ms"),
        ("(e) spool drain after an outage", f"{e['rate']:,} readings/s", f"{e['readings']:,} readings, {e['batches']} batches; resumed {e['resumed_after_s']} s after the database"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\nriverwatch pipeline benchmark, {result['date']}, {result['cpus']} CPUs (broker ceiling beside each figure: {a['rate']:,} msg/s)")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>22}  {note}")
    print(f"\nJSON: {OUT}")


if __name__ == "__main__":
    main()
