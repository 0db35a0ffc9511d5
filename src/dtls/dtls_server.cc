#include "dtls/dtls_server.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/ssl_cookie.h>
#include <malloc.h>
#include <netinet/in.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/check.h"
#include "base/log.h"
#include "net/steering.h"

namespace lwm2md::dtls {

const std::vector<std::string> kDefaultCiphersuites = {
    "TLS-PSK-WITH-AES-128-CCM-8",
    "TLS-PSK-WITH-AES-128-GCM-SHA256",
    "TLS-PSK-WITH-AES-128-CCM",
    "TLS-PSK-WITH-AES-128-CBC-SHA256",
    "TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8",
    "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
    "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
    "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256",
    "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
    "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384",
    "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256",
};

std::string_view DtlsMetrics::FailureName(Failure failure) {
  switch (failure) {
    case Failure::kUnknownIdentity: return "unknown_identity";
    case Failure::kBadCredentials: return "bad_credentials";
    case Failure::kTimeout: return "timeout";
    case Failure::kProtocol: return "protocol";
    case Failure::kBadCertificate: return "bad_certificate";
  }
  return "protocol";
}

std::string_view DtlsMetrics::DropName(Drop drop) {
  switch (drop) {
    case Drop::kMalformed: return "malformed";
    case Drop::kNoSession: return "no_session";
    case Drop::kOverloaded: return "overloaded";
  }
  return "malformed";
}

namespace {

// Our connection ids: 8 bytes, the shard first (net/steering.h), then the node (0 for now),
// then 48 bits unique on this shard.
constexpr size_t kConnectionIdLength = 8;
constexpr size_t kRecordHeaderLength = 13;  // without a connection id
constexpr uint8_t kContentHandshake = 22;
constexpr uint8_t kHandshakeClientHello = 1;

std::string ErrorText(int error) {
  char text[160];
  mbedtls_strerror(error, text, sizeof(text));
  return text;
}

std::array<uint8_t, kConnectionIdLength> ConnectionIdBytes(uint64_t id) {
  std::array<uint8_t, kConnectionIdLength> bytes;
  for (size_t i = 0; i < kConnectionIdLength; ++i) {
    bytes[i] = static_cast<uint8_t>(id >> (8 * (kConnectionIdLength - 1 - i)));
  }
  return bytes;
}

uint64_t ConnectionIdValue(const uint8_t* bytes) {
  uint64_t id = 0;
  for (size_t i = 0; i < kConnectionIdLength; ++i) id = (id << 8) | bytes[i];
  return id;
}

// The cookie binds the client's address (RFC 6347 §4.2.1): its bytes, port included.
std::string TransportId(const net::PeerAddress& peer) {
  return std::string(reinterpret_cast<const char*>(peer.sockaddr_ptr()), peer.length());
}

bool IsClientHello(std::span<const uint8_t> bytes) {
  // type, version(2), epoch(2) = 0, sequence(6), length(2), then the handshake header.
  return bytes.size() > kRecordHeaderLength && bytes[0] == kContentHandshake && bytes[3] == 0 &&
         bytes[4] == 0 && bytes[kRecordHeaderLength] == kHandshakeClientHello;
}

}  // namespace

struct DtlsServer::MbedState {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context random;
  mbedtls_ssl_cookie_ctx cookies;
  mbedtls_ssl_config config;
  MbedState() {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&random);
    mbedtls_ssl_cookie_init(&cookies);
    mbedtls_ssl_config_init(&config);
  }
  ~MbedState() {
    mbedtls_ssl_config_free(&config);
    mbedtls_ssl_cookie_free(&cookies);
    mbedtls_ctr_drbg_free(&random);
    mbedtls_entropy_free(&entropy);
  }
};

// A save on its way to the store. The writer thread reports the outcome; the shard reads it
// on its next sweep.
struct PendingSave {
  std::string context;  // to resume from while the save is in flight
  std::atomic<int> outcome{0};  // 0 in flight, 1 stored, 2 refused
};

struct DtlsServer::Session {
  DtlsServer* server = nullptr;
  mbedtls_ssl_context ssl;
  int listener = 0;
  net::PeerAddress peer;
  // Addresses the session is indexed under: where it began and where it moved.
  std::vector<net::PeerAddress> addresses;
  uint64_t connection_id = 0;
  bool connection_id_used = false;  // the client took our id: indexed by it
  bool established = false;
  PeerIdentity identity;
  // The client certificate check of the handshake (certificate suites).
  ShardCertificates::Verification verification;
  net::TimerWheel::Id timer = net::TimerWheel::kNoTimer;
  bool timer_armed = false;
  net::TimePoint intermediate_at{};
  net::TimePoint final_at{};
  // Established sessions: last record in or out, and the links of the idle list.
  net::TimePoint last_active{};
  Session* idle_prev = nullptr;
  Session* idle_next = nullptr;
  bool idle_linked = false;
  // Set while the session's save is in flight; its context is freed meanwhile.
  std::shared_ptr<PendingSave> pending;

  Session() { mbedtls_ssl_init(&ssl); }
  ~Session() { mbedtls_ssl_free(&ssl); }
};

