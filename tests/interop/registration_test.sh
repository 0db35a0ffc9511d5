#!/usr/bin/env bash
# The registration interface with real peers: the npm coap package (Register, Update,
# De-register, version fallback, bad requests) over IPv4 and IPv6, libcoap's coap-client
# with a link-format body, tshark judging every datagram lwm2md sent, and a crash test:
# kill -9 right after registrations were acknowledged, restart, every one is still there.
source "$(dirname "$0")/lib.sh"
binary=${1:?usage: registration_test.sh LWM2MD_BINARY}
node_dir="$(cd "$(dirname "$0")/node" && pwd)"
command -v node >/dev/null || fail "node not installed"
command -v coap-client-openssl >/dev/null || fail "coap-client-openssl not installed"
if [ ! -d "$node_dir/node_modules/coap" ]; then
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed"
fi
run_node() { node --test-reporter=spec "$node_dir/register_interop.mjs" "$@"; }
metric() {  # sum of a family's samples in /metrics
  api_curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" |
    awk -v f="$1" '$1 == f || index($1, f "{") == 1 { s += $2 } END { print s + 0 }'
}

start_lwm2md "$binary" --set shards=2 --set 'coap.listen=["127.0.0.1","::1"]' \
  --set lwm2m.allow_unknown_endpoints=true
start_capture "$COAP_PORT" "$WORK/register.pcap"
# The API refuses a request without the token.
status=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/api/v1/endpoints")
[ "$status" = 401 ] || fail "GET /api/v1/endpoints without a token answered $status, not 401"
# The event stream as an application sees it, and an endpoint created through the API.
api_curl -fsSN "http://127.0.0.1:$HTTP_PORT/api/v1/events?type=lwm2m.register,lwm2m.deregister" \
  >"$WORK/events.txt" 2>"$WORK/events.err" &
CLEANUP_PIDS+=($!)
api_curl -fsS -X POST -H 'Content-Type: application/json' \
  -d '{"name":"npm-dev","securityMode":"none","missingTimeoutSeconds":600,"tags":["lab"]}' \
  "http://127.0.0.1:$HTTP_PORT/api/v1/endpoints" >/dev/null || fail "POST /api/v1/endpoints failed"
sleep 0.3
run_node 127.0.0.1 "$COAP_PORT" || fail "npm coap registration tests failed over IPv4"

# libcoap: Register with a link-format body (-t 40), then Update and De-register at the
# location it was given (printed by -v 6 as the Location-Path options of the 2.01).
coap-client-openssl -v 6 -m post -t 40 -e '</1/0>,</3/0>,</5/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?ep=libcoap-dev&lt=60&lwm2m=1.1&b=U" >"$WORK/cc.out" 2>&1 \
  || fail "coap-client Register failed: $(cat "$WORK/cc.out")"
grep -q "2\.01" "$WORK/cc.out" || fail "coap-client Register not answered 2.01: $(cat "$WORK/cc.out")"
location=$(grep -o 'Location-Path:[^], ]*' "$WORK/cc.out" | sed 's/^Location-Path://' | paste -sd/)
[ -n "$location" ] || fail "no Location-Path in the coap-client output: $(cat "$WORK/cc.out")"
echo "coap-client registered at /$location"
coap-client-openssl -v 6 -m post "coap://127.0.0.1:$COAP_PORT/$location?lt=90" >"$WORK/cc2.out" 2>&1
grep -q "2\.04" "$WORK/cc2.out" || fail "coap-client Update not 2.04: $(cat "$WORK/cc2.out")"
coap-client-openssl -v 6 -m delete "coap://127.0.0.1:$COAP_PORT/$location" >"$WORK/cc3.out" 2>&1
grep -q "2\.02" "$WORK/cc3.out" || fail "coap-client De-register not 2.02: $(cat "$WORK/cc3.out")"
stop_capture
check_capture "$COAP_PORT" "$WORK/register.pcap"
grep -q '^event: lwm2m.register$' "$WORK/events.txt" || fail "no lwm2m.register on the event stream"
grep -q '"endpoint":"npm-dev".*"data":{"binding":"U","credentials":"none","remoteAddr":"127.0.0.1:[0-9]*","version":"1.1","discovery":{"children":{"1":{"children":{"0":{}}},"3":{"children":{"0":{}}},"3303":{}}}}' \
  "$WORK/events.txt" || fail "lwm2m.register payload differs: $(grep npm-dev "$WORK/events.txt")"
grep -q '"endpoint":"npm-dev".*"reason":"deregistered"' "$WORK/events.txt" \
  || fail "no lwm2m.deregister for npm-dev on the event stream"
api_curl -fsS "http://127.0.0.1:$HTTP_PORT/api/v1/endpoints/libcoap-dev" >/dev/null 2>&1 \
  && fail "a de-registered endpoint never created through the API is still shown"
unconfigured=$(api_curl -fsS "http://127.0.0.1:$HTTP_PORT/api/v1/endpoints/npm-v10") \
  || fail "a registered endpoint without configuration is not shown"
grep -q '"configured":false.*"status":"connected".*"binding":"UQ"' <<<"$unconfigured" \
  || fail "unconfigured endpoint shown as: $unconfigured"
endpoint=$(api_curl -fsS "http://127.0.0.1:$HTTP_PORT/api/v1/endpoints/npm-dev") || fail "GET endpoint failed"
grep -q '"status":"offline"' <<<"$endpoint" || fail "npm-dev should be offline after De-register: $endpoint"
[ "$(tshark -r "$WORK/register.pcap" -d "udp.port==$COAP_PORT,coap" \
  -Y 'coap.code == 65 && coap.opt.location_path' 2>/dev/null | wc -l)" -gt 0 ] \
  || fail "tshark sees no 2.01 with a Location-Path"

[ -n "$COAP6_PORT" ] || fail "no IPv6 listener"
run_node ::1 "$COAP6_PORT" || fail "npm coap registration tests failed over IPv6"
[ "$(metric lwm2md_registrations_registered_total)" -ge 10 ] || fail "registrations not counted"
[ "$(metric lwm2md_registrations_rejected_total)" -ge 12 ] || fail "rejections not counted"

# Crash test: every acknowledged registration survives kill -9.
run_node 127.0.0.1 "$COAP_PORT" register-many 300 "$WORK/acked.txt" || fail "register-many failed"
kill -KILL "$LWM2MD_PID"
wait "$LWM2MD_PID" 2>/dev/null || true
LWM2MD_PID=""
acked=$(wc -l <"$WORK/acked.txt")
[ "$acked" -eq 300 ] || fail "only $acked registrations acknowledged"
mv "$WORK/lwm2md.log" "$WORK/lwm2md-before-crash.log"
start_lwm2md "$binary" --set shards=2 --set 'coap.listen=["127.0.0.1"]' \
  --set lwm2m.allow_unknown_endpoints=true
restored=$(sed -n 's/.*registrations: \([0-9]*\) restored.*/\1/p' "$WORK/lwm2md.log")
[ "${restored:-0}" -ge 300 ] || fail "only ${restored:-0} registrations restored after kill -9"
run_node 127.0.0.1 "$COAP_PORT" update-all "$WORK/acked.txt" \
  || fail "acknowledged registrations lost after kill -9"
stop_lwm2md
echo "PASS: registration interop, crash test: $acked acknowledged, $restored restored"
