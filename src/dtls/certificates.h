#pragma once
// Certificates for DTLS (LwM2M security mode "Certificate", Transport TS 1.1.1 §5.2.8.3):
//
// - The server's own chain and key: from dtls.certificate_file and dtls.private_key_file
//   (PEM, leaf first), or generated once, self-signed ECDSA P-256, in the data directory
//   (dtls-server.pem, dtls-server.key), so that the ECDHE-ECDSA suites work out of the box.
//   A chain whose Certificate message would not fit mbedTLS's record buffer is refused at
//   load: mbedTLS could never send it.
// - Client certificates, checked during the handshake (ShardCertificates):
//   * thumbprint mode ("x509" endpoints): the SHA-256 of the leaf certificate's DER names
//     the endpoint. No CA is involved; a self-signed device certificate is the usual case.
//   * CA mode ("x509-ca" endpoints and devices with no configuration): the certificate
//     chains to a CA certificate uploaded through the API (CaStore), and the endpoint is the
//     name the certificate carries (CertificateEndpointName). An endpoint configured for
//     "psk" or "x509" cannot be entered that way: it has a credential of its own.
//   Expired and not-yet-valid certificates are refused in both modes.
//
// Threads: CaStore is shared by every thread (reads lock-free or under a short mutex,
// writes on API threads, waiting for the commit). ServerCertificate and CaSet are immutable
// once made and shared freely. ShardCertificates and what it parses live on one shard
// thread: mbedTLS is built without threading, and even signing writes into the key's
// structures (cached curve tables), so every shard parses the credential for itself.
//
// Store layout (store/README.md):
//   Table::kSettings  "ca/<thumbprint>"  → the CA certificate's DER

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/store.h"

struct mbedtls_ssl_config;
struct mbedtls_ssl_context;
struct mbedtls_x509_crt;

namespace lwm2md::dtls {

// Lowercase hex SHA-256 of bytes: a certificate's thumbprint is that of its DER, as
// `openssl x509 -noout -fingerprint -sha256` prints it (without colons, in lowercase).
std::string Sha256Hex(std::span<const uint8_t> bytes);

// The size of the DTLS Certificate handshake message carrying certificates of these DER
// lengths (RFC 6347 §4.2.2 header, 12 bytes; RFC 5246 §7.4.2: a 3-byte list length, then
// each certificate with a 3-byte length).
size_t CertificateMessageBytes(std::span<const size_t> der_lengths);
// The largest Certificate message mbedTLS can send: one handshake message must fit its
// output record buffer, MBEDTLS_SSL_OUT_CONTENT_LEN (2048 in our configuration header),
// header included; it fragments across datagrams only after that.
size_t MaxCertificateMessageBytes();

// The endpoint name a certificate carries, for CA mode: its subject's CN (the last one when
// there are several, the most specific, RFC 6125 §6.4.4), else its first subjectAltName
// that is a dNSName or a URI, in certificate order. Empty when it carries none.
std::string CertificateEndpointName(const mbedtls_x509_crt& certificate);

// The server's own credential, checked (parsed, key matching the leaf, message size) and
// kept as PEM: each shard parses it into structures of its own.
struct ServerCertificate {
  std::string chain_pem;  // leaf first
  std::string key_pem;
  std::string certificate_path;  // where it came from, for logs
  std::string key_path;
  std::string thumbprint;  // of the leaf: what a device pins
  std::string subject;     // of the leaf, e.g. "CN=lwm2md"
  absl::Time not_after;
  size_t certificates = 0;
  size_t message_bytes = 0;  // CertificateMessageBytes of the chain
  bool generated = false;    // made by this server (self-signed)
};

// Checks a chain (PEM, one or more certificates, leaf first, each the issuer of the one
// before) and its unencrypted private key (PEM). Messages say "<what_certificate>: ..." or
// "<what_key>: ..." (the configuration keys and paths, say).
absl::StatusOr<ServerCertificate> ParseServerCertificate(std::string chain_pem, std::string key_pem,
                                                         std::string_view what_certificate,
                                                         std::string_view what_key);
// Reads and checks dtls.certificate_file and dtls.private_key_file; errors name the key and
// the file.
absl::StatusOr<ServerCertificate> LoadServerCertificate(const std::string& certificate_file,
                                                        const std::string& key_file);
// The generated credential in `directory`: dtls-server.pem and dtls-server.key (mode 0600),
// made on the first start and read afterwards. A key without its certificate gets a new
// certificate; a certificate without its key is an error (delete it to start afresh).
absl::StatusOr<ServerCertificate> LoadOrCreateServerCertificate(const std::string& directory);
// A new self-signed ECDSA P-256 certificate for `common_name` and its key (valid from a day
// ago with no expiry date, RFC 5280 §4.1.2.5's 99991231235959Z).
absl::StatusOr<ServerCertificate> GenerateServerCertificate(std::string_view common_name);

// One CA certificate as uploaded.
struct CaCertificate {
  std::string der;
  std::string thumbprint;
  std::string subject;  // "O=lwm2md test, CN=root"
  std::string issuer;
  absl::Time not_before;
  absl::Time not_after;
  // The subject name's DER: what the issuer field of a certificate it signed holds.
  std::string subject_der;
};

// The CA certificates in PEM text (one or more, any text between them ignored, as openssl
// writes bundles) or one DER certificate. Each must parse, be a CA (basicConstraints
// CA:TRUE, and keyCertSign if it has a keyUsage) and not have expired at `now`.
// InvalidArgument naming the certificate by position (and subject) otherwise.
absl::StatusOr<std::vector<CaCertificate>> ParseCaCertificates(std::string_view text,
                                                               absl::Time now);

// The CA certificates trusted at one moment: immutable, shared by the shards.
class CaSet {
 public:
  CaSet(uint64_t version, std::vector<CaCertificate> certificates)
      : version_(version), certificates_(std::move(certificates)) {}
  uint64_t version() const { return version_; }
  const std::vector<CaCertificate>& certificates() const { return certificates_; }
  const CaCertificate* Find(std::string_view thumbprint) const;