absl::Status ValidateOptions(const DtlsOptions& options) {
  for (const std::string& name : options.ciphersuites) {
    if (mbedtls_ssl_get_ciphersuite_id(name.c_str()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dtls.ciphersuites: \"", name, "\" is not a cipher suite of this build (names as ",
          "mbedTLS spells them, e.g. \"TLS-PSK-WITH-AES-128-CCM-8\")"));
    }
  }
  if (options.handshake_timeout_min <= absl::ZeroDuration() ||
      options.handshake_timeout_max < options.handshake_timeout_min) {
    return absl::InvalidArgumentError(
        "dtls: handshake_timeout_min_ms must be positive and at most handshake_timeout_max_ms");
  }
  if (!options.psk_lookup) return absl::InvalidArgumentError("dtls: no PSK lookup");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DtlsServer>> DtlsServer::Create(net::ShardIo& io,
                                                               const DtlsOptions& options,
                                                               DtlsMetrics& metrics,
                                                               Deliver deliver) {
  if (absl::Status valid = ValidateOptions(options); !valid.ok()) return valid;
  std::unique_ptr<DtlsServer> server(new DtlsServer(io, options, metrics, std::move(deliver)));
  if (absl::Status status = server->Init(); !status.ok()) return status;
  return server;
}

DtlsServer::DtlsServer(net::ShardIo& io, const DtlsOptions& options, DtlsMetrics& metrics,
                       Deliver deliver)
    : io_(io), options_(options), metrics_(metrics), deliver_(std::move(deliver)),
      mbed_(std::make_unique<MbedState>()) {
  // The shard in the top byte, the node (0) next: see ConnectionIdBytes. The sequence starts
  // at the wall clock in microseconds, so that ids issued after a restart never meet the
  // ids of sessions saved before it (a shard would need a million handshakes a second to
  // overtake the clock).
  const uint64_t sequence = static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())) &
                            ((uint64_t{1} << 48) - 1);
  next_connection_id_ = (static_cast<uint64_t>(io.shard_id() & 0xff) << 56) | sequence;
}

DtlsServer::~DtlsServer() {
  SaveAll();
  io_.timers().Cancel(sweep_timer_);
  for (auto& [raw, session] : sessions_) io_.timers().Cancel(session->timer);
  sessions_.clear();
  hello_.reset();
  metrics_.sessions.Set(0);
}

absl::Status DtlsServer::Init() {
  MbedState& m = *mbed_;
  const std::string personal = absl::StrCat("lwm2md dtls shard ", io_.shard_id());
  if (int error = mbedtls_ctr_drbg_seed(&m.random, mbedtls_entropy_func, &m.entropy,
                                        reinterpret_cast<const unsigned char*>(personal.data()),
                                        personal.size());
      error != 0) {
    return absl::InternalError(absl::StrCat("dtls: seeding the random generator: ", ErrorText(error)));
  }
  if (int error = mbedtls_ssl_config_defaults(&m.config, MBEDTLS_SSL_IS_SERVER,
                                              MBEDTLS_SSL_TRANSPORT_DATAGRAM,
                                              MBEDTLS_SSL_PRESET_DEFAULT);
      error != 0) {
    return absl::InternalError(absl::StrCat("dtls: configuration: ", ErrorText(error)));
  }
  mbedtls_ssl_conf_rng(&m.config, mbedtls_ctr_drbg_random, &m.random);
  if (int error = mbedtls_ssl_cookie_setup(&m.cookies, mbedtls_ctr_drbg_random, &m.random);
      error != 0) {
    return absl::InternalError(absl::StrCat("dtls: cookie key: ", ErrorText(error)));
  }
  mbedtls_ssl_conf_dtls_cookies(&m.config, mbedtls_ssl_cookie_write, mbedtls_ssl_cookie_check,
                                &m.cookies);
  mbedtls_ssl_conf_psk_cb(&m.config, &DtlsServer::OnPskIdentity, this);
  absl::StatusOr<std::unique_ptr<ShardCertificates>> certificates =
      ShardCertificates::Create(options_.certificates, mbedtls_ctr_drbg_random, &m.random);
  if (!certificates.ok()) return certificates.status();
  certificates_ = *std::move(certificates);
  if (absl::Status status = certificates_->Configure(m.config); !status.ok()) return status;
  mbedtls_ssl_conf_handshake_timeout(
      &m.config, static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.handshake_timeout_min)),
      static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.handshake_timeout_max)));
  // Records with another connection id than the session's are dropped silently: the
  // session table has already picked the session by id.
  if (int error = mbedtls_ssl_conf_cid(&m.config, kConnectionIdLength,
                                       MBEDTLS_SSL_UNEXPECTED_CID_IGNORE);
      error != 0) {
    return absl::InternalError(absl::StrCat("dtls: connection ids: ", ErrorText(error)));
  }
  const std::vector<std::string>& names =
      options_.ciphersuites.empty() ? kDefaultCiphersuites : options_.ciphersuites;
  for (const std::string& name : names) {
    // Suites the build lacks (e.g. a default whose key exchange is off) are left out.
    if (int id = mbedtls_ssl_get_ciphersuite_id(name.c_str()); id != 0) {
      ciphersuite_ids_.push_back(id);
    }
  }
  ciphersuite_ids_.push_back(0);
  mbedtls_ssl_conf_ciphersuites(&m.config, ciphersuite_ids_.data());
  hello_ = NewSession();
  if (hello_ == nullptr) return absl::InternalError("dtls: cannot set up a session context");
  if (options_.session_store != nullptr) Sweep();
  return absl::OkStatus();
}

