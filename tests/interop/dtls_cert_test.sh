#!/usr/bin/env bash
# CoAP over DTLS 1.2 with client certificates against libcoap's coap-client-openssl (OpenSSL's
# DTLS), certificates made here with the openssl CLI. Thumbprint mode: a self-signed device
# certificate whose SHA-256 an endpoint created through the API holds. CA mode: a CA uploaded
# through the API, and a device certificate it signed whose CN names the endpoint (which is
# not configured at all). The server's certificate is the one lwm2md generates on its first
# start. Refused and counted: an unknown thumbprint, an expired certificate (known by its
# thumbprint and signed by the CA), a certificate of a foreign CA bearing the CA's very
# name, a CA-signed certificate for a PSK endpoint, and a CA-signed certificate whose CN
# names another endpoint than the one it registers (4.03). tshark reads an ECDHE-ECDSA suite
# in every ServerHello and nothing malformed.
source "$(dirname "$0")/lib.sh"
binary=${1:?usage: dtls_cert_test.sh LWM2MD_BINARY}
client=coap-client-openssl
command -v "$client" >/dev/null || fail "$client not installed"
command -v tshark >/dev/null || fail "tshark not installed"
command -v openssl >/dev/null || fail "openssl not installed"
metric() {  # sum of a family's samples in /metrics, label filter optional
  api_curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" |
    awk -v f="$1" -v l="${2:-}" '($1 == f || index($1, f "{") == 1) && index($1, l) { s += $2 } END { print s + 0 }'
}

