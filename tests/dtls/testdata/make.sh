#!/usr/bin/env bash
# Regenerates the certificates and keys of tests/dtls with the openssl CLI: for P-256
# and for RSA-2048, a root CA, an intermediate CA under it, and a server and a client
# certificate under the intermediate; then the SHA-256 thumbprint (of the DER) of each
# client certificate. Valid from 2020 to 2120, so that neither a slow nor a fast clock
# on a test machine makes them invalid. Then the cert_* fixtures of certificates_test.cc
# (device certificates for thumbprint and CA mode, expired and foreign ones), signed by
# ec_intermediate where they need a CA. Writes next to itself.
# `make.sh certificates` remakes only the cert_* files, with the ec_* CAs as they are.
set -euo pipefail
only=${1:-all}
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
[loose]
organizationName = supplied
commonName = optional
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
# Device certificates of certificates_test.cc.
[device]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
# No CN: the endpoint name comes from the first dNSName or URI (the email is skipped).
[device_san]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
subjectAltName = email:dev@lwm2md.test,URI:urn:dev:san-first,DNS:san-second.lwm2md.test
# A CN and a different dNSName: the CN names the endpoint.
[device_cn_san]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
subjectAltName = DNS:dns-name.lwm2md.test
CNF
: >"$work/index.txt"
echo 1000 >"$work/serial"

# issue <name> <kind> <subject CN, or "" for none> <extensions> <issuer name, or "self">
#   [<start> <end>] (default 2020 to 2120)
issue() {
  local name=$1 kind=$2 cn=$3 ext=$4 issuer=$5
  local start=${6:-20200101000000Z} end=${7:-21200101000000Z}
  if [ "$kind" = ec ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key"
  else
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$name.key" 2>/dev/null
  fi
  local subject="/O=lwm2md test/CN=$cn"
  if [ -z "$cn" ]; then subject="/O=lwm2md test"; fi
  openssl req -new -key "$name.key" -subj "$subject" -out "$work/$name.csr"
  local signer=(-cert "$issuer.pem" -keyfile "$issuer.key")
  if [ "$issuer" = self ]; then signer=(-selfsign -keyfile "$name.key"); fi
  openssl ca -batch -notext -md sha256 -config "$work/ca.cnf" -extensions "$ext" -policy loose \
    -startdate "$start" -enddate "$end" "${signer[@]}" \
    -in "$work/$name.csr" -out "$name.pem" 2>/dev/null
}
# The SHA-256 thumbprint of a certificate's DER, as a device's endpoint configuration has it.
thumbprint() {
  openssl x509 -in "$1.pem" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1 >"$1.sha256"
}

# The cert_* fixtures.
certificates() {
  # Thumbprint mode: a self-signed device certificate, as devices usually have.
  issue cert_selfsigned ec selfsigned-dev device self
  thumbprint cert_selfsigned
  # Valid in 2000 only, under the test CA: refused in both modes.
  issue cert_expired ec expired-dev device ec_intermediate 20000101000000Z 20010101000000Z
  thumbprint cert_expired
  # A CA nobody uploads, under the very name of the test root (what an attacker would
  # try), and a device under it.
  issue cert_foreign_root ec "lwm2md test root (ec)" root self
  issue cert_foreign_client ec foreign-dev device cert_foreign_root
  # Names: no CN (the first dNSName or URI counts), and a CN beside a dNSName (the CN counts).
  issue cert_san ec "" device_san ec_intermediate
  issue cert_cn_san ec cn-name device_cn_san ec_intermediate
  # A CA certificate that expired: refused at upload.
  issue cert_expired_root ec "expired root" root self 20000101000000Z 20010101000000Z
}

if [ "$only" = certificates ]; then
  certificates
  exit 0
fi

for kind in ec rsa; do
  issue "${kind}_root" "$kind" "lwm2md test root ($kind)" root self
  issue "${kind}_intermediate" "$kind" "lwm2md test intermediate ($kind)" intermediate "${kind}_root"
  issue "${kind}_server" "$kind" "lwm2md.test" server "${kind}_intermediate"
  issue "${kind}_client" "$kind" "urn:imei:351234567890123" client "${kind}_intermediate"
  thumbprint "${kind}_client"
done
certificates