std::unique_ptr<DtlsServer::Session> DtlsServer::NewSession() {
  auto session = std::make_unique<Session>();
  session->server = this;
  if (!SetUpContext(session.get())) return nullptr;
  return session;
}

bool DtlsServer::SetUpContext(Session* session) {
  if (int error = mbedtls_ssl_setup(&session->ssl, &mbed_->config); error != 0) {
    LWM2MD_LOG(kError, "dtls: session setup: %s", ErrorText(error));
    return false;
  }
  mbedtls_ssl_set_user_data_p(&session->ssl, session);
  mbedtls_ssl_set_bio(&session->ssl, session, &DtlsServer::BioSend, &DtlsServer::BioReceive,
                      nullptr);
  mbedtls_ssl_set_timer_cb(&session->ssl, session, &DtlsServer::SetTimer, &DtlsServer::GetTimer);
  certificates_->Attach(session->ssl, session->verification);
  return true;
}

uint64_t DtlsServer::NewConnectionId() {
  // 48 bits of sequence: a shard would need 2^48 handshakes to come round.
  const uint64_t prefix = next_connection_id_ & ~((uint64_t{1} << 48) - 1);
  next_connection_id_ = prefix | ((next_connection_id_ + 1) & ((uint64_t{1} << 48) - 1));
  return next_connection_id_;
}

void DtlsServer::OnDatagram(const net::ReceivedDatagram& datagram) {
  const std::span<const uint8_t> bytes = datagram.bytes;
  if (bytes.size() < kRecordHeaderLength) {
    metrics_.dropped[static_cast<int>(DtlsMetrics::Drop::kMalformed)].Add();
    return;
  }
  if (bytes[0] == net::kDtlsContentTypeCid &&
      bytes.size() < net::kDtlsCidOffset + kConnectionIdLength + 2) {
    metrics_.dropped[static_cast<int>(DtlsMetrics::Drop::kMalformed)].Add();
    return;
  }
  // A ClientHello from an address with a session is either a retransmission within its
  // handshake or a new handshake (CLIENT_RECONNECT): the session handles both. Without a
  // session in memory, a ClientHello never resumes a saved one.
  Session* session = nullptr;
  if (IsClientHello(bytes)) {
    // Only the session that is at this address now, on this listener: an address a session
    // moved away from (RFC 9146) may belong to another device by now.
    if (auto it = by_address_.find(datagram.peer);
        it != by_address_.end() && it->second->peer == datagram.peer &&
        it->second->listener == datagram.listener) {
      session = it->second;
    }
    if (session != nullptr && session->pending != nullptr && !Resume(session)) session = nullptr;
    if (session == nullptr) return OnClientHello(datagram);
  } else {
    session = Find(datagram);
  }
  if (session == nullptr) {
    metrics_.dropped[static_cast<int>(DtlsMetrics::Drop::kNoSession)].Add();
    return;
  }
  input_ = bytes;
  input_taken_ = false;
  Drive(session, datagram.peer);
  input_ = {};
  input_taken_ = true;
}

void DtlsServer::OnClientHello(const net::ReceivedDatagram& datagram) {
  if (sessions_.size() >= options_.max_sessions) {
    metrics_.dropped[static_cast<int>(DtlsMetrics::Drop::kOverloaded)].Add();
    return;
  }
  Session* hello = hello_.get();
  mbedtls_ssl_session_reset(&hello->ssl);
  hello->listener = datagram.listener;
  hello->peer = datagram.peer;
  hello->identity = PeerIdentity{};
  hello->verification.Reset();
  const std::string transport_id = TransportId(datagram.peer);
  mbedtls_ssl_set_client_transport_id(&hello->ssl,
                                      reinterpret_cast<const unsigned char*>(transport_id.data()),
                                      transport_id.size());
  hello->connection_id = NewConnectionId();
  const std::array<uint8_t, kConnectionIdLength> cid = ConnectionIdBytes(hello->connection_id);
  mbedtls_ssl_set_cid(&hello->ssl, MBEDTLS_SSL_CID_ENABLED, cid.data(), cid.size());
  input_ = datagram.bytes;
  input_taken_ = false;
  const int result = mbedtls_ssl_handshake(&hello->ssl);
  input_ = {};
  input_taken_ = true;
  if (result == MBEDTLS_ERR_SSL_HELLO_VERIFY_REQUIRED) {
    // The cookie went out; nothing is kept (the context is reset for the next ClientHello).
    metrics_.hello_verify_requests.Add();
    io_.timers().Cancel(hello->timer);
    hello->timer_armed = false;
    return;
  }
  if (result != MBEDTLS_ERR_SSL_WANT_READ && result != MBEDTLS_ERR_SSL_WANT_WRITE) {
    // A ClientHello mbedTLS refused (malformed, no common suite): it answered with an alert.
    io_.timers().Cancel(hello->timer);
    hello->timer_armed = false;
    metrics_.handshake_failures[static_cast<int>(DtlsMetrics::Failure::kProtocol)].Add();
    LWM2MD_LOG(kDebug, "dtls: ClientHello from %s refused: %s", datagram.peer.ToString(),
               ErrorText(result));
    return;
  }
  // A valid cookie: the peer owns its address, and the handshake goes on in a session of
  // its own. The reusable context is replaced for the next ClientHello.
  std::unique_ptr<Session> next = NewSession();
  if (next == nullptr) return;
  std::unique_ptr<Session> session = std::exchange(hello_, std::move(next));
  Session* raw = session.get();
  metrics_.handshakes_started.Add();
  // Its first flight went out from the stateless context, which never waits: the
  // retransmission timer starts now.
  if (raw->timer_armed) ScheduleTimer(raw);
  // A new handshake from the address of a session replaces it (the client restarted). An
  // address a session only moved away from is just handed over.
  if (auto old = by_address_.find(raw->peer);
      old != by_address_.end() && old->second->peer == raw->peer) {
    Remove(old->second);
  }
  raw->addresses.push_back(raw->peer);
  by_address_[raw->peer] = raw;
  sessions_[raw] = std::move(session);
  metrics_.sessions.Set(sessions_.size());
}

