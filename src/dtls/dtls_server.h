#pragma once
// The DTLS 1.2 server of one shard (RFC 6347, RFC 9146 connection ids), on mbedTLS 3.6.
//
// It sits between the shard's sockets and the CoAP message layer: OnDatagram takes records
// from a coaps listener and hands the decrypted CoAP messages to `deliver`; Send encrypts a
// CoAP message for an established session. All I/O is the shard's: mbedTLS reads the one
// datagram being handled through a receive callback and writes its records into the
// shard's send queue (ShardIo::Send) through a send callback; its retransmission timers are
// the shard's timer wheel.
//
// No state before a peer proves its address: every ClientHello from an unknown address goes
// through one reusable context that answers with a HelloVerifyRequest cookie (stateless,
// RFC 6347 §4.2.1); only a ClientHello with a valid cookie gets a session of its own.
//
// Connection ids: every client that offers the extension gets an 8-byte id whose first byte
// names this shard (net/steering.h steers such records here from any address) and whose
// second byte is reserved for a node id. A record with a known id from a new address is
// decrypted, and only once it authenticates does the session move to that address
// (RFC 9146 §6): a NAT rebinding needs no new handshake.
//
// Threads: everything runs on the shard thread. Each shard has its own mbedTLS
// configuration, random generator and cookie key (mbedTLS is built without threading).

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dtls/dtls_metrics.h"
#include "net/peer_address.h"
#include "net/shard.h"

struct mbedtls_ssl_context;

namespace lwm2md::dtls {

// A PSK credential: its key and the endpoint it belongs to.
struct PskCredential {
  std::string key;  // raw bytes
  std::string endpoint;
};
// The credential of a PSK identity; nullopt for an unknown identity. Called on the shard
// thread during a handshake (an LMDB read).
using PskLookup = std::function<std::optional<PskCredential>(std::string_view identity)>;

struct DtlsOptions {
  // IANA names as mbedTLS spells them ("TLS-PSK-WITH-AES-128-CCM-8"); empty: the LwM2M set
  // (kDefaultCiphersuites), in that order of preference.
  std::vector<std::string> ciphersuites;
  // Handshake retransmission: the first timeout, doubled up to max, then the handshake
  // fails (RFC 6347 §4.2.4.1).
  absl::Duration handshake_timeout_min = absl::Seconds(1);
  absl::Duration handshake_timeout_max = absl::Seconds(60);
  // Sessions (handshaking or established) a shard holds; ClientHellos beyond are dropped.
  size_t max_sessions = 1 << 20;
  PskLookup psk_lookup;  // required
};

// The suites LwM2M names (Transport TS 1.1.1 §5.2.8.x: PSK CCM_8 and ECDHE-ECDSA CCM_8
// mandatory) and the AEAD suites current clients offer.
extern const std::vector<std::string> kDefaultCiphersuites;

// Checks options before any shard starts: every suite name known to this mbedTLS build.
absl::Status ValidateOptions(const DtlsOptions& options);

// Who the peer of an established session proved to be.
struct PeerIdentity {
  std::string psk_identity;
  std::string endpoint;  // the endpoint its credential belongs to
  std::string ciphersuite;
};

class DtlsServer {
 public:
  // A decrypted CoAP message; its bytes are valid only during the call.
  using Deliver = absl::AnyInvocable<void(const net::ReceivedDatagram&)>;

  // options must have passed ValidateOptions.
  static absl::StatusOr<std::unique_ptr<DtlsServer>> Create(net::ShardIo& io,
                                                            const DtlsOptions& options,
                                                            DtlsMetrics& metrics,
                                                            Deliver deliver);
  ~DtlsServer();
  DtlsServer(const DtlsServer&) = delete;
  DtlsServer& operator=(const DtlsServer&) = delete;

  // A datagram from a coaps listener.
  void OnDatagram(const net::ReceivedDatagram& datagram);
  // Encrypts plaintext as one record to the session of `to`. False (counted) when there is
  // no established session for that address.
  bool Send(int listener, const net::PeerAddress& to, std::span<const uint8_t> plaintext);
  // The identity behind an established session with peer, if any.
  const PeerIdentity* FindIdentity(const net::PeerAddress& peer) const;
  size_t session_count() const { return sessions_.size(); }

 private:
  struct Session;
  DtlsServer(net::ShardIo& io, const DtlsOptions& options, DtlsMetrics& metrics, Deliver deliver);
  absl::Status Init();

  std::unique_ptr<Session> NewSession();
  void PrepareHello(const net::ReceivedDatagram& datagram);
  void OnClientHello(const net::ReceivedDatagram& datagram);
  // Runs the handshake or reads application data with the input set; false when the session
  // was removed.
  bool Drive(Session* session, const net::PeerAddress& from);
  void OnEstablished(Session* session);
  void Fail(Session* session, int error);
  void Remove(Session* session);
  uint64_t NewConnectionId();

  // mbedTLS callbacks.
  static int BioSend(void* context, const unsigned char* bytes, size_t length);
  static int BioReceive(void* context, unsigned char* bytes, size_t length);
  static void SetTimer(void* context, uint32_t intermediate_ms, uint32_t final_ms);
  static int GetTimer(void* context);
  static int OnPskIdentity(void* context, mbedtls_ssl_context* ssl,
                           const unsigned char* identity, size_t length);

  net::ShardIo& io_;
  const DtlsOptions& options_;
  DtlsMetrics& metrics_;
  Deliver deliver_;
  struct MbedState;  // entropy, random generator, cookie key, configuration
  std::unique_ptr<MbedState> mbed_;
  std::vector<int> ciphersuite_ids_;  // zero-terminated, referenced by the configuration

  // The datagram being handled: what BioReceive returns, once.
  std::span<const uint8_t> input_;
  bool input_taken_ = true;

  // The reusable context that answers ClientHellos from unknown addresses.
  std::unique_ptr<Session> hello_;
  // Sessions by address (established ones also under the addresses they moved from) and by
  // our connection id.
  absl::flat_hash_map<net::PeerAddress, Session*> by_address_;
  absl::flat_hash_map<uint64_t, Session*> by_connection_id_;
  absl::flat_hash_map<Session*, std::unique_ptr<Session>> sessions_;
  uint64_t next_connection_id_ = 0;
  std::array<uint8_t, 2048> plaintext_{};
};

}  // namespace lwm2md::dtls