 private:
  uint64_t version_;
  std::vector<CaCertificate> certificates_;  // in thumbprint order
};

// The CA certificates uploaded through the API, persisted in the store.
class CaStore {
 public:
  // More would make every CA-mode handshake scan a long list; real fleets have a handful.
  static constexpr size_t kMaxCertificates = 100;

  // Loads what is stored. DataLoss naming the key for a record that does not parse. store
  // must outlive the result.
  static absl::StatusOr<std::unique_ptr<CaStore>> Open(store::Store& store);
  CaStore(const CaStore&) = delete;
  CaStore& operator=(const CaStore&) = delete;

  // --- reads: any thread ---
  // The current set. Shards call it only when version() has changed.
  std::shared_ptr<const CaSet> Current() const;
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

  // --- writes: API threads only (they wait for the commit) ---
  // Parses text (ParseCaCertificates) and stores what is new; certificates already present
  // are left as they are. Returns every certificate of text and whether it was added.
  // Nothing is stored when one of them is refused (InvalidArgument) or when the set would
  // grow beyond kMaxCertificates (FailedPrecondition).
  struct Added {
    CaCertificate certificate;
    bool added = false;
  };
  absl::StatusOr<std::vector<Added>> Add(std::string_view text);
  // Removes the certificate with this thumbprint (64 hex digits; colons and upper case are
  // accepted). NotFound when there is none.
  absl::Status Remove(std::string_view thumbprint);

 private:
  explicit CaStore(store::Store& store) : store_(store) {}
  void Publish(std::vector<CaCertificate> certificates) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mutex_);

  store::Store& store_;
  absl::Mutex write_mutex_;  // serialises writers: a check and the write that relies on it
  mutable absl::Mutex current_mutex_ ABSL_ACQUIRED_AFTER(write_mutex_);
  std::shared_ptr<const CaSet> current_ ABSL_GUARDED_BY(current_mutex_);
  std::atomic<uint64_t> version_{0};
};