bool DtlsServer::Drive(Session* session, const net::PeerAddress& from) {
  if (!session->established) {
    const int result = mbedtls_ssl_handshake(&session->ssl);
    if (result == MBEDTLS_ERR_SSL_WANT_READ || result == MBEDTLS_ERR_SSL_WANT_WRITE) {
      return true;
    }
    if (result != 0) {
      Fail(session, result);
      return false;
    }
    OnEstablished(session);
  }
  for (;;) {
    const int result = mbedtls_ssl_read(&session->ssl, plaintext_.data(), plaintext_.size());
    if (result > 0) {
      // Authenticated: a connection id record from a new address moves the session there
      // (RFC 9146 §6), and the answer goes to where the client now is.
      if (!(from == session->peer) && !from.empty()) {
        session->peer = from;
        if (std::find(session->addresses.begin(), session->addresses.end(), from) ==
            session->addresses.end()) {
          session->addresses.push_back(from);
        }
        by_address_[from] = session;
        metrics_.rebinds.Add();
      }
      Touch(session);
      metrics_.records_in.Add();
      deliver_(net::ReceivedDatagram{session->listener, session->peer,
                                     std::span<const uint8_t>(plaintext_.data(),
                                                              static_cast<size_t>(result))});
      continue;
    }
    if (result == MBEDTLS_ERR_SSL_WANT_READ || result == MBEDTLS_ERR_SSL_WANT_WRITE) return true;
    if (result == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
      metrics_.closed.Add();
      mbedtls_ssl_close_notify(&session->ssl);
      Remove(session);
      return false;
    }
    if (result == MBEDTLS_ERR_SSL_CLIENT_RECONNECT) {
      // A new ClientHello with a valid cookie from the same address: mbedTLS has reset the
      // context for a new handshake, which this datagram starts.
      if (session->connection_id_used) by_connection_id_.erase(session->connection_id);
      session->connection_id_used = false;
      session->established = false;
      session->identity = PeerIdentity{};
      session->verification.Reset();
      metrics_.handshakes_started.Add();
      return Drive(session, from);
    }
    Fail(session, result);
    return false;
  }
}

void DtlsServer::OnEstablished(Session* session) {
  session->established = true;
  metrics_.handshakes_completed.Add();
  session->identity.ciphersuite = mbedtls_ssl_get_ciphersuite(&session->ssl);
  if (const std::optional<CertificateIdentity>& certificate = session->verification.identity()) {
    session->identity.authentication = certificate->via_ca
                                           ? Authentication::kCertificateCa
                                           : Authentication::kCertificateThumbprint;
    session->identity.certificate_thumbprint = certificate->thumbprint;
    session->identity.certificate_name = certificate->name;
    session->identity.endpoint = certificate->endpoint;
  }
  int enabled = MBEDTLS_SSL_CID_DISABLED;
  unsigned char peer_cid[MBEDTLS_SSL_CID_OUT_LEN_MAX];
  size_t peer_cid_length = 0;
  if (mbedtls_ssl_get_peer_cid(&session->ssl, &enabled, peer_cid, &peer_cid_length) == 0 &&
      enabled == MBEDTLS_SSL_CID_ENABLED) {
    session->connection_id_used = true;
    by_connection_id_[session->connection_id] = session;
  }
  Touch(session);
  LWM2MD_LOG(kDebug, "dtls: %s established (%s, endpoint \"%s\" by %s, connection id %s)",
             session->peer.ToString(), session->identity.ciphersuite, session->identity.endpoint,
             session->identity.authentication == Authentication::kPsk
                 ? absl::StrCat("PSK identity \"", session->identity.psk_identity, "\"")
                 : absl::StrCat(session->identity.authentication == Authentication::kCertificateCa
                                    ? "CA-signed certificate "
                                    : "certificate ",
                                session->identity.certificate_thumbprint),
             session->connection_id_used ? "yes" : "no");
}

