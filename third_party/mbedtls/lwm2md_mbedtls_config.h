// mbedTLS 3.6 configuration for lwm2md.
//
// A complete configuration, not a diff: tools/setup builds mbedTLS with
// MBEDTLS_CONFIG_FILE pointing at a copy of this file, which replaces
// mbedtls/mbedtls_config.h. Every user of the libraries compiles with the same copy
// (the installed CMake targets carry the definition). mbedtls/build_info.h includes this
// file, adjusts derived options and runs check_config.h, so nothing here includes them.
//
// What it is for: DTLS 1.2 (RFC 6347) for LwM2M (OMA LwM2M 1.1/1.2 Transport §5.2), as
// a server and, for tests and benchmarks, as a client, with the suites LwM2M mandates
// (TLS_PSK_WITH_AES_128_CCM_8, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8) and the usual AEAD
// suites, stateless cookies, RFC 9146 Connection IDs and session serialisation.
// Everything else is off: less code to audit and less memory per session.
//
// Editing this file changes the ABI of the mbedTLS structures: run tools/setup afterwards
// (CMake refuses to configure until the installed copy matches).

#pragma once

// ---- System support --------------------------------------------------------------------

// Assembly for bignum multiplication and the AES-NI code path.
#define MBEDTLS_HAVE_ASM
// Session start times, cookie lifetimes, and certificate validity periods
// (MBEDTLS_HAVE_TIME_DATE checks notBefore/notAfter against the wall clock).
#define MBEDTLS_HAVE_TIME
#define MBEDTLS_HAVE_TIME_DATE

// calloc/free can be replaced at run time (mbedtls_platform_set_calloc_free): lets us
// count the heap of DTLS sessions, per shard, and lets benchmarks measure it.
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_PLATFORM_MEMORY

// No MBEDTLS_THREADING_C: a shard owns its DTLS contexts, configuration, cookie key and
// random generator outright and never shares them with another thread, so mbedTLS
// needs no locks (and takes none on the packet path).

// ---- Random numbers --------------------------------------------------------------------

// The kernel's getrandom() feeds one CTR_DRBG per shard; HMAC_DRBG is what
// deterministic ECDSA (RFC 6979) is built on.
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_CTR_DRBG_C
#define MBEDTLS_HMAC_DRBG_C

// ---- Symmetric ciphers and modes -------------------------------------------------------

// AES for every suite we offer; AES-NI where the CPU has it (run-time detection).
#define MBEDTLS_AES_C
#define MBEDTLS_AESNI_C
#define MBEDTLS_CIPHER_C
// CCM and CCM_8 (RFC 6655, 7251): the suites LwM2M mandates.
#define MBEDTLS_CCM_C
// GCM (RFC 5288, 5289): the suites most TLS stacks prefer; 4-bit tables, since the 8-bit
// ones (MBEDTLS_GCM_LARGE_TABLE) cost about 7.5 KiB more in every GCM session.
#define MBEDTLS_GCM_C
// ChaCha20-Poly1305 (RFC 7905): fast on devices without AES instructions.
#define MBEDTLS_CHACHA20_C
#define MBEDTLS_POLY1305_C
#define MBEDTLS_CHACHAPOLY_C
// CBC only for TLS_PSK_WITH_AES_128_CBC_SHA256, which LwM2M lists for PSK devices that
// lack CCM. Such sessions cannot be serialised (mbedtls_ssl_context_save wants AEAD).
#define MBEDTLS_CIPHER_MODE_CBC
#define MBEDTLS_CIPHER_PADDING_PKCS7

// ---- Hashes ----------------------------------------------------------------------------

#define MBEDTLS_MD_C
// SHA-256: the TLS 1.2 PRF of every *_SHA256 and CCM suite, HMAC for the CBC suite and
// the cookies, certificate signatures, and the thumbprint of a peer certificate.
#define MBEDTLS_SHA256_C
// Our own SHA-256 compression function (sha256_process.c beside this file, which
// tools/setup adds to libmbedcrypto.a): the x86-64 SHA extensions when the CPU has them,
// portable C otherwise. mbedTLS 3.6 uses SHA instructions only on Arm, and with its C
// code SHA-256 (the PRF's HMAC) was half of the server's CPU in a PSK handshake.
#define MBEDTLS_SHA256_PROCESS_ALT
// SHA-384: the PRF of the *_SHA384 suites and ecdsa-with-SHA384 certificate chains.
// (mbedTLS implements it in sha512.c; SHA-512 itself stays off.)
#define MBEDTLS_SHA384_C
// No SHA-1 and no MD5: TLS 1.2 needs neither, and the default X.509 profile rejects
// SHA-1 signatures anyway. Self-signed roots carrying a SHA-1 signature still work: a
// trust anchor's own signature is never checked.

// ---- Public-key cryptography -----------------------------------------------------------

