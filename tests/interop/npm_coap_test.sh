#!/usr/bin/env bash
# Drives lwm2md with the npm coap package (a CoAP implementation we did not write) over
# IPv4 and IPv6; tshark checks every datagram lwm2md sent.
source "$(dirname "$0")/lib.sh"
binary=${1:?usage: npm_coap_test.sh LWM2MD_BINARY}
node_dir="$(cd "$(dirname "$0")/node" && pwd)"
command -v node >/dev/null || fail "node not installed"
if [ ! -d "$node_dir/node_modules/coap" ]; then
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed"
fi

start_lwm2md "$binary" --set shards=2 --set 'coap.listen=["127.0.0.1","::1"]' \
  --set coap.diagnostic_resource=true
start_capture "$COAP_PORT" "$WORK/npm.pcap"
node --test-reporter=spec "$node_dir/coap_interop.mjs" 127.0.0.1 "$COAP_PORT" \
  || fail "npm coap tests failed over IPv4"
stop_capture
check_capture "$COAP_PORT" "$WORK/npm.pcap"
[ -n "$COAP6_PORT" ] || fail "no IPv6 listener"
node --test-reporter=spec "$node_dir/coap_interop.mjs" ::1 "$COAP6_PORT" \
  || fail "npm coap tests failed over IPv6"
stop_lwm2md
