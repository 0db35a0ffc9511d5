#!/usr/bin/env bash
# Self-test of the LwM2M test device built on the npm coap package (node/test_device.mjs):
# node/test_device_selftest.mjs plays the registrar and the LwM2M server, and tshark checks
# every datagram the devices sent (CoAP, LwM2M TLV, CBOR and JSON dissectors). It needs no
# lwm2md binary; an argument, if given, is ignored.
source "$(dirname "$0")/lib.sh"
node_dir="$(cd "$(dirname "$0")/node" && pwd)"
command -v node >/dev/null || fail "node not installed"
command -v tshark >/dev/null || fail "tshark not installed"
if [ ! -d "$node_dir/node_modules/coap" ]; then
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed"
fi

LWM2MD_DEVICE_CAPTURE="$WORK" node --test --test-reporter=spec \
  "$node_dir/test_device_selftest.mjs" || fail "test device self-test failed"
echo "test_device_selftest: passed"
