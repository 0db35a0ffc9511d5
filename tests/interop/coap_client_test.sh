#!/usr/bin/env bash
# Drives lwm2md with libcoap's coap-client-openssl over IPv4 and IPv6, on both network
# backends: /.well-known/core, a Block2 GET larger than 4 KiB, a Block1 PUT read back
# intact, a NON request, 4.04, and an empty CON ping answered with RST. tshark checks that
# every datagram lwm2md sent is valid CoAP.
source "$(dirname "$0")/lib.sh"
binary=${1:?usage: coap_client_test.sh LWM2MD_BINARY}
client=coap-client-openssl
command -v $client >/dev/null || fail "$client not installed (Debian package libcoap3-bin)"

for backend in io_uring epoll; do
  echo "== backend $backend"
  start_lwm2md "$binary" --set shards=2 --set net.backend=$backend \
    --set 'coap.listen=["127.0.0.1","::1"]' --set coap.diagnostic_resource=true
  grep -q "backend $backend" "$WORK/lwm2md.log" || fail "lwm2md did not use backend $backend"
  base="coap://127.0.0.1:$COAP_PORT"
  start_capture "$COAP_PORT" "$WORK/$backend.pcap"

  # RFC 6690 discovery.
  core=$($client -B 5 "$base/.well-known/core")
  [[ "$core" == *"</diag>"* ]] || fail "/.well-known/core lacks </diag>: $core"
  echo "well-known/core: $core"

  # Block2: the diagnostic resource starts with an 8 KiB body; ask for 256-byte blocks.
  $client -B 5 -b 256 -o "$WORK/diag.out" "$base/diag"
  size=$(stat -c %s "$WORK/diag.out")
  [ "$size" -gt 4096 ] || fail "Block2 GET of /diag returned $size bytes, want > 4096"
  echo "block2 GET: $size bytes"

  # Block1: PUT 6000 bytes in 512-byte blocks, then read them back (default block size).
  head -c 6000 /dev/urandom | base64 -w 0 | head -c 6000 >"$WORK/put.in"
  $client -B 5 -m put -b 512 -f "$WORK/put.in" "$base/diag"
  $client -B 5 -o "$WORK/put.out" "$base/diag"
  cmp -s "$WORK/put.in" "$WORK/put.out" || fail "Block1 PUT of 6000 bytes did not read back intact"
  echo "block1 PUT: 6000 bytes stored and read back"

  # NON request gets an answer too.
  non=$($client -B 5 -N "$base/.well-known/core")
  [[ "$non" == *"</diag>"* ]] || fail "NON GET of /.well-known/core failed: $non"

  # Unknown path: 4.04 (coap-client prints the code on stderr).
  if $client -B 5 "$base/no/such/resource" >"$WORK/404.out" 2>&1; then :; fi
  grep -q "4.04" "$WORK/404.out" || fail "GET of an unknown path did not answer 4.04: $(cat "$WORK/404.out")"

  # IPv6.
  if [ -n "$COAP6_PORT" ]; then
    core6=$($client -B 5 "coap://[::1]:$COAP6_PORT/.well-known/core")
    [[ "$core6" == *"</diag>"* ]] || fail "IPv6 /.well-known/core failed: $core6"
    echo "IPv6: ok"
  else
    fail "no 'listening coap [::1]:PORT' line"
  fi

  # Separate response and CON ping: /diag?delay=3 answers with an empty ACK at once and
  # the response three seconds later (RFC 7252 §5.2.2); while it waits, -K 1 makes the
  # client send an empty CON after each idle second, which RFC 7252 §4.3 answers with RST.
  # (A body in one datagram: libcoap does not go on with a Block2 transfer whose first block
  # came in a separate response.)
  $client -B 5 -m put -e "separate response body" "$base/diag"
  delayed=$(timeout 15 $client -B 8 -K 1 "$base/diag?delay=3") || fail "delayed GET failed"
  [ "$delayed" = "separate response body" ] || fail "separate response body differs: $delayed"
  echo "separate response: ok"

  stop_capture
  stop_lwm2md
  check_capture "$COAP_PORT" "$WORK/$backend.pcap"
  pings=$(tshark -r "$WORK/$backend.pcap" -d "udp.port==$COAP_PORT,coap" \
    -Y "udp.dstport == $COAP_PORT && coap.type == 0 && coap.code == 0" -T fields -e coap.mid 2>/dev/null | sort -u)
  [ -n "$pings" ] || fail "coap-client sent no CON ping"
  for mid in $pings; do
    rst=$(tshark -r "$WORK/$backend.pcap" -d "udp.port==$COAP_PORT,coap" \
      -Y "udp.srcport == $COAP_PORT && coap.type == 3 && coap.mid == $mid" 2>/dev/null | wc -l)
    [ "$rst" -ge 1 ] || fail "CON ping mid $mid was not answered with RST"
  done
  echo "CON ping: answered with RST"
  separate=$(tshark -r "$WORK/$backend.pcap" -d "udp.port==$COAP_PORT,coap" \
    -Y "udp.srcport == $COAP_PORT && coap.type == 0 && coap.code == 69" 2>/dev/null | wc -l)
  [ "$separate" -ge 1 ] || fail "no separate (CON 2.05) response in the capture"
  blocks=$(tshark -r "$WORK/$backend.pcap" -d "udp.port==$COAP_PORT,coap" \
    -Y "udp.srcport == $COAP_PORT && coap.opt.block_number" 2>/dev/null | wc -l)
  [ "$blocks" -gt 10 ] || fail "expected block-wise responses in the capture, saw $blocks"
done
echo "coap_client_test: 1 passed, 0 failed"
