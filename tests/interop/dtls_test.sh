#!/usr/bin/env bash
# CoAP over DTLS 1.2 with PSK against libcoap's coap-client-openssl (OpenSSL's DTLS, a stack
# we did not write): an endpoint created through the API with a PSK identity and key; GET
# and Register over coaps; the cipher suite tshark sees in our ServerHello; and every way
# in that must stay shut: a wrong key, an unknown identity, a name the identity does not
# own, and plain CoAP for an endpoint that requires DTLS. Each refusal is counted.
source "$(dirname "$0")/lib.sh"
binary=${1:?usage: dtls_test.sh LWM2MD_BINARY}
client=coap-client-openssl
command -v "$client" >/dev/null || fail "$client not installed"
command -v tshark >/dev/null || fail "tshark not installed"
metric() {  # sum of a family's samples in /metrics, label filter optional
  api_curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" |
    awk -v f="$1" -v l="${2:-}" '($1 == f || index($1, f "{") == 1) && index($1, l) { s += $2 } END { print s + 0 }'
}

start_lwm2md "$binary" --set shards=2 --set 'coap.listen=["127.0.0.1", "::1"]'
[ -n "$COAPS_PORT" ] || fail "no 'listening coaps 127.0.0.1:PORT' line in the log"
start_capture "$COAPS_PORT" "$WORK/dtls.pcap"

key='lwm2md-psk-key-1'
key_hex=$(printf %s "$key" | od -An -tx1 | tr -d ' \n')
api_curl -fsS -X POST -H 'Content-Type: application/json' \
  -d "{\"name\":\"psk-dev\",\"securityMode\":\"psk\",\"pskIdentity\":\"psk-dev-id\",\"pskKey\":\"$key_hex\"}" \
  "http://127.0.0.1:$HTTP_PORT/api/v1/endpoints" >/dev/null || fail "POST /api/v1/endpoints failed"
api_curl -fsSN "http://127.0.0.1:$HTTP_PORT/api/v1/events?type=lwm2m.register" \
  >"$WORK/events.txt" 2>"$WORK/events.err" &
CLEANUP_PIDS+=($!)
sleep 0.3

coaps() {  # identity key method path [coap-client options...]
  local identity=$1 psk=$2 method=$3 path=$4
  shift 4
  timeout 20 "$client" -v 6 -u "$identity" -k "$psk" -m "$method" "$@" \
    "coaps://127.0.0.1:$COAPS_PORT/$path" 2>&1
}

# A GET over DTLS.
out=$(coaps psk-dev-id "$key" get .well-known/core) || true
grep -q '</rd>' <<<"$out" || fail "GET /.well-known/core over DTLS: $out"
# The same over IPv6.
[ -n "$COAPS6_PORT" ] || fail "no 'listening coaps [::1]:PORT' line in the log"
out=$(timeout 20 "$client" -v 6 -u psk-dev-id -k "$key" -m get \
  "coaps://[::1]:$COAPS6_PORT/.well-known/core" 2>&1) || true
grep -q '</rd>' <<<"$out" || fail "GET /.well-known/core over DTLS on IPv6: $out"
# Register over DTLS under the identity's own endpoint name.
out=$(coaps psk-dev-id "$key" post 'rd?ep=psk-dev&lt=300&lwm2m=1.1&b=U' -t 40 -e '</1/0>,</3/0>') || true
grep -q '2\.01' <<<"$out" || fail "Register over DTLS not answered 2.01: $out"
location=$(grep -o 'Location-Path:[^], ]*' <<<"$out" | sed 's/^Location-Path://' | paste -sd/)
[ -n "$location" ] || fail "no Location-Path in: $out"
sleep 0.3
grep -q '"endpoint":"psk-dev".*"credentials":"primary"' "$WORK/events.txt" \
  || fail "register event of psk-dev: $(cat "$WORK/events.txt")"