#define MBEDTLS_BIGNUM_C
#define MBEDTLS_OID_C
#define MBEDTLS_ASN1_PARSE_C
// ECDSA signatures are ASN.1 encoded.
#define MBEDTLS_ASN1_WRITE_C

// Elliptic curves: P-256 (LwM2M's curve for ECDHE_ECDSA), P-384 (CA chains), and
// X25519 for ECDHE with clients that prefer it.
#define MBEDTLS_ECP_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECDSA_C
// RFC 6979: signatures do not depend on the quality of a random number.
#define MBEDTLS_ECDSA_DETERMINISTIC

// RSA for ECDHE_RSA suites and for CA chains signed with RSA (PKCS#1 v1.5 and PSS).
// No RSA key generation (MBEDTLS_GENPRIME): the server loads RSA keys; the one key it
// makes itself is a P-256 key (below).
#define MBEDTLS_RSA_C
#define MBEDTLS_PKCS1_V15
#define MBEDTLS_PKCS1_V21

#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
// Writing keys and certificates: with no dtls.certificate_file configured, the server
// makes itself a self-signed P-256 certificate on its first start and keeps it (PEM) in
// the data directory (src/dtls/certificates.h), so that ECDHE-ECDSA works out of the box.
#define MBEDTLS_PK_WRITE_C
#define MBEDTLS_PEM_WRITE_C

// ---- Certificates ----------------------------------------------------------------------

// Certificates and keys are parsed from memory (PEM or DER): the configuration layer
// reads the files, so MBEDTLS_FS_IO stays off.
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_BASE64_C
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#define MBEDTLS_X509_RSASSA_PSS_SUPPORT
// The generated server certificate (above).
#define MBEDTLS_X509_CREATE_C
#define MBEDTLS_X509_CRT_WRITE_C
// Client certificates are checked against the CA certificates uploaded through the API,
// which change while the server runs: each verification asks a callback for the trust
// anchors that may have signed the certificate (mbedtls_ssl_conf_ca_cb), parsed from the
// current immutable CA set into a list of the handshake's own. No parsed chain is shared
// between shard threads, and a device whose certificate is known by its thumbprint is
// verified with no CA at all (a static chain would have to be non-empty).
#define MBEDTLS_X509_TRUSTED_CERTIFICATE_CALLBACK

// ---- TLS / DTLS ------------------------------------------------------------------------

#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_SRV_C
// The client side serves the tests and benchmarks, which talk to the server in memory.
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_SSL_PROTO_DTLS
// No TLS 1.3: LwM2M 1.2 allows DTLS 1.3, but mbedTLS 3.6 has TLS 1.3 only, not DTLS 1.3.

// Key exchanges: PSK (LwM2M security mode 0) and certificates (mode 2), with ECDSA or
// RSA server keys.
#define MBEDTLS_KEY_EXCHANGE_PSK_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED

// RFC 6347 §4.2.1: a HelloVerifyRequest cookie before any state is kept for a peer.
// MBEDTLS_SSL_COOKIE_C is the HMAC-SHA-256 cookie (key per shard, 60 s lifetime).
#define MBEDTLS_SSL_DTLS_HELLO_VERIFY
#define MBEDTLS_SSL_COOKIE_C
// RFC 6347 §4.1.2.6: sliding-window replay protection.
#define MBEDTLS_SSL_DTLS_ANTI_REPLAY
// RFC 6347 §4.2.8: a device that reboots and reconnects from the same address and port
// starts a new handshake on the existing context.
#define MBEDTLS_SSL_DTLS_CLIENT_PORT_REUSE
// RFC 9146 Connection IDs: a device behind a NAT keeps its session when its address
// changes. COMPAT 0 selects the RFC's record format (content type tls12_cid, 25), not
// the draft's. Known limit of 3.6 (Mbed-TLS/mbedtls#6113): a client Finished that comes
// packed behind a fragmented message is dropped, so such handshakes (large certificate
// chains) finish only after the client's first retransmission.
#define MBEDTLS_SSL_DTLS_CONNECTION_ID
#define MBEDTLS_SSL_DTLS_CONNECTION_ID_COMPAT 0
// mbedtls_ssl_context_save/load: idle sessions go to LMDB and survive restarts
// (DESIGN.md). AEAD suites only.
#define MBEDTLS_SSL_CONTEXT_SERIALIZATION
// RFC 6066 max_fragment_length, which constrained devices send; with variable buffer
// lengths the session's buffers shrink to the negotiated size after the handshake.
#define MBEDTLS_SSL_MAX_FRAGMENT_LENGTH
#define MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH
// RFC 7627 (extended master secret) and RFC 7366 (encrypt-then-MAC, for the CBC suite).
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
#define MBEDTLS_SSL_ENCRYPT_THEN_MAC
// Send the precise alert for each failure: devices log them.
#define MBEDTLS_SSL_ALL_ALERT_MESSAGES

