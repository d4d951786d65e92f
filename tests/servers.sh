# Sourced by tests/run.sh and tests/bench.sh: installs mosquitto, InfluxDB 1.x, VictoriaMetrics
# (a real server of the InfluxDB v2 write API), aiosmtpd and headless Chromium with chromedriver
# when they are missing (Debian/Ubuntu, as root or with sudo), starts each on a free loopback port with its data in a temporary
# folder ($work), exports their addresses in RIVERWATCH_TEST_* variables, and stops them by PID
# when the sourcing script exits.

log() { printf '[servers] %s\n' "$*" >&2; }

# ---- install what is missing ---------------------------------------------------------------
packages=()
command -v mosquitto >/dev/null || packages+=(mosquitto)
command -v mosquitto_pub >/dev/null || packages+=(mosquitto-clients)
command -v influxd >/dev/null || packages+=(influxdb)
command -v victoria-metrics >/dev/null || packages+=(victoria-metrics)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || packages+=(python3-aiosmtpd)
command -v curl >/dev/null || packages+=(curl)
# promtool checks a live /metrics scrape (tests/metrics.rs); Debian ships it with Prometheus.
command -v promtool >/dev/null || packages+=(prometheus)
command -v openssl >/dev/null || packages+=(openssl)
# Headless Chromium and its WebDriver for the duty console test (tests/console.rs), and a CJK
# font so that its screenshot shows the Chinese labels.
command -v chromium >/dev/null || packages+=(chromium)
command -v chromedriver >/dev/null || packages+=(chromium-driver)
fc-list :lang=zh 2>/dev/null | grep -q . || packages+=(fonts-wqy-microhei)
if ((${#packages[@]})); then
  log "installing ${packages[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# ---- start the servers ---------------------------------------------------------------------
work=$(mktemp -d -t riverwatch-test.XXXXXX)
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ $status -ne 0 ]; then
    for f in "$work"/*.log; do [ -s "$f" ] && { log "--- $f (last lines)"; tail -n 20 "$f" >&2; }; done
  fi
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Polls a command until it succeeds, for at most $1 seconds.
wait_for() {
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then log "$what did not become ready in ${limit}s"; return 1; fi
    sleep 0.1
  done
}

mqtt_port=$(free_port)
mkdir -p "$work/mosquitto"
cat >"$work/mosquitto.conf" <<CONF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $work/mosquitto/
user root
max_queued_messages 100000
CONF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
wait_for 10 mosquitto mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t riverwatch/test/ready -m ok

influx_port=$(free_port)
influx_rpc_port=$(free_port)
mkdir -p "$work/influxdb"
cat >"$work/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$influx_rpc_port"
[meta]
  dir = "$work/influxdb/meta"
[data]
  dir = "$work/influxdb/data"
  wal-dir = "$work/influxdb/wal"
[http]
  bind-address = "127.0.0.1:$influx_port"
  log-enabled = false
[monitor]
  store-enabled = false
CONF
influxd -config "$work/influxdb.conf" >"$work/influxdb.log" 2>&1 &
pids+=($!)
wait_for 20 InfluxDB curl -sf "http://127.0.0.1:$influx_port/ping"

vm_port=$(free_port)
victoria-metrics -storageDataPath="$work/vm" -httpListenAddr="127.0.0.1:$vm_port" \
  -retentionPeriod=100y -search.latencyOffset=0s >"$work/vm.log" 2>&1 &
pids+=($!)
wait_for 20 VictoriaMetrics curl -sf "http://127.0.0.1:$vm_port/health"

smtp_port=$(free_port)
mkdir -p "$work/maildir"/{cur,new,tmp}
/usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$work/maildir" \
  >"$work/smtp.log" 2>&1 &
pids+=($!)
wait_for 10 aiosmtpd python3 -c "import socket; socket.create_connection(('127.0.0.1', $smtp_port), 1)"

# A small CA and a certificate for localhost/127.0.0.1 signed by it: rustls refuses a
# self-signed certificate used as its own CA.
tls="$work/tls"
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=riverwatch test CA" \
  -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/ext"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
  -days 2 -extfile "$tls/ext" -out "$tls/server.pem" 2>/dev/null

# A second mosquitto: TLS only, with a password file (no anonymous clients).
mqtts_port=$(free_port)
mkdir -p "$work/mosquitto-tls"
mosquitto_passwd -b -c "$work/mosquitto-tls/passwd" riverwatch "mqtt-test-secret" >/dev/null
mosquitto_passwd -b "$work/mosquitto-tls/passwd" station "station-secret" >/dev/null
cat >"$work/mosquitto-tls.conf" <<CONF
listener $mqtts_port 127.0.0.1
cafile $tls/ca.pem
certfile $tls/server.pem
keyfile $tls/server.key
allow_anonymous false
password_file $work/mosquitto-tls/passwd
persistence true
persistence_location $work/mosquitto-tls/
user root
CONF
mosquitto -c "$work/mosquitto-tls.conf" >"$work/mosquitto-tls.log" 2>&1 &
pids+=($!)
wait_for 10 "mosquitto (TLS)" mosquitto_pub -h localhost -p "$mqtts_port" --cafile "$tls/ca.pem" \
  -u station -P station-secret -q 1 -t riverwatch/test/ready -m ok

# The same Maildir behind a STARTTLS server (TLS required before MAIL) and an SMTPS server.
starttls_port=$(free_port)
/usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$starttls_port" -c aiosmtpd.handlers.Mailbox \
  --tlscert "$tls/server.pem" --tlskey "$tls/server.key" "$work/maildir" >"$work/smtp-starttls.log" 2>&1 &
pids+=($!)
smtps_port=$(free_port)
/usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$smtps_port" -c aiosmtpd.handlers.Mailbox \
  --smtpscert "$tls/server.pem" --smtpskey "$tls/server.key" "$work/maildir" >"$work/smtps.log" 2>&1 &
pids+=($!)
for port in "$starttls_port" "$smtps_port"; do
  wait_for 10 "aiosmtpd (TLS) on $port" python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)"
done

# And one that requires AUTH (user riverwatch, a password the tests read from a file).
smtp_auth_port=$(free_port)
echo "s3cret-test-password" >"$work/smtp-password"
/usr/bin/python3 tests/smtp_auth_server.py "$smtp_auth_port" "$work/maildir" riverwatch s3cret-test-password \
  >"$work/smtp-auth.log" 2>&1 &
pids+=($!)
wait_for 10 "aiosmtpd (AUTH)" python3 -c "import socket; socket.create_connection(('127.0.0.1', $smtp_auth_port), 1)"

sms_port=$(free_port)
python3 tests/sms_gateway.py "$sms_port" "$work/sms.jsonl" >"$work/sms.log" 2>&1 &
pids+=($!)
wait_for 10 "SMS gateway" curl -sf "http://127.0.0.1:$sms_port/health"

# The chat robots, a webhook receiver and a provider-style SMS API (tests/robots.py), with the
# credentials the tests configure.
robots_port=$(free_port)
python3 tests/robots.py "$robots_port" "$work/robots.jsonl" wecom-test-key dingtalk-test-token \
  SECdingtalk-test-secret 水质预警 webhook-test-secret >"$work/robots.log" 2>&1 &
pids+=($!)
wait_for 10 "robot endpoints" curl -sf "http://127.0.0.1:$robots_port/health"

log "mosquitto :$mqtt_port, InfluxDB :$influx_port, VictoriaMetrics :$vm_port, SMTP :$smtp_port (STARTTLS :$starttls_port, SMTPS :$smtps_port), SMS :$sms_port"

export RIVERWATCH_REQUIRE_SERVERS=1
export RIVERWATCH_TEST_MQTT_PORT=$mqtt_port
export RIVERWATCH_TEST_INFLUX_V1_URL=http://127.0.0.1:$influx_port
export RIVERWATCH_TEST_VM_URL=http://127.0.0.1:$vm_port
export RIVERWATCH_TEST_SMTP_PORT=$smtp_port
export RIVERWATCH_TEST_MAILDIR=$work/maildir
export RIVERWATCH_TEST_SMS_URL=http://127.0.0.1:$sms_port/send
export RIVERWATCH_TEST_SMS_LOG=$work/sms.jsonl
export RIVERWATCH_TEST_SMTP_STARTTLS_PORT=$starttls_port
export RIVERWATCH_TEST_SMTPS_PORT=$smtps_port
export RIVERWATCH_TEST_CA=$tls/ca.pem
export RIVERWATCH_TEST_MQTTS_PORT=$mqtts_port
export RIVERWATCH_TEST_SMTP_AUTH_PORT=$smtp_auth_port
export RIVERWATCH_TEST_SMTP_PASSWORD_FILE=$work/smtp-password
export RIVERWATCH_TEST_ROBOTS_URL=http://127.0.0.1:$robots_port
export RIVERWATCH_TEST_ROBOTS_LOG=$work/robots.jsonl
export RIVERWATCH_TEST_WECOM_KEY=wecom-test-key
export RIVERWATCH_TEST_DINGTALK_TOKEN=dingtalk-test-token
export RIVERWATCH_TEST_DINGTALK_SECRET=SECdingtalk-test-secret
export RIVERWATCH_TEST_DINGTALK_KEYWORD=水质预警
export RIVERWATCH_TEST_WEBHOOK_SECRET=webhook-test-secret