// What a client certificate proved, once accepted.
struct CertificateIdentity {
  std::string thumbprint;  // of the leaf
  std::string name;        // CertificateEndpointName of the leaf (may be empty)
  std::string endpoint;    // the endpoint it stands for
  bool via_ca = false;     // true: CA mode (name == endpoint); false: thumbprint mode
};

// What the DTLS server needs for the certificate suites and client certificates.
struct CertificateOptions {
  // The server's credential; null: no certificate suites (PSK only).
  std::shared_ptr<const ServerCertificate> server;
  // Uploaded CA certificates; null: no CA mode.
  const CaStore* ca_store = nullptr;
  // The endpoint configured with securityMode "x509" and this thumbprint (64 lowercase hex
  // digits), nullopt for none. Called on the shard thread during a handshake (an LMDB read).
  std::function<std::optional<std::string>(std::string_view thumbprint)> thumbprint_lookup;
  // Why a certificate verified by an uploaded CA may not stand for `endpoint` (e.g. it is
  // configured for "psk"); nullopt when it may. Shard thread, during a handshake. Unset:
  // every endpoint may.
  std::function<std::optional<std::string>(std::string_view endpoint)> ca_refusal;
};

// One shard's certificate state: its own parse of the server credential, the trust anchors
// for CA mode (from the current CaSet, re-read when the CaStore's version changes), and the
// rules above. Lives on one shard thread.
class ShardCertificates {
 public:
  using Random = int (*)(void* context, unsigned char* out, size_t length);
  // Parses options.server with the shard's random generator (RSA blinding, key checks).
  static absl::StatusOr<std::unique_ptr<ShardCertificates>> Create(CertificateOptions options,
                                                                   Random random,
                                                                   void* random_context);
  ~ShardCertificates();
  ShardCertificates(const ShardCertificates&) = delete;
  ShardCertificates& operator=(const ShardCertificates&) = delete;

  // Sets the server's certificate on config, requires a client certificate in certificate
  // suites (PSK suites never ask for one) and takes the trust anchors from this object.
  absl::Status Configure(mbedtls_ssl_config& config);

  // The certificate check of one handshake. Attach it to the handshake's context before the
  // handshake starts, Reset it when the context starts a new handshake.
  class Verification {
   public:
    void Reset();
    // Set when the client's certificate was accepted (the handshake may still fail later).
    const std::optional<CertificateIdentity>& identity() const { return identity_; }
    // Why the client's certificate was refused; empty when it was not.
    const std::string& refusal() const { return refusal_; }

   private:
    friend class ShardCertificates;
    ShardCertificates* owner_ = nullptr;
    bool chain_untrusted_ = false;
    uint32_t chain_flags_ = 0;
    std::optional<CertificateIdentity> identity_;
    std::string refusal_;
  };
  void Attach(mbedtls_ssl_context& ssl, Verification& verification);

  bool has_server_certificate() const;
  // Tests: how often the trust anchors were re-read from the CaStore.
  int ca_reloads_for_test() const { return ca_reloads_; }

 private:
  struct Parsed;
  explicit ShardCertificates(CertificateOptions options);
  // mbedtls_x509_crt_ca_cb_t: the uploaded CAs whose subject is child's issuer, parsed
  // into a list of this verification's own.
  static int TrustedCas(void* self, const mbedtls_x509_crt* child, mbedtls_x509_crt** candidates);
  // The verify callback (mbedtls_ssl_set_verify), called for each certificate of the chain
  // from the top down to the leaf (depth 0), where the decision is made.
  static int Verify(void* verification, mbedtls_x509_crt* certificate, int depth, uint32_t* flags);
  void Decide(Verification& verification, const mbedtls_x509_crt& leaf, uint32_t* flags);

  CertificateOptions options_;
  std::unique_ptr<Parsed> parsed_;
  std::shared_ptr<const CaSet> cas_;  // the shard's view of the CaStore
  uint64_t cas_version_ = 0;
  int ca_reloads_ = 0;
};

}  // namespace lwm2md::dtls
