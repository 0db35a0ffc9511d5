#!/usr/bin/env bash
# Device management actions through the REST API against LwM2M clients on the npm coap package
# (node/test_device.mjs, LwM2M 1.1, 1.0 and 1.1 in queue mode): reads in every encoding,
# composite operations, writes, execute, create/delete, discover, write-attributes, partial
# failures, timeouts, async results and their events, observations, Send, queue mode, and a
# restart in the middle (observations, queued and interrupted calls). node/actions_interop.mjs
# drives it; this script runs lwm2md for it, restarts lwm2md when the driver asks (a line
# "restart" on the driver's fd 3, answered "ready HTTP_PORT COAP_PORT" on its stdin), and has
# tshark judge every datagram lwm2md sent, TLV and SenML payloads included.
source "$(dirname "$0")/lib.sh"
binary=${1:?usage: actions_test.sh LWM2MD_BINARY}
node_dir="$(cd "$(dirname "$0")/node" && pwd)"
command -v node >/dev/null || fail "node not installed"
command -v tshark >/dev/null || fail "tshark not installed"
if [ ! -d "$node_dir/node_modules/coap" ]; then
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed"
fi

# A 2 s awake window and a queue of 2 keep the queue-mode checks short.
lwm2md_args=(--set shards=2 --set 'coap.listen=["127.0.0.1"]'
  --set lwm2m.allow_unknown_endpoints=true --set lwm2m.queue_awake_window_s=2
  --set lwm2m.max_queued_requests_per_endpoint=2)
start_lwm2md "$binary" "${lwm2md_args[@]}"
start_capture "$COAP_PORT" "$WORK/actions.pcap"

# The driver's test report goes to stderr; its stdout is not used. fd 3 carries its requests.
coproc DRIVER {
  LWM2MD_HTTP_PORT=$HTTP_PORT LWM2MD_COAP_PORT=$COAP_PORT \
    exec node --test-reporter=spec "$node_dir/actions_interop.mjs" 3>&1 1>&2
}
driver_pid=$DRIVER_PID
CLEANUP_PIDS+=("$driver_pid")
exec {from_driver}<&"${DRIVER[0]}" {to_driver}>&"${DRIVER[1]}"
# The run takes well under a minute; one still going after three has hung.
deadline=$((SECONDS + 180))
while true; do
  request=""
  IFS= read -r -t 20 request <&"$from_driver" || {
    rc=$?
    [ "$rc" -gt 128 ] || break  # end of file: the driver is done
    [ "$SECONDS" -lt "$deadline" ] || fail "the actions interop driver did not finish within 180 s"
    continue
  }
  case $request in
    restart)
      restart_lwm2md "$binary" "${lwm2md_args[@]}"
      echo "ready $HTTP_PORT $COAP_PORT" >&"$to_driver"
      ;;
    *) fail "unknown request from the driver: $request" ;;
  esac
done
driver_status=0
wait "$driver_pid" || driver_status=$?
exec {from_driver}<&- {to_driver}>&-
[ "$driver_status" -eq 0 ] || fail "actions interop tests failed (driver exit $driver_status)"
[ "$LWM2MD_RESTARTS" -eq 1 ] || fail "the driver restarted lwm2md $LWM2MD_RESTARTS times, not once"

stop_capture
check_capture "$COAP_PORT" "$WORK/actions.pcap"
# Every TLV and SenML payload lwm2md sent (writes, create, composite FETCH and iPATCH bodies)
# went through tshark's dissector for its Content-Format; check_capture saw no malformed one.
tshark_count() {
  tshark -r "$WORK/actions.pcap" -d "udp.port==$COAP_PORT,coap" -Y "udp.srcport == $COAP_PORT && $1" \
    2>/dev/null | wc -l
}
for spec in 'application/vnd.oma.lwm2m+tlv:lwm2mtlv:5' 'application/senml+cbor:cbor:3' \
  'application/senml+json:json:1'; do
  IFS=: read -r ctype layer least <<<"$spec"
  sent=$(tshark_count "coap.payload && coap.opt.ctype == \"$ctype\"")
  dissected=$(tshark_count "coap.opt.ctype == \"$ctype\" && $layer")
  [ "$sent" -ge "$least" ] || fail "only $sent $ctype payloads from lwm2md in the capture"
  [ "$dissected" -eq "$sent" ] || fail "tshark's $layer dissector ran on $dissected of $sent $ctype payloads"
  echo "tshark: $sent $ctype payloads from lwm2md, each dissected by $layer"
done
stop_lwm2md
echo "PASS: actions interop"