// Off on purpose:
// - MBEDTLS_SSL_KEEP_PEER_CERTIFICATE: keeping each peer's certificate costs about a
//   kilobyte per session. Without it mbedTLS keeps only its SHA-256 digest. What the
//   server needs from the certificate (its SHA-256 thumbprint, CN and subjectAltName for
//   the endpoint name) it takes in the verify callback (mbedtls_ssl_set_verify), which
//   sees the whole chain during the handshake, depth 0 being the peer's certificate.
// - MBEDTLS_SSL_RENEGOTIATION: RFC 7457 attacks, and no LwM2M client needs it.
// - MBEDTLS_SSL_SESSION_TICKETS, MBEDTLS_SSL_TICKET_C, MBEDTLS_SSL_CACHE_C: the server
//   keeps sessions itself (serialised contexts; session-ID resumption through the cache
//   callbacks of mbedtls_ssl_conf_session_cache needs no built-in cache), and tickets
//   would add a key to rotate.
// - MBEDTLS_SSL_SERVER_NAME_INDICATION, MBEDTLS_SSL_ALPN, MBEDTLS_SSL_DTLS_SRTP,
//   MBEDTLS_SSL_KEYING_MATERIAL_EXPORT: nothing in LwM2M over DTLS 1.2 uses them.
// - MBEDTLS_NET_C, MBEDTLS_TIMING_C: the shard owns the sockets and drives the
//   retransmission timers itself (mbedtls_ssl_set_bio, mbedtls_ssl_set_timer_cb).
// - MBEDTLS_DEBUG_C: verbose and slow; MBEDTLS_ERROR_C below names the failures.
// - MBEDTLS_PSA_CRYPTO_C, MBEDTLS_USE_PSA_CRYPTO: TLS 1.2 runs on the classic API, which
//   needs no global key store and no psa_crypto_init().

// Error codes as text in logs and API errors (mbedtls_strerror).
#define MBEDTLS_ERROR_C
// mbedtls_version_get_string for the startup log and the build-info metric.
#define MBEDTLS_VERSION_C

// ---- Sizes -----------------------------------------------------------------------------

// Record plaintext, each direction. 2 KiB holds the largest CoAP message we exchange (a
// 1024-byte Block1/Block2 payload plus header, token and options, about 1.2 KiB) and the
// handshake messages of two-certificate chains: leaf and intermediate take about 1 KiB
// with P-256 and 1.8 KiB with RSA-2048 (tests/dtls check both, both ways, whole and in
// fragments). A handshake message above 2 KiB (three RSA certificates, say) cannot be
// sent, so the server's own chain must stay below it (checked too); from a device, it is
// ignored and the handshake times out; an oversized record is dropped. The default of
// 16 KiB per direction would make every session cost 32 KiB instead of 6.
#define MBEDTLS_SSL_IN_CONTENT_LEN 2048
#define MBEDTLS_SSL_OUT_CONTENT_LEN 2048
// Heap for reassembling fragmented handshake messages and buffering early ones, per
// handshake: two messages of maximal size, each with its 1/8 reassembly bitmap. It also
// bounds what a peer can make the server hold during a handshake.
#define MBEDTLS_SSL_DTLS_MAX_BUFFERING 4608
// Connection IDs: ours are 8 bytes (incoming records carry them); the device chooses its
// own, up to the default 32 bytes.
#define MBEDTLS_SSL_CID_IN_LEN_MAX 8
#define MBEDTLS_SSL_CID_OUT_LEN_MAX 32
// No padding of records with a CID (RFC 9146 §4 allows it, the default pads to 16 bytes):
// devices pay for every byte on NB-IoT and LTE-M links, and LwM2M traffic is no secret
// by length.
#define MBEDTLS_SSL_CID_TLS1_3_PADDING_GRANULARITY 1
// src/lwm2m/endpoint_config.h: kMaxPskKeyBytes = 64.
#define MBEDTLS_PSK_MAX_LEN 64

// The suites, in the server's order of preference. LwM2M's mandatory CCM_8 suites first
// (constrained devices are tested with them, and their 8-byte tag saves 8 bytes a
// record), then the other AEAD suites, then PSK over CBC, which only devices without any
// AEAD suite need.
// clang-format off
#define MBEDTLS_SSL_CIPHERSUITES                           \
  MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8,                      \
  MBEDTLS_TLS_PSK_WITH_AES_128_CCM,                        \
  MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256,                 \
  MBEDTLS_TLS_PSK_WITH_AES_256_GCM_SHA384,                 \
  MBEDTLS_TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,           \
  MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,              \
  MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,         \
  MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,         \
  MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,   \
  MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM,                \
  MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_CCM,                \
  MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8,              \
  MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,           \
  MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,           \
  MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,     \
  MBEDTLS_TLS_PSK_WITH_AES_128_CBC_SHA256
// clang-format on