endpoint=$(api_curl -fsS "http://127.0.0.1:$HTTP_PORT/api/v1/endpoints/psk-dev")
grep -q '"status":"connected"' <<<"$endpoint" || fail "psk-dev after Register over DTLS: $endpoint"
# Update over DTLS (a new session: coap-client makes one per run).
out=$(coaps psk-dev-id "$key" post "$location?lt=300") || true
grep -q '2\.04' <<<"$out" || fail "Update over DTLS not 2.04: $out"

# Refused: the identity registering under another name (4.03), a wrong key and an unknown
# identity (no handshake), plain CoAP for an endpoint that requires DTLS (4.03).
out=$(coaps psk-dev-id "$key" post 'rd?ep=somebody-else&lt=300' -t 40 -e '</3/0>') || true
grep -q '4\.03' <<<"$out" || fail "a spoofed endpoint name was not refused with 4.03: $out"
out=$(coaps psk-dev-id 'not-the-right-key' get .well-known/core) || true
grep -q '</rd>' <<<"$out" && fail "a wrong PSK key was let in: $out"
out=$(coaps nobody-id "$key" get .well-known/core) || true
grep -q '</rd>' <<<"$out" && fail "an unknown PSK identity was let in: $out"
out=$(timeout 20 "$client" -v 6 -m post -t 40 -e '</3/0>' \
  "coap://127.0.0.1:$COAP_PORT/rd?ep=psk-dev&lt=300" 2>&1) || true
grep -q '4\.03' <<<"$out" || fail "plain CoAP Register of a DTLS endpoint not refused: $out"
grep -q '"endpoint":"somebody-else"' "$WORK/events.txt" && fail "somebody-else registered"

[ "$(metric lwm2md_dtls_handshakes_completed_total)" -ge 4 ] || fail "handshakes not counted"
[ "$(metric lwm2md_dtls_handshake_failures_total 'reason="bad_credentials"')" -ge 1 ] \
  || fail "the wrong key is not counted as bad_credentials"
[ "$(metric lwm2md_dtls_handshake_failures_total 'reason="unknown_identity"')" -ge 1 ] \
  || fail "the unknown identity is not counted"
[ "$(metric lwm2md_dtls_hello_verify_requests_total)" -ge 6 ] || fail "no cookies counted"
[ "$(metric lwm2md_registrations_rejected_total 'reason="forbidden"')" -ge 2 ] \
  || fail "refused registrations not counted as forbidden"

stop_capture
# tshark's DTLS dissector reads our handshake: every ServerHello chose TLS_PSK_WITH_AES_128_CCM_8
# (0xc0a8), and it finds nothing malformed in what we sent.
suites=$(tshark -r "$WORK/dtls.pcap" -d "udp.port==$COAPS_PORT,dtls" \
  -Y "udp.srcport == $COAPS_PORT && dtls.handshake.type == 2" \
  -T fields -e dtls.handshake.ciphersuite 2>/dev/null | sort -u)
[ "$suites" = "0xc0a8" ] || fail "ServerHello cipher suites: '${suites}', not TLS_PSK_WITH_AES_128_CCM_8 (0xc0a8)"
echo "tshark: our ServerHellos chose TLS_PSK_WITH_AES_128_CCM_8"
malformed=$(tshark -r "$WORK/dtls.pcap" -d "udp.port==$COAPS_PORT,dtls" \
  -Y "udp.srcport == $COAPS_PORT && (_ws.malformed || _ws.expert.severity >= \"Warning\")" 2>/dev/null | wc -l)
[ "$malformed" -eq 0 ] || fail "tshark finds $malformed malformed datagrams from lwm2md"
hvr=$(tshark -r "$WORK/dtls.pcap" -d "udp.port==$COAPS_PORT,dtls" \
  -Y "udp.srcport == $COAPS_PORT && dtls.handshake.type == 3" 2>/dev/null | wc -l)
[ "$hvr" -ge 6 ] || fail "tshark sees $hvr HelloVerifyRequests from lwm2md, not one per handshake"
echo "PASS: dtls interop"
