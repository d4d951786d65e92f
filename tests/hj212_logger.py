"""A data logger (数采仪) emulator for the HJ 212 TCP tests: plays loggers the way real ones
behave, with its own framing and CRC (independent of riverwatch's encoder).

Usage: hj212_logger.py stream SPEC.json
         One thread per station: connects to the listener, sends its data segments as frames
         (``##`` + length in bytes + segment + HJ 212 CRC16 + CR LF) ``interval`` seconds apart,
         and keeps every frame that asks for an answer (Flag bit 0) until its CN=9014
         acknowledgement (matched by QN) arrives. When the connection breaks it reconnects
         (every 0.1 s, for up to ``reconnect_for`` seconds) and sends the unacknowledged frames
         again, in order, as loggers do (补发). On every acknowledgement it asks
         VictoriaMetrics (``vm``) whether the reading is there: an acknowledgement must only
         come after custody. A frame sent again after a kill may be answered from the daemon's
         record while its reading still drains from the spool (custody too); an answer whose
         reading shows within 10 s is reported apart, as ``drained``, one whose reading never
         shows as ``late``. Prints ``acked N`` (running total) lines on stdout as
         acknowledgements arrive, and a final JSON summary line; exits 0 when every frame was
         acknowledged within ``deadline`` seconds.
       hj212_logger.py crowd SPEC.json
         Opens ``idle`` connections that never send, one slowloris client that sends a byte of
         a frame every 0.5 s, then one normal logger that sends one frame; prints a JSON line
         with the seconds the normal logger waited for its acknowledgement, and, for one
         connection more than ``max_connections``, whether the listener closed the oldest idle
         connection to make room and kept the newcomer.

SPEC keys: host, port, vm (stream), interval, deadline, reconnect_for, stations: [{mn, station,
frames: [{segment, qn, ack, ts_ms, check}]}] where ``check`` is the VictoriaMetrics series
(``water_quality_nh3n``) whose sample at ``ts_ms`` must exist at acknowledgement, or null.
"""
import json
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request


