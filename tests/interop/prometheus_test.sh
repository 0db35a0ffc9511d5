#!/usr/bin/env bash
# Has Debian's Prometheus scrape lwm2md's /metrics every second, with the API token read from
# a file (authorization.credentials_file, in Prometheus since 2.26), then checks through
# Prometheus's query API that the net counters move when datagrams arrive and that every
# metric name the Grafana dashboards (dashboards/*.json) query exists, so that a renamed
# or unregistered metric cannot leave a dashboard panel silently empty.
source "$(dirname "$0")/lib.sh"
binary=${1:?usage: prometheus_test.sh LWM2MD_BINARY}
source_dir=${LWM2MD_SOURCE_DIR:?LWM2MD_SOURCE_DIR not set}
command -v prometheus >/dev/null || fail "prometheus not installed (Debian package prometheus)"
command -v python3 >/dev/null || fail "python3 not installed"

prom_fail() {
  if [ -f "$WORK/prometheus.log" ]; then
    echo "--- prometheus log (last 20 lines) ---" >&2
    tail -n 20 "$WORK/prometheus.log" >&2
  fi
  fail "$@"
}

# Metric names in the dashboards' PromQL: identifiers left once label matchers, strings,
# range selectors, variables, grouping clauses and function calls are removed.
cat >"$WORK/dashboard_metrics.py" <<'PY'
import json, re, sys

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset", "inf", "nan"}

def exprs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from exprs(value)
    elif isinstance(node, list):
        for value in node:
            yield from exprs(value)

names = set()
for path in sys.argv[1:]:
    with open(path) as f:
        dashboard = json.load(f)
    for expr in exprs(dashboard):
        e = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
        e = re.sub(r"\{[^}]*\}", "", e)
        e = re.sub(r"\[[^\]]*\]", "", e)
        e = re.sub(r"\$\{?\w+\}?", "", e)
        e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
        for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?", e):
            if match.group(2) or match.group(1) in KEYWORDS:
                continue
            names.add(match.group(1))
for name in sorted(names):
    print(name)
PY
shopt -s nullglob
dashboards=("$source_dir"/dashboards/*.json)
((${#dashboards[@]})) || fail "no dashboards/*.json in $source_dir"
names=$(python3 "$WORK/dashboard_metrics.py" "${dashboards[@]}") || fail "cannot read the dashboards"
[ -n "$names" ] || fail "no metric names found in the dashboards' expressions"
echo "dashboards query $(echo "$names" | wc -l) metric names"

# Prometheus's HTTP API, from Python's standard library.
cat >"$WORK/prom.py" <<'PY'
import json, sys, urllib.parse, urllib.request

base, command = sys.argv[1], sys.argv[2]

def get(path, **params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    if body.get("status") != "success":
        sys.exit("prometheus: " + json.dumps(body))
    return body["data"]

if command == "value":  # the value of an instant query's first sample, or "none"
    result = get("/api/v1/query", query=sys.argv[3])["result"]
    print(result[0]["value"][1] if result else "none")
elif command == "names":  # every metric name Prometheus holds
    print("\n".join(get("/api/v1/label/__name__/values")))
PY

# A few CoAP messages (a CON GET sent twice, so once a duplicate; an empty CON ping; a NON
# GET; two malformed datagrams) from several source ports, so that both shards see some.
cat >"$WORK/send.py" <<'PY'
import socket, sys

port = int(sys.argv[1])
path = bytes([0xBB]) + b".well-known" + bytes([0x04]) + b"core"
con_get = bytes([0x41, 0x01, 0x12, 0x34, 0xAB]) + path
ping = bytes([0x40, 0x00, 0x12, 0x35])
non_get = bytes([0x51, 0x01, 0x12, 0x36, 0xAC]) + path
malformed = [b"\x00", b"\xff\xff\xff\xff"]
for i in range(8):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for datagram in [con_get, con_get, ping, non_get] + malformed:
            s.sendto(datagram, ("127.0.0.1", port))
PY

start_lwm2md "$binary" --set shards=2 --set 'coap.listen=["127.0.0.1"]'
[ -n "$HTTP_PORT" ] || fail "no 'listening http ADDRESS:PORT' line in the log"
echo "lwm2md: coap port $COAP_PORT, http port $HTTP_PORT"

prom_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: lwm2md
    authorization:
      type: Bearer
      credentials_file: $API_TOKEN_FILE
    static_configs:
      - targets: ["127.0.0.1:$HTTP_PORT"]
YAML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$WORK/prometheus.log" 2>&1 &
CLEANUP_PIDS+=($!)
prom_pid=$!
prom="http://127.0.0.1:$prom_port"

# Bounded wait for the first successful scrape.
up=none
for i in $(seq 1 120); do
  kill -0 "$prom_pid" 2>/dev/null || prom_fail "prometheus exited during start-up"
  up=$(python3 "$WORK/prom.py" "$prom" value 'up{job="lwm2md"}' 2>/dev/null) || up=none
  [ "$up" = "1" ] && break
  sleep 0.5
done
[ "$up" = "1" ] || prom_fail "prometheus did not scrape lwm2md on port $HTTP_PORT within 60 s (up=$up)"
echo "prometheus: target up"

received() { python3 "$WORK/prom.py" "$prom" value 'sum(lwm2md_net_received_packets_total)'; }
before=$(received)
[ "$before" != "none" ] || prom_fail "prometheus has no lwm2md_net_received_packets_total"
python3 "$WORK/send.py" "$COAP_PORT"
after=$before
for i in $(seq 1 60); do
  after=$(received)
  python3 -c "import sys; sys.exit(0 if float('$after') > float('$before') else 1)" && break
  sleep 0.5
done
python3 -c "import sys; sys.exit(0 if float('$after') > float('$before') else 1)" ||
  prom_fail "lwm2md_net_received_packets_total did not go up within 30 s of sending datagrams (stayed at $before)"
echo "lwm2md_net_received_packets_total: $before -> $after"

# One more scrape interval, so that series born of those datagrams (CoAP types and codes)
# are in too.
sleep 2
have=$(python3 "$WORK/prom.py" "$prom" names) || prom_fail "cannot list metric names"
missing=()
for name in $names; do
  grep -qx "$name" <<<"$have" || missing+=("$name")
done
if ((${#missing[@]})); then
  for name in "${missing[@]}"; do echo "missing: $name" >&2; done
  prom_fail "${#missing[@]} metric(s) used by dashboards/*.json do not exist in Prometheus: ${missing[*]}"
fi
echo "all $(echo "$names" | wc -l) metric names used by the dashboards exist in Prometheus"

stop_lwm2md
echo "prometheus_test: 1 passed, 0 failed"