void DtlsServer::Fail(Session* session, int error) {
  DtlsMetrics::Failure failure = DtlsMetrics::Failure::kProtocol;
  if (!session->established) {
    if (error == MBEDTLS_ERR_SSL_TIMEOUT) {
      failure = DtlsMetrics::Failure::kTimeout;
    } else if (error == MBEDTLS_ERR_SSL_UNKNOWN_IDENTITY) {
      failure = DtlsMetrics::Failure::kUnknownIdentity;
    } else if (!session->verification.refusal().empty() ||
               error == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED ||
               error == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE ||
               error == MBEDTLS_ERR_SSL_BAD_CERTIFICATE) {
      failure = DtlsMetrics::Failure::kBadCertificate;
    } else if (error == MBEDTLS_ERR_SSL_INVALID_MAC || error == MBEDTLS_ERR_SSL_DECODE_ERROR ||
               error == MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE ||
               error == MBEDTLS_ERR_ECP_VERIFY_FAILED || error == MBEDTLS_ERR_RSA_VERIFY_FAILED ||
               error == MBEDTLS_ERR_PK_SIG_LEN_MISMATCH) {
      // A wrong key shows as a Finished that does not decrypt or does not verify (PSK), or
      // as a CertificateVerify signed with a key that is not the certificate's.
      failure = DtlsMetrics::Failure::kBadCredentials;
    }
    metrics_.handshake_failures[static_cast<int>(failure)].Add();
  }
  if (!session->established && !session->verification.refusal().empty()) {
    LWM2MD_LOG(kDebug, "dtls: %s handshake failed: %s", session->peer.ToString(),
               session->verification.refusal());
  } else {
    LWM2MD_LOG(kDebug, "dtls: %s %s: %s", session->peer.ToString(),
               session->established ? "session ended" : "handshake failed", ErrorText(error));
  }
  Remove(session);
}

void DtlsServer::Remove(Session* session) {
  io_.timers().Cancel(session->timer);
  Unlink(session);
  saving_.erase(session);
  for (const net::PeerAddress& address : session->addresses) {
    if (auto it = by_address_.find(address); it != by_address_.end() && it->second == session) {
      by_address_.erase(it);
    }
  }
  if (session->connection_id_used) by_connection_id_.erase(session->connection_id);
  sessions_.erase(session);
  metrics_.sessions.Set(sessions_.size());
}

bool DtlsServer::Send(int listener, const net::PeerAddress& to,
                      std::span<const uint8_t> plaintext) {
  Session* session = nullptr;
  if (auto it = by_address_.find(to); it != by_address_.end()) session = it->second;
  if (session != nullptr && session->pending != nullptr && !Resume(session)) session = nullptr;
  // A request to a device whose session sleeps in the store wakes the session.
  if (session == nullptr && options_.session_store != nullptr) {
    session = RestoreByAddress(to, listener, /*for_send=*/true);
  }
  if (session == nullptr || !session->established || session->listener != listener) {
    metrics_.send_failures.Add();
    return false;
  }
  const int written = mbedtls_ssl_write(&session->ssl, plaintext.data(), plaintext.size());
  if (written != static_cast<int>(plaintext.size())) {
    metrics_.send_failures.Add();
    return false;
  }
  Touch(session);
  metrics_.records_out.Add();
  return true;
}

// ---- sessions and the store ----

DtlsServer::Session* DtlsServer::Find(const net::ReceivedDatagram& datagram) {
  const bool with_id = datagram.bytes[0] == net::kDtlsContentTypeCid;
  const uint64_t id =
      with_id ? ConnectionIdValue(datagram.bytes.data() + net::kDtlsCidOffset) : 0;
  Session* session = nullptr;
  if (with_id) {
    if (auto it = by_connection_id_.find(id); it != by_connection_id_.end()) session = it->second;
  } else if (auto it = by_address_.find(datagram.peer); it != by_address_.end()) {
    session = it->second;
  }
  if (session != nullptr) {
    if (session->pending != nullptr && !Resume(session)) return nullptr;
    return session;
  }
  if (options_.session_store == nullptr) return nullptr;
  return with_id ? RestoreById(id, datagram.listener)
                 : RestoreByAddress(datagram.peer, datagram.listener, /*for_send=*/false);
}

void DtlsServer::Touch(Session* session) {
  session->last_active = io_.Now();
  if (session->idle_linked && session == idle_tail_) return;
  Unlink(session);
  session->idle_prev = idle_tail_;
  session->idle_next = nullptr;
  if (idle_tail_ != nullptr) idle_tail_->idle_next = session;
  idle_tail_ = session;
  if (idle_head_ == nullptr) idle_head_ = session;
  session->idle_linked = true;
}

void DtlsServer::Unlink(Session* session) {
  if (!session->idle_linked) return;
  if (session->idle_prev != nullptr) session->idle_prev->idle_next = session->idle_next;
  if (session->idle_next != nullptr) session->idle_next->idle_prev = session->idle_prev;
  if (idle_head_ == session) idle_head_ = session->idle_next;
  if (idle_tail_ == session) idle_tail_ = session->idle_prev;
  session->idle_prev = session->idle_next = nullptr;
  session->idle_linked = false;
}

