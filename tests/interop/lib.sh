# Shared helpers for the interop tests: start lwm2md on loopback with free ports, find the
# ports it bound from its log, and clean up every process on exit.
# Usage: source lib.sh; start_lwm2md BINARY [--set key=value ...]
# Sets LWM2MD_PID, COAP_PORT (IPv4 listener), COAP6_PORT (IPv6, when listening on ::1),
# HTTP_PORT, WORK (a scratch directory removed on exit), API_TOKEN (a read-write API token,
# also in the file $API_TOKEN_FILE) and api_curl (curl sending that token).

set -euo pipefail
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lwm2md-interop.XXXXXX")
LWM2MD_PID=""
CLEANUP_PIDS=()

cleanup() {
  local pid
  for pid in "${CLEANUP_PIDS[@]}" $LWM2MD_PID; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ -n "${KEEP_WORK:-}" ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# One read-write API token for the whole test, given to lwm2md through a token file (so that
# restarts keep it). api_curl reads the header from a file, which keeps the token off the
# process list.
API_TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
API_TOKEN_FILE="$WORK/api-token"
(umask 077 && printf '%s\n' "$API_TOKEN" >"$API_TOKEN_FILE" \
  && printf 'Authorization: Bearer %s\n' "$API_TOKEN" >"$WORK/api-auth-header")
export API_TOKEN API_TOKEN_FILE
api_curl() { curl -H @"$WORK/api-auth-header" "$@"; }

fail() {
  echo "FAIL: $*" >&2
  if [ -f "$WORK/lwm2md.log" ]; then
    echo "--- lwm2md log (last 40 lines) ---" >&2
    tail -n 40 "$WORK/lwm2md.log" >&2
  fi
  exit 1
}

# Waits (at most 20 s) for "lwm2md ready:" and reads the bound ports from the log lines
# "listening coap 127.0.0.1:PORT", "listening coap [::1]:PORT", "listening http ADDR:PORT".
start_lwm2md() {
  local binary=$1
  shift
  local source_dir=${LWM2MD_SOURCE_DIR:?LWM2MD_SOURCE_DIR not set}
  mkdir -p "$WORK/data"
  "$binary" --config "$source_dir/config/lwm2md.toml" --set coap.port=0 --set coap.secure_port=0 --set http.port=0 \
    --set store.path="$WORK/data" --set lwm2m.objects_dir="$source_dir/config/objects" \
    --set "http.tokens=[{name=\"interop\",token_file=\"$API_TOKEN_FILE\",access=\"read-write\"}]" \
    "$@" >"$WORK/lwm2md.log" 2>&1 &
  LWM2MD_PID=$!
  local i
  for i in $(seq 1 200); do
    if grep -qs "lwm2md ready:" "$WORK/lwm2md.log"; then break; fi
    if ! kill -0 "$LWM2MD_PID" 2>/dev/null; then fail "lwm2md exited during start-up"; fi
    sleep 0.1
  done
  grep -q "lwm2md ready:" "$WORK/lwm2md.log" || fail "lwm2md not ready after 20 s"
  COAP_PORT=$(sed -n 's/.*listening coap 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/lwm2md.log" | head -1)
  COAP6_PORT=$(sed -n 's/.*listening coap \[::1\]:\([0-9]*\).*/\1/p' "$WORK/lwm2md.log" | head -1)
  COAPS_PORT=$(sed -n 's/.*listening coaps 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/lwm2md.log" | head -1)
  COAPS6_PORT=$(sed -n 's/.*listening coaps \[::1\]:\([0-9]*\).*/\1/p' "$WORK/lwm2md.log" | head -1)
  HTTP_PORT=$(sed -n 's/.*listening https\{0,1\} [^ ]*:\([0-9]*\).*/\1/p' "$WORK/lwm2md.log" | head -1)
  [ -n "$COAP_PORT" ] || fail "no 'listening coap 127.0.0.1:PORT' line in the log"
}

stop_lwm2md() {
  if [ -n "$LWM2MD_PID" ]; then
    kill -TERM "$LWM2MD_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
      kill -0 "$LWM2MD_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$LWM2MD_PID" 2>/dev/null; then fail "lwm2md did not stop within 10 s of SIGTERM"; fi
    wait "$LWM2MD_PID" 2>/dev/null || fail "lwm2md exited non-zero after SIGTERM"
    grep -q "lwm2md stopped" "$WORK/lwm2md.log" || fail "no 'lwm2md stopped' line after SIGTERM"
    LWM2MD_PID=""
  fi
}

# Stops lwm2md (SIGTERM, checked as stop_lwm2md does) and starts it again on the same data
# directory, CoAP port and HTTP port, so that registered devices keep talking to the address
# they registered with and clients reach the API where they did. Arguments as for
# start_lwm2md; the previous run's log is kept as lwm2md.log.N.
LWM2MD_RESTARTS=0
restart_lwm2md() {
  local binary=$1
  shift
  local coap_port=$COAP_PORT coaps_port=${COAPS_PORT:-0} http_port=$HTTP_PORT
  stop_lwm2md
  LWM2MD_RESTARTS=$((LWM2MD_RESTARTS + 1))
  mv "$WORK/lwm2md.log" "$WORK/lwm2md.log.$LWM2MD_RESTARTS"
  start_lwm2md "$binary" "$@" --set coap.port="$coap_port" --set coap.secure_port="$coaps_port" \
    --set http.port="$http_port"
}

# Starts tshark capturing UDP to/from PORT on the loopback interface into FILE and waits
# until it is actually capturing.
start_capture() {
  local port=$1 file=$2
  tshark -i lo -f "udp port $port" -w "$file" -q >"$WORK/tshark.log" 2>&1 &
  CLEANUP_PIDS+=($!)
  TSHARK_PID=$!
  local i
  for i in $(seq 1 100); do
    if grep -q "Capturing on" "$WORK/tshark.log"; then return 0; fi
    sleep 0.1
  done
  fail "tshark did not start capturing: $(cat "$WORK/tshark.log")"
}

stop_capture() {
  sleep 0.5  # let the last datagrams reach the capture
  kill -INT "$TSHARK_PID" 2>/dev/null || true
  wait "$TSHARK_PID" 2>/dev/null || true
}

# Checks a capture: every datagram from lwm2md's port decodes as CoAP, and tshark reports
# no malformed packet and no expert info of warning or error severity in any of them. (The
# peers' own datagrams are not judged: libcoap sends Request-Tag, RFC 9175, which this
# tshark flags as an unknown option.)
check_capture() {
  local port=$1 file=$2
  local ours coap_ours bad
  ours=$(tshark -r "$file" -Y "udp.srcport == $port" 2>/dev/null | wc -l)
  coap_ours=$(tshark -r "$file" -d "udp.port==$port,coap" -Y "udp.srcport == $port && coap" 2>/dev/null | wc -l)
  bad=$(tshark -r "$file" -d "udp.port==$port,coap" \
    -Y "udp.srcport == $port && (_ws.malformed || _ws.expert.severity >= \"Warning\")" 2>/dev/null | wc -l)
  [ "$ours" -gt 0 ] || fail "capture holds no datagram from lwm2md"
  [ "$ours" -eq "$coap_ours" ] || fail "$((ours - coap_ours)) of $ours datagrams from lwm2md do not decode as CoAP"
  if [ "$bad" -ne 0 ]; then
    tshark -r "$file" -d "udp.port==$port,coap" \
      -Y "udp.srcport == $port && (_ws.malformed || _ws.expert.severity >= \"Warning\")" -V >&2 || true
    fail "tshark flags $bad datagrams as malformed or with expert warnings"
  fi
  echo "tshark: $ours datagrams from lwm2md, all valid CoAP, no expert warnings"
}
