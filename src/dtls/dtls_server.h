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
// Sessions outlive memory and restarts (DtlsOptions::session_store): an established session
// idle for idle_save_after is serialised (mbedtls_ssl_context_save, ~230 bytes) into the
// store and its memory (~7 KiB) freed; the peer's next record, or a message the server
// sends it, restores it (mbedtls_ssl_context_load) without a handshake. Every session is
// saved when the server is destroyed, so after a restart devices go on with their sessions.
// Restoring is lazy (a load re-derives the keys, ~17 µs): never all at start. See
// saved_session.h for the store layout.
//
// Certificates (DtlsOptions::certificates, certificates.h): the server's own chain serves
// the ECDHE suites; a client in such a suite must send a certificate, which the shard's
// ShardCertificates accepts by its thumbprint or by an uploaded CA, or refuses (counted as
// bad_certificate). PSK suites never ask for one.
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
#include "dtls/certificates.h"
#include "dtls/dtls_metrics.h"
#include "dtls/saved_session.h"
#include "net/peer_address.h"
#include "net/shard.h"
#include "store/store.h"

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
  // Where idle sessions and, at shutdown, all sessions are saved; null: sessions live in
  // memory only and die with the server.
  store::Store* session_store = nullptr;
  // An established session idle this long is saved and freed (zero: only at shutdown).
  absl::Duration idle_save_after = absl::Seconds(60);
  // A saved session not resumed within this long is forgotten.
  absl::Duration saved_max_age = absl::Hours(24 * 14);
  // The shards of the group (0: unknown). A message the server sends restores a stored
  // session only on the shard the device's records reach (net/steering.h): two shards
  // restoring one session would both send records under its keys with the same sequence
  // numbers.
  int shard_count = 0;
  // The server's certificate and how client certificates are judged; without a server
  // certificate only PSK suites are served.
  CertificateOptions certificates;
};

// The suites LwM2M names (Transport TS 1.1.1 §5.2.8.x: PSK CCM_8 and ECDHE-ECDSA CCM_8
// mandatory) and the AEAD suites current clients offer.
extern const std::vector<std::string> kDefaultCiphersuites;

// Checks options before any shard starts: every suite name known to this mbedTLS build.
absl::Status ValidateOptions(const DtlsOptions& options);

class DtlsServer {
 public:
  // A decrypted CoAP message; its bytes are valid only during the call.
  using Deliver = absl::AnyInvocable<void(const net::ReceivedDatagram&)>;

  // options must have passed ValidateOptions.
  static absl::StatusOr<std::unique_ptr<DtlsServer>> Create(net::ShardIo& io,
                                                            const DtlsOptions& options,
                                                            DtlsMetrics& metrics,
                                                            Deliver deliver);
  // Saves every established session (see SaveAll).
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
  // Sessions in memory (handshaking, established, or being saved).
  size_t session_count() const { return sessions_.size(); }
  // Saves every established session to the session store and frees it (shutdown). Sessions
  // that cannot be saved yet (the client has sent nothing since its Finished) are dropped.
  void SaveAll();

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

  // Session memory and the store.
  bool SetUpContext(Session* session);
  void Touch(Session* session);
  void Unlink(Session* session);
  enum class SaveReason { kIdle, kShutdown };
  void Save(Session* session, SaveReason reason);
  // Brings a session whose save is in flight back into use; false (session removed) when its
  // context does not load.
  bool Resume(Session* session);
  // The stored session with this connection id, or the one last seen at this address,
  // restored into memory on the given listener; null when there is none (or it aged out).
  // for_send: restoring for a message the server sends, which only the shard the device's
  // records reach may do (DtlsOptions::shard_count).
  Session* RestoreById(uint64_t connection_id, int listener);
  Session* RestoreByAddress(const net::PeerAddress& peer, int listener, bool for_send);
  Session* Restore(std::string_view stored, int listener, bool address_key_is_ours,
                   bool for_send);
  // The session for a record or a send: in memory (resumed if being saved) or restored.
  Session* Find(const net::ReceivedDatagram& datagram);
  void Sweep();
  void PurgeStep();

  // mbedTLS callbacks.
  static int BioSend(void* context, const unsigned char* bytes, size_t length);
  static int BioReceive(void* context, unsigned char* bytes, size_t length);
  void ScheduleTimer(Session* session);  // at session->final_at
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
  // The server's certificate and the client certificate checks; the configuration points
  // into it.
  std::unique_ptr<ShardCertificates> certificates_;
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

  // Established sessions, least recently active first (intrusive links in Session).
  Session* idle_head_ = nullptr;
  Session* idle_tail_ = nullptr;
  // Sessions whose save is on its way to the store (their contexts already freed).
  absl::flat_hash_map<Session*, bool> saving_;
  net::TimerWheel::Id sweep_timer_ = net::TimerWheel::kNoTimer;
  // Sessions saved since the heap was last trimmed (Sweep).
  static constexpr int kSavesPerTrim = 512;
  int saved_since_trim_ = 0;
  // Where the purge of aged-out saved sessions goes on (shard 0 only).
  std::string purge_after_;
};

}  // namespace lwm2md::dtls