void DtlsServer::Save(Session* session, SaveReason reason) {
  if (!session->established || session->pending != nullptr) return;
  size_t length = 0;
  std::string context;
  int error = mbedtls_ssl_context_save(&session->ssl, nullptr, 0, &length);
  if (error == MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL) {
    context.resize(length);
    error = mbedtls_ssl_context_save(&session->ssl, reinterpret_cast<unsigned char*>(context.data()),
                                     context.size(), &length);
    context.resize(length);
  }
  if (error != 0) {
    // mbedTLS keeps a server's last flight until the client's first record of the new epoch
    // shows it arrived; until then the context cannot be saved. Such a client has not used
    // its session; it handshakes again when it does.
    metrics_.sessions_unsaveable.Add();
    LWM2MD_LOG(kDebug, "dtls: %s not saved (%s), dropped", session->peer.ToString(),
               ErrorText(error));
    Remove(session);
    return;
  }
  SavedSession saved{.connection_id = session->connection_id,
                     .connection_id_used = session->connection_id_used,
                     .peer = session->peer,
                     .identity = session->identity,
                     .saved_at = absl::Now(),
                     .context = {}};
  saved.context = std::move(context);
  store::WriteBatch batch;
  AddSave(batch, saved);
  if (reason == SaveReason::kShutdown) {
    // The store is flushed after the shards stop (server::Server::Stop).
    options_.session_store->Submit(std::move(batch), [](absl::Status status) {
      if (!status.ok()) LWM2MD_LOG(kWarning, "dtls: session not saved: %s", status.message());
    });
    metrics_.sessions_saved_shutdown.Add();
    Remove(session);
    return;
  }
  // The memory goes now; the session stays indexed, resumable from the context kept with the
  // pending save, until the store confirms (Sweep).
  auto pending = std::make_shared<PendingSave>();
  pending->context = std::move(saved.context);
  options_.session_store->Submit(std::move(batch), [pending](absl::Status status) {
    pending->outcome.store(status.ok() ? 1 : 2, std::memory_order_release);
  });
  io_.timers().Cancel(session->timer);
  session->timer = net::TimerWheel::kNoTimer;
  session->timer_armed = false;
  mbedtls_ssl_free(&session->ssl);
  mbedtls_ssl_init(&session->ssl);
  session->pending = std::move(pending);
  Unlink(session);
  saving_[session] = true;
  metrics_.sessions_saved_idle.Add();
}

bool DtlsServer::Resume(Session* session) {
  std::shared_ptr<PendingSave> pending = std::move(session->pending);
  saving_.erase(session);
  if (!SetUpContext(session) ||
      mbedtls_ssl_context_load(&session->ssl,
                               reinterpret_cast<const unsigned char*>(pending->context.data()),
                               pending->context.size()) != 0) {
    metrics_.sessions_expired.Add();
    Remove(session);
    return false;
  }
  if (pending->outcome.load(std::memory_order_acquire) != 2) {
    // The stored copy (written or about to be: the store keeps submission order) must never
    // be restored as well.
    store::WriteBatch batch;
    AddForget(batch, session->connection_id, session->peer);
    options_.session_store->Submit(std::move(batch), [](absl::Status) {});
    metrics_.sessions_restored.Add();
  }
  Touch(session);
  return true;
}

DtlsServer::Session* DtlsServer::RestoreById(uint64_t connection_id, int listener) {
  absl::StatusOr<std::optional<std::string>> stored =
      options_.session_store->Get(store::Table::kDtlsSessions, SessionKey(connection_id));
  if (!stored.ok() || !stored->has_value()) return nullptr;
  return Restore(**stored, listener, /*address_key_is_ours=*/false, /*for_send=*/false);
}

DtlsServer::Session* DtlsServer::RestoreByAddress(const net::PeerAddress& peer, int listener,
                                                  bool for_send) {
  absl::StatusOr<std::optional<std::string>> id =
      options_.session_store->Get(store::Table::kDtlsSessions, AddressKey(peer));
  if (!id.ok() || !id->has_value()) return nullptr;
  std::optional<uint64_t> connection_id = ConnectionIdOfAddressValue(**id);
  if (!connection_id) return nullptr;
  absl::StatusOr<std::optional<std::string>> stored =
      options_.session_store->Get(store::Table::kDtlsSessions, SessionKey(*connection_id));
  if (!stored.ok() || !stored->has_value()) return nullptr;
  return Restore(**stored, listener, /*address_key_is_ours=*/true, for_send);
}