def crc16(data: bytes) -> int:
    """HJ 212's CRC16: shift first, then XOR with the byte (not Modbus)."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ b
        for _ in range(8):
            lsb = crc & 1
            crc >>= 1
            if lsb:
                crc ^= 0xA001
    return crc


def frame(segment: str) -> bytes:
    data = segment.encode("utf-8")
    return b"##%04d" % len(data) + data + b"%04X\r\n" % crc16(data)


def field(line: str, key: str):
    for part in line.split(";"):
        if part.startswith(key + "="):
            return part[len(key) + 1:]
    return None


def stored(vm: str, series: str, station: str, ts_ms: int) -> bool:
    urllib.request.urlopen(vm + "/internal/force_flush", timeout=10).read()
    query = urllib.parse.urlencode({"match[]": '%s{station="%s"}' % (series, station)})
    with urllib.request.urlopen(vm + "/api/v1/export?" + query, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if ts_ms in json.loads(line).get("timestamps", []):
                return True
    return False


def eventually(check, seconds):
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if check():
            return True
        time.sleep(0.1)
    return False


class Logger(threading.Thread):
    def __init__(self, spec, station, progress):
        super().__init__(daemon=True)
        self.spec, self.station, self.progress = spec, station, progress
        self.unacked = {}  # qn -> frame spec, in sending order
        self.lock = threading.Lock()
        self.acked = 0
        # Acknowledgements taken off `unacked` whose stored reading is still being checked:
        # the logger ends only when none is, so the summary counts every one.
        self.checking = 0
        self.resent = 0
        self.late = []  # acknowledgements that came before the reading was stored
        # Frames answered before their reading was visible in VictoriaMetrics, visible within
        # 10 s, as (qn, times sent): custody in the daemon's spool, draining (SPEC §9), or the
        # database's own delay in making a write searchable.
        self.drained = []
        self.sends = {}  # qn -> times sent
        self.error = None

    def connect(self):
        until = time.monotonic() + self.spec.get("reconnect_for", 60)
        while True:
            try:
                s = socket.create_connection((self.spec["host"], self.spec["port"]), timeout=5)
                s.settimeout(None)
                return s
            except OSError:
                if time.monotonic() > until:
                    raise
                time.sleep(0.1)

    def reader(self, sock, broken):
        buf = b""
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.decode("ascii", "replace").strip()
                    if "CN=9014" not in text:
                        continue
                    qn = field(text[6:], "QN")
                    with self.lock:
                        f = self.unacked.pop(qn, None)
                        if f is not None:
                            self.checking += 1
                    if f is None:
                        continue
                    check = lambda: stored(
                        self.spec["vm"], f["check"], self.station["station"], f["ts_ms"]
                    )
                    if f.get("check") and not check():
                        if eventually(check, 10):
                            self.drained.append((qn, self.sends.get(qn, 0)))
                        else:
                            self.late.append(qn)
                    with self.lock:
                        self.acked += 1
                        self.checking -= 1
                    self.progress()
        except OSError:
            pass
        broken.set()

    def send_all(self, sock, frames):
        for f in frames:
            with self.lock:
                self.sends[f.get("qn")] = self.sends.get(f.get("qn"), 0) + 1
            sock.sendall(frame(f["segment"]))
            time.sleep(self.spec.get("interval", 0.02))

    def run(self):
        frames = self.station["frames"]
        with self.lock:
            for f in frames:
                if f["ack"]:
                    self.unacked[f["qn"]] = f
        pending = list(frames)
        deadline = time.monotonic() + self.spec.get("deadline", 120)
        try:
            while time.monotonic() < deadline:
                sock = self.connect()
                broken = threading.Event()
                threading.Thread(target=self.reader, args=(sock, broken), daemon=True).start()
                try:
                    self.send_all(sock, pending)
                except OSError:
                    pass
                pending = []
                while not broken.is_set():
                    with self.lock:
                        if not self.unacked and not self.checking:
                            sock.close()
                            return
                    if time.monotonic() > deadline:
                        return
                    broken.wait(0.05)
                sock.close()
                # The connection broke: send again what was not acknowledged, in order.
                # (Every packet of a split message goes again: they share its QN.)
                with self.lock:
                    pending = [f for f in frames if f.get("qn") in self.unacked]
                    self.resent += len(pending)
        except OSError as e:
            self.error = str(e)


def stream(spec):
    total = [0]
    lock = threading.Lock()

    def progress():
        with lock:
            total[0] += 1
            print("acked %d" % total[0], flush=True)

    loggers = [Logger(spec, st, progress) for st in spec["stations"]]
    for l in loggers:
        l.start()
    for l in loggers:
        l.join()
    summary = {
        "acked": sum(l.acked for l in loggers),
        "expected": sum(1 for st in spec["stations"] for f in st["frames"] if f["ack"]),
        "unacked": [qn for l in loggers for qn in l.unacked],
        "late": [qn for l in loggers for qn in l.late],
        "drained": [qn for l in loggers for qn in l.drained],
        "resent": sum(l.resent for l in loggers),
        "errors": [l.error for l in loggers if l.error],
    }
    print(json.dumps(summary), flush=True)
    return 0 if not summary["unacked"] and not summary["errors"] else 1


def crowd(spec):
    addr = (spec["host"], spec["port"])
    idle = [socket.create_connection(addr, timeout=5) for _ in range(spec["idle"])]
    slow = socket.create_connection(addr, timeout=5)
    stop = threading.Event()

    def trickle():
        data = frame(spec["slowloris_segment"])
        for b in data:
            if stop.is_set():
                return
            try:
                slow.sendall(bytes([b]))
            except OSError:
                return
            stop.wait(0.5)

    threading.Thread(target=trickle, daemon=True).start()
    logger = spec["stations"][0]
    f = logger["frames"][0]
    began = time.monotonic()
    s = socket.create_connection(addr, timeout=10)
    s.sendall(frame(f["segment"]))
    buf = b""
    waited = None
    while waited is None:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
        if b"CN=9014" in buf and f["qn"].encode() in buf:
            waited = time.monotonic() - began
    # One connection more than the cap: the listener makes room by closing the oldest
    # connection that never sent a valid frame (the first idle one), and keeps the newcomer.
    extra = socket.create_connection(addr, timeout=5)
    try:
        evicted_oldest_idle = idle[0].recv(1) == b""
    except OSError:
        evicted_oldest_idle = True
    extra.settimeout(1)
    try:
        extra_kept = extra.recv(1) != b""
    except socket.timeout:
        extra_kept = True
    except OSError:
        extra_kept = False
    # The connections already open are kept: the normal logger is served again.
    f2 = logger["frames"][1]
    s.sendall(frame(f2["segment"]))
    buf = b""
    served_again = False
    while not served_again:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
        served_again = b"CN=9014" in buf and f2["qn"].encode() in buf
    stop.set()
    print(json.dumps({
        "ack_seconds": waited,
        "evicted_oldest_idle": evicted_oldest_idle,
        "extra_kept": extra_kept,
        "served_again": served_again,
    }), flush=True)
    for c in idle + [slow, s, extra]:
        c.close()
    return 0


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as fh:
        spec = json.load(fh)
    sys.exit({"stream": stream, "crowd": crowd}[mode](spec))
