#!/usr/bin/env bash
# Regenerates the certificates and keys of tests/dtls with the openssl CLI: for P-256
# and for RSA-2048, a root CA, an intermediate CA under it, and a server and a client
# certificate under the intermediate; then the SHA-256 thumbprint (of the DER) of each
# client certificate. Valid from 2020 to 2120, so that neither a slow nor a fast clock
# on a test machine makes them invalid. Writes next to itself.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/ca.cnf" <<CNF
[ca]
default_ca = test_ca
[test_ca]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
policy = any
unique_subject = no
copy_extensions = none
[any]
organizationName = supplied
commonName = supplied
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:lwm2md.test
authorityKeyIdentifier = keyid
# A device certificate as LwM2M uses them: the endpoint name as CN and as a URI SAN.
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = clientAuth
subjectAltName = URI:urn:imei:351234567890123
authorityKeyIdentifier = keyid
CNF
: >"$work/index.txt"
echo 1000 >"$work/serial"

# issue <name> <kind> <subject CN> <extensions> <issuer name, or "self">
issue() {
  local name=$1 kind=$2 cn=$3 ext=$4 issuer=$5
  if [ "$kind" = ec ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key"
  else
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$name.key" 2>/dev/null
  fi
  openssl req -new -key "$name.key" -subj "/O=lwm2md test/CN=$cn" -out "$work/$name.csr"
  local signer=(-cert "$issuer.pem" -keyfile "$issuer.key")
  if [ "$issuer" = self ]; then signer=(-selfsign -keyfile "$name.key"); fi
  openssl ca -batch -notext -md sha256 -config "$work/ca.cnf" -extensions "$ext" \
    -startdate 20200101000000Z -enddate 21200101000000Z "${signer[@]}" \
    -in "$work/$name.csr" -out "$name.pem" 2>/dev/null
}

for kind in ec rsa; do
  issue "${kind}_root" "$kind" "lwm2md test root ($kind)" root self
  issue "${kind}_intermediate" "$kind" "lwm2md test intermediate ($kind)" intermediate "${kind}_root"
  issue "${kind}_server" "$kind" "lwm2md.test" server "${kind}_intermediate"
  issue "${kind}_client" "$kind" "urn:imei:351234567890123" client "${kind}_intermediate"
  openssl x509 -in "${kind}_client.pem" -outform DER |
    openssl dgst -sha256 -r | cut -d' ' -f1 >"${kind}_client.sha256"
done