DtlsServer::Session* DtlsServer::Restore(std::string_view stored, int listener,
                                         bool address_key_is_ours, bool for_send) {
  absl::StatusOr<SavedSession> saved = DecodeSavedSession(stored);
  if (!saved.ok()) {
    LWM2MD_LOG(kWarning, "dtls: %s", saved.status().message());
    metrics_.sessions_expired.Add();
    return nullptr;
  }
  // A full shard leaves the session in the store for a later record, rather than forget it.
  if (sessions_.size() >= options_.max_sessions) {
    metrics_.dropped[static_cast<int>(DtlsMetrics::Drop::kOverloaded)].Add();
    return nullptr;
  }
  if (for_send && options_.shard_count > 0) {
    const int home = saved->connection_id_used
                         ? ShardOfConnectionId(saved->connection_id) % options_.shard_count
                         : net::SteeringShard(saved->peer, options_.shard_count);
    // Left in the store for the shard whose device records will restore it.
    if (home != io_.shard_id()) return nullptr;
  }
  // The address key goes with the session only if it still names it: a newer session from
  // that address may have been saved since.
  net::PeerAddress address_key;
  if (address_key_is_ours) {
    address_key = saved->peer;
  } else if (absl::StatusOr<std::optional<std::string>> id =
                 options_.session_store->Get(store::Table::kDtlsSessions,
                                             AddressKey(saved->peer));
             id.ok() && id->has_value() &&
             ConnectionIdOfAddressValue(**id) == saved->connection_id) {
    address_key = saved->peer;
  }
  store::WriteBatch forget;
  AddForget(forget, saved->connection_id, address_key);
  options_.session_store->Submit(std::move(forget), [](absl::Status) {});
  if (absl::Now() - saved->saved_at > options_.saved_max_age) {
    metrics_.sessions_expired.Add();
    return nullptr;
  }
  auto session = std::make_unique<Session>();
  session->server = this;
  if (!SetUpContext(session.get())) return nullptr;
  if (int error = mbedtls_ssl_context_load(
          &session->ssl, reinterpret_cast<const unsigned char*>(saved->context.data()),
          saved->context.size());
      error != 0) {
    // Another mbedTLS build or configuration: the device handshakes again.
    LWM2MD_LOG(kDebug, "dtls: saved session of %s not loaded: %s", saved->peer.ToString(),
               ErrorText(error));
    metrics_.sessions_expired.Add();
    return nullptr;
  }
  Session* raw = session.get();
  raw->listener = listener;
  raw->peer = saved->peer;
  raw->addresses.push_back(saved->peer);
  raw->connection_id = saved->connection_id;
  raw->connection_id_used = saved->connection_id_used;
  raw->established = true;
  raw->identity = std::move(saved->identity);
  // An address another session holds in memory stays with it (it is the newer one).
  by_address_.try_emplace(raw->peer, raw);
  if (raw->connection_id_used) by_connection_id_[raw->connection_id] = raw;
  sessions_[raw] = std::move(session);
  metrics_.sessions.Set(sessions_.size());
  metrics_.sessions_restored.Add();
  Touch(raw);
  return raw;
}

void DtlsServer::Sweep() {
  const net::TimePoint now = io_.Now();
  // Bounded per sweep, so that a shard never stalls on a crowd of sessions turning idle at
  // once; the rest wait for the next sweep.
  constexpr int kMaxSavesPerSweep = 4096;
  if (options_.idle_save_after > absl::ZeroDuration()) {
    const auto idle = std::chrono::microseconds(absl::ToInt64Microseconds(options_.idle_save_after));
    int saves = 0;
    for (; idle_head_ != nullptr && idle_head_->last_active + idle <= now &&
           saves < kMaxSavesPerSweep;
         ++saves) {
      Save(idle_head_, SaveReason::kIdle);
    }
    // glibc keeps freed memory for reuse; when sessions go idle by the thousand (after a
    // storm of handshakes) the process would keep their ~7 KiB each. Giving it back costs a
    // walk of the heap, so only after a few MiB were freed.
    saved_since_trim_ += saves;
    if (saved_since_trim_ >= kSavesPerTrim) {
      saved_since_trim_ = 0;
      malloc_trim(0);
    }
  }
  std::vector<Session*> settled;
  for (const auto& [session, unused] : saving_) {
    if (session->pending->outcome.load(std::memory_order_acquire) != 0) settled.push_back(session);
  }
  for (Session* session : settled) {
    if (session->pending->outcome.load(std::memory_order_acquire) == 1) {
      Remove(session);  // in the store now
    } else {
      // The store refused (full, failing): the session stays in memory rather than be lost.
      metrics_.session_save_failures.Add();
      Resume(session);
    }
  }
  if (io_.shard_id() == 0) PurgeStep();
  // Often enough that a session is saved within a quarter of its idle time, at most once a
  // second, at least every 10 ms.
  const absl::Duration period = std::clamp(options_.idle_save_after / 4, absl::Milliseconds(10),
                                           absl::Seconds(1));
  sweep_timer_ = io_.timers().Schedule(
      now + std::chrono::microseconds(absl::ToInt64Microseconds(period)), [this] {
        sweep_timer_ = net::TimerWheel::kNoTimer;
        Sweep();
      });
}