# ---- certificates -----------------------------------------------------------------------
certs=$WORK/certs
mkdir -p "$certs"
cd "$certs"
device_ext=$'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth'
printf '%s\n' "$device_ext" >device.ext
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
# selfsigned NAME CN
selfsigned() {
  newkey "$1"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 30 -out "$1.pem" \
    -addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature
}
# ca NAME CN
ca() {
  newkey "$1"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 30 -out "$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
# signed NAME CN ISSUER
signed() {
  newkey "$1"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 30 \
    -extfile device.ext -out "$1.pem" 2>/dev/null
}
thumbprint() { openssl x509 -noout -fingerprint -sha256 -in "$1.pem" | cut -d= -f2; }

selfsigned thumb "thumb-dev"        # thumbprint mode
selfsigned stranger "stranger-dev"  # nobody knows its thumbprint
ca interop-ca "lwm2md interop CA"
signed ca-dev "ca-dev" interop-ca    # CA mode, not configured
signed spoof "other-dev" interop-ca  # CA-signed, registers as ca-dev
signed psk-cert "psk-dev" interop-ca # CA-signed, names a PSK endpoint
ca foreign-ca "lwm2md interop CA"    # the CA's name, another key
signed foreign-dev "foreign-dev" foreign-ca
# Expired: valid in 2020 only (openssl x509 cannot back-date; openssl ca can).
newkey expired
openssl req -new -key expired.key -subj "/CN=expired-dev" -out expired.csr
cat >ca.cnf <<CNF
[ca]
default_ca = interop
[interop]
database = $certs/index.txt
new_certs_dir = $certs
serial = $certs/serial
policy = any
copy_extensions = none
[any]
commonName = supplied
[device]
$device_ext
CNF
: >index.txt
echo 1000 >serial
openssl ca -batch -notext -md sha256 -config ca.cnf -extensions device -cert interop-ca.pem \
  -keyfile interop-ca.key -startdate 20200101000000Z -enddate 20201231000000Z \
  -in expired.csr -out expired.pem 2>/dev/null
openssl x509 -noout -checkend 0 -in expired.pem >/dev/null && fail "expired.pem is not expired"
cd - >/dev/null

# ---- lwm2md -----------------------------------------------------------------------------
start_lwm2md "$binary" --set shards=2 --set 'coap.listen=["127.0.0.1"]'
[ -n "$COAPS_PORT" ] || fail "no 'listening coaps 127.0.0.1:PORT' line in the log"
grep -q "DTLS certificate .*dtls-server.pem (generated, self-signed)" "$WORK/lwm2md.log" ||
  fail "no generated server certificate logged"
[ "$(stat -c %a "$WORK/data/dtls-server.key")" = 600 ] || fail "dtls-server.key is not mode 0600"
start_capture "$COAPS_PORT" "$WORK/dtls.pcap"

api() {  # method path [curl options...]: the body on stdout, the status code on the last line
  local method=$1 path=$2
  shift 2
  api_curl -sS -X "$method" -w '\n%{http_code}' "$@" "http://127.0.0.1:$HTTP_PORT$path"
}
status_of() { tail -n1 <<<"$1"; }
create_endpoint() {
  local out
  out=$(api POST /api/v1/endpoints -H 'Content-Type: application/json' -d "$1")
  [ "$(status_of "$out")" = 201 ] || fail "POST /api/v1/endpoints $1: $out"
}
# openssl's colon form, as an operator copies it: the API normalises it.
create_endpoint "{\"name\":\"thumb-dev\",\"securityMode\":\"x509\",\"certificateThumbprint\":\"$(thumbprint "$certs/thumb")\"}"
create_endpoint "{\"name\":\"expired-dev\",\"securityMode\":\"x509\",\"certificateThumbprint\":\"$(thumbprint "$certs/expired")\"}"
create_endpoint '{"name":"psk-dev","securityMode":"psk","pskIdentity":"psk-dev-id","pskKey":"00112233445566778899aabbccddeeff"}'
# A thumbprint is unique: a second endpoint cannot take it (409, naming the holder).
out=$(api POST /api/v1/endpoints -H 'Content-Type: application/json' \
  -d "{\"name\":\"thumb-dev-2\",\"securityMode\":\"x509\",\"certificateThumbprint\":\"$(thumbprint "$certs/thumb")\"}")
[ "$(status_of "$out")" = 409 ] && grep -q 'already used by endpoint \\"thumb-dev\\"' <<<"$out" ||
  fail "a duplicate thumbprint was not refused with 409: $out"

# The CA, uploaded as PEM; a device certificate is no CA (400).
out=$(api POST /api/v1/certificates/ca -H 'Content-Type: application/x-pem-file' \
  --data-binary @"$certs/interop-ca.pem")
[ "$(status_of "$out")" = 201 ] || fail "CA upload: $out"
ca_thumbprint=$(sed -n 's/.*"thumbprint":"\([0-9a-f]*\)".*/\1/p' <<<"$out")
[ "$ca_thumbprint" = "$(thumbprint "$certs/interop-ca" | tr -d : | tr A-F a-f)" ] ||
  fail "the CA's thumbprint in $out is not openssl's"
out=$(api POST /api/v1/certificates/ca -H 'Content-Type: application/x-pem-file' \
  --data-binary @"$certs/ca-dev.pem")
[ "$(status_of "$out")" = 400 ] && grep -q 'not a CA certificate' <<<"$out" ||
  fail "a device certificate was taken as a CA: $out"
out=$(api GET /api/v1/certificates/ca)
grep -q "\"subject\":\"CN=lwm2md interop CA\"" <<<"$out" || fail "CA list: $out"

api_curl -fsSN "http://127.0.0.1:$HTTP_PORT/api/v1/events?type=lwm2m.register" \
  >"$WORK/events.txt" 2>"$WORK/events.err" &
CLEANUP_PIDS+=($!)
sleep 0.3

coaps() {  # certificate-name method path [coap-client options...]
  local name=$1 method=$2 path=$3
  shift 3
  # -n: the client does not check the server's self-signed certificate.
  timeout 20 "$client" -v 6 -c "$certs/$name.pem" -j "$certs/$name.key" -n -m "$method" "$@" \
    "coaps://127.0.0.1:$COAPS_PORT/$path" 2>&1
}
register() {  # certificate-name endpoint
  coaps "$1" post "rd?ep=$2&lt=300&lwm2m=1.1&b=U" -t 40 -e '</1/0>,</3/0>'
}

# Thumbprint mode: Register, then Update in a new session.
out=$(register thumb thumb-dev) || true
grep -q '2\.01' <<<"$out" || fail "thumbprint mode: Register not answered 2.01: $out"
location=$(grep -o 'Location-Path:[^], ]*' <<<"$out" | sed 's/^Location-Path://' | paste -sd/)
[ -n "$location" ] || fail "no Location-Path in: $out"
out=$(coaps thumb post "$location?lt=300") || true
grep -q '2\.04' <<<"$out" || fail "thumbprint mode: Update not 2.04: $out"
# CA mode: an endpoint nobody configured, vouched for by the uploaded CA.
out=$(register ca-dev ca-dev) || true
grep -q '2\.01' <<<"$out" || fail "CA mode: Register not answered 2.01: $out"
sleep 0.3
grep -q '"endpoint":"thumb-dev".*"credentials":"primary"' "$WORK/events.txt" ||
  fail "register event of thumb-dev: $(cat "$WORK/events.txt")"
grep -q '"endpoint":"ca-dev".*"credentials":"primary"' "$WORK/events.txt" ||
  fail "register event of ca-dev: $(cat "$WORK/events.txt")"
endpoint=$(api_curl -fsS "http://127.0.0.1:$HTTP_PORT/api/v1/endpoints/thumb-dev")
grep -q '"status":"connected"' <<<"$endpoint" || fail "thumb-dev after Register: $endpoint"

# Refused in the handshake (bad_certificate): unknown thumbprint, expired (in both modes),
# a foreign CA of the same name, a CA-signed certificate naming a PSK endpoint.
failures_before=$(metric lwm2md_dtls_handshake_failures_total 'reason="bad_certificate"')
for name in stranger expired foreign-dev psk-cert; do
  out=$(coaps "$name" get .well-known/core) || true
  grep -q '</rd>' <<<"$out" && fail "$name: its certificate was let in: $out"
done
grep -q 'alert.*unknown ca' <<<"$(coaps stranger get .well-known/core)" ||
  fail "an unknown thumbprint was not answered with an unknown_ca alert"
grep -q 'alert.*certificate expired' <<<"$(coaps expired get .well-known/core)" ||
  fail "an expired certificate was not answered with a certificate_expired alert"
# Refused at Register: the CA vouches for "other-dev", which registers as ca-dev (4.03).
out=$(register spoof ca-dev) || true
grep -q '4\.03' <<<"$out" || fail "a CA-signed certificate for another name was not refused with 4.03: $out"
grep -q '"endpoint":"other-dev"' "$WORK/events.txt" && fail "other-dev registered"

failures=$(metric lwm2md_dtls_handshake_failures_total 'reason="bad_certificate"')
[ $((failures - failures_before)) -ge 6 ] ||
  fail "refused certificates counted $((failures - failures_before)) times as bad_certificate, not 6"
[ "$(metric lwm2md_registrations_rejected_total 'reason="forbidden"')" -ge 1 ] ||
  fail "the spoofed name is not counted as forbidden"
grep -q 'security: CA-signed certificate "other-dev" .* tried to register as "ca-dev"' \
  "$WORK/lwm2md.log" || fail "no security warning for the spoofed name"

# Deleting the CA shuts CA mode at once, without a restart.
out=$(api DELETE "/api/v1/certificates/ca/$ca_thumbprint")
[ "$(status_of "$out")" = 204 ] || fail "DELETE CA: $out"
out=$(register ca-dev ca-dev) || true
grep -q '2\.01' <<<"$out" && fail "CA mode still open after the CA was deleted: $out"
[ "$(metric lwm2md_dtls_handshake_failures_total 'reason="bad_certificate"')" -gt "$failures" ] ||
  fail "the refusal after the CA's deletion is not counted"

stop_capture
# tshark's DTLS dissector reads our handshakes: every ServerHello chose an ECDHE-ECDSA suite
# (0xc0..: 0xc0ae is TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8), and nothing we sent is malformed.
suites=$(tshark -r "$WORK/dtls.pcap" -d "udp.port==$COAPS_PORT,dtls" \
  -Y "udp.srcport == $COAPS_PORT && dtls.handshake.type == 2" \
  -T fields -e dtls.handshake.ciphersuite 2>/dev/null | sort -u)
[ -n "$suites" ] || fail "tshark sees no ServerHello from lwm2md"
names=$(tshark -r "$WORK/dtls.pcap" -d "udp.port==$COAPS_PORT,dtls" \
  -Y "udp.srcport == $COAPS_PORT && dtls.handshake.type == 2" -V 2>/dev/null |
  sed -n 's/.*Cipher Suite: \(TLS_[A-Z0-9_]*\).*/\1/p' | sort -u)
for suite in $suites; do
  [[ $suite == 0xc0* ]] || fail "ServerHello cipher suite $suite is not ECDHE-ECDSA (0xc0..)"
done
grep -qv '^TLS_ECDHE_ECDSA_' <<<"$names" && fail "ServerHello suites: $names"
echo "tshark: our ServerHellos chose $(paste -sd' ' <<<"$names") ($(paste -sd' ' <<<"$suites"))"
malformed=$(tshark -r "$WORK/dtls.pcap" -d "udp.port==$COAPS_PORT,dtls" \
  -Y "udp.srcport == $COAPS_PORT && (_ws.malformed || _ws.expert.severity >= \"Warning\")" 2>/dev/null | wc -l)
[ "$malformed" -eq 0 ] || fail "tshark finds $malformed malformed datagrams from lwm2md"
echo "PASS: dtls certificate interop"