void DtlsServer::PurgeStep() {
  // A few hundred stored sessions per sweep: a million are visited in under an hour at a
  // cost of microseconds per sweep.
  constexpr int kVisitsPerStep = 256;
  int visited = 0;
  std::string last;
  const absl::Time now = absl::Now();
  store::WriteBatch forget;
  absl::Status status = options_.session_store->Scan(
      store::Table::kDtlsSessions, "s", purge_after_,
      [&](std::string_view key, std::string_view value) {
        last = std::string(key);
        absl::StatusOr<SavedSession> saved = DecodeSavedSession(value);
        if (!saved.ok() || now - saved->saved_at > options_.saved_max_age) {
          net::PeerAddress address;
          if (saved.ok()) {
            absl::StatusOr<std::optional<std::string>> id = options_.session_store->Get(
                store::Table::kDtlsSessions, AddressKey(saved->peer));
            if (id.ok() && id->has_value() &&
                ConnectionIdOfAddressValue(**id) == saved->connection_id) {
              address = saved->peer;
            }
          }
          if (saved.ok()) {
            AddForget(forget, saved->connection_id, address);
          } else {
            forget.Delete(store::Table::kDtlsSessions, key);
          }
          metrics_.sessions_expired.Add();
        }
        return ++visited < kVisitsPerStep;
      });
  // Round again from the start once the end is reached.
  purge_after_ = (status.ok() && visited == kVisitsPerStep) ? last : std::string();
  if (!forget.empty()) options_.session_store->Submit(std::move(forget), [](absl::Status) {});
}

void DtlsServer::SaveAll() {
  if (options_.session_store == nullptr) return;
  std::vector<Session*> established;
  for (const auto& [raw, session] : sessions_) {
    if (raw->established && raw->pending == nullptr) established.push_back(raw);
  }
  for (Session* session : established) Save(session, SaveReason::kShutdown);
}

const PeerIdentity* DtlsServer::FindIdentity(const net::PeerAddress& peer) const {
  auto it = by_address_.find(peer);
  if (it == by_address_.end() || !it->second->established) return nullptr;
  return &it->second->identity;
}

// ---- mbedTLS callbacks ----

int DtlsServer::BioSend(void* context, const unsigned char* bytes, size_t length) {
  auto* session = static_cast<Session*>(context);
  // A full send queue loses the datagram, as the network might: DTLS retransmits handshake
  // flights and CoAP its CON messages.
  session->server->io_.Send(session->listener, session->peer,
                            std::span<const uint8_t>(bytes, length));
  return static_cast<int>(length);
}

int DtlsServer::BioReceive(void* context, unsigned char* bytes, size_t length) {
  DtlsServer* server = static_cast<Session*>(context)->server;
  if (server->input_taken_) return MBEDTLS_ERR_SSL_WANT_READ;
  server->input_taken_ = true;
  // mbedTLS offers its whole receive buffer: a larger datagram cannot be a record it takes.
  if (server->input_.size() > length) return MBEDTLS_ERR_SSL_WANT_READ;
  std::memcpy(bytes, server->input_.data(), server->input_.size());
  return static_cast<int>(server->input_.size());
}

void DtlsServer::SetTimer(void* context, uint32_t intermediate_ms, uint32_t final_ms) {
  auto* session = static_cast<Session*>(context);
  DtlsServer* server = session->server;
  server->io_.timers().Cancel(session->timer);
  session->timer = net::TimerWheel::kNoTimer;
  session->timer_armed = final_ms != 0;
  if (!session->timer_armed) return;
  const net::TimePoint now = server->io_.Now();
  session->intermediate_at = now + std::chrono::milliseconds(intermediate_ms);
  session->final_at = now + std::chrono::milliseconds(final_ms);
  // The stateless context never waits; once promoted to a session it schedules what mbedTLS
  // asked for here (OnClientHello).
  if (session == server->hello_.get()) return;
  server->ScheduleTimer(session);
}

void DtlsServer::ScheduleTimer(Session* session) {
  session->timer = io_.timers().Schedule(session->final_at, [this, session] {
    session->timer = net::TimerWheel::kNoTimer;
    // The handshake retransmits its last flight, or ends with MBEDTLS_ERR_SSL_TIMEOUT.
    input_ = {};
    input_taken_ = true;
    Drive(session, session->peer);
  });
}

int DtlsServer::GetTimer(void* context) {
  auto* session = static_cast<Session*>(context);
  if (!session->timer_armed) return -1;
  const net::TimePoint now = session->server->io_.Now();
  if (now >= session->final_at) return 2;
  if (now >= session->intermediate_at) return 1;
  return 0;
}

int DtlsServer::OnPskIdentity(void* context, mbedtls_ssl_context* ssl,
                              const unsigned char* identity, size_t length) {
  auto* server = static_cast<DtlsServer*>(context);
  auto* session = static_cast<Session*>(mbedtls_ssl_get_user_data_p(ssl));
  const std::string_view name(reinterpret_cast<const char*>(identity), length);
  std::optional<PskCredential> credential = server->options_.psk_lookup(name);
  if (!credential || credential->key.empty()) return -1;  // unknown_psk_identity alert
  if (mbedtls_ssl_set_hs_psk(ssl, reinterpret_cast<const unsigned char*>(credential->key.data()),
                             credential->key.size()) != 0) {
    return -1;
  }
  if (session != nullptr) {
    session->identity.psk_identity = std::string(name);
    session->identity.endpoint = std::move(credential->endpoint);
  }
  return 0;
}

}  // namespace lwm2md::dtls
