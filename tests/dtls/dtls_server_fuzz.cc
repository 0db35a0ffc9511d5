// Feeds datagrams to dtls::DtlsServer::OnDatagram, before and after a real PSK handshake with
// an in-memory mbedTLS client (tests/dtls/dtls_pair.h), from the client's address and from
// others. Every input gets a fresh server, so that a finding replays from its input alone.
//
// The session keys differ from run to run (the server seeds its generator from the kernel,
// and mbedTLS puts the time in both hello randoms), so an input never carries ciphertext that
// must decrypt: it is a script of what the client does (handshake steps, records with the
// given plaintext, close_notify, a restart) and of how each datagram is altered on the way,
// mixed with raw datagrams. Input layout:
//   byte 0: bit 0 completes a handshake before the script; bit 1 has the client ask for a
//           connection id (its records then carry the server's id and are found by it).
//   then operations until the input ends, each an opcode byte and its operands (see Run).
//
// Besides the sanitizers, it checks what must hold whatever arrives: nothing reaches CoAP
// that the client did not encrypt, and nothing twice (authenticity, anti-replay); the
// session gauge matches the table and stays within max_sessions; an established session
// belongs to the one credential there is; destroying the server leaves no timer behind.

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dtls/dtls_server.h"
#include "dtls_pair.h"
#include "net/peer_address.h"
#include "net/shard.h"
#include "net/timer_wheel.h"

namespace {

using lwm2md::dtls::DtlsMetrics;
using lwm2md::dtls::DtlsOptions;
using lwm2md::dtls::DtlsServer;
using lwm2md::dtls::PeerIdentity;
using lwm2md::dtls::PskCredential;
using lwm2md::dtls::testing::Endpoint;
using lwm2md::dtls::testing::Link;
using lwm2md::net::PeerAddress;

constexpr int kListener = 0;
constexpr char kIdentity[] = "urn:imei:351234567890123";
constexpr char kEndpoint[] = "sensor-17";
constexpr char kKey[] = "0123456789abcdef";
constexpr uint8_t kClientCid[4] = {0xc1, 0x1e, 0x17, 0x0d};
constexpr int kSuites[] = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8,
                           MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256, 0};
constexpr size_t kMaxOperations = 64;
constexpr size_t kMaxHistory = 32;

void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "dtls_server_fuzz: %s\n", what);
    std::abort();
  }
}

std::string Text(std::span<const uint8_t> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// The client's generator gets the same bytes every input: cheaper than the kernel's, and
// what the client sends varies only by the time in its hello random.
int FixedEntropy(void*, unsigned char* out, size_t length) {
  std::fill(out, out + length, 0x2a);
  return 0;
}

// What every input shares, built once: it holds no per-input state.
struct Shared {
  mbedtls_ctr_drbg_context random;
  mbedtls_ssl_config client;      // no connection id
  mbedtls_ssl_config client_cid;  // offers kClientCid
  DtlsOptions options;
  // [0] is where the client starts; the others stand for a NAT rebinding, an IPv6 path
  // and a stranger.
  std::array<PeerAddress, 4> addresses;

  Shared() {
    mbedtls_ctr_drbg_init(&random);
    Require(mbedtls_ctr_drbg_seed(&random, FixedEntropy, nullptr, nullptr, 0) == 0, "drbg");
    SetUp(&client, 0);
    SetUp(&client_cid, sizeof(kClientCid));
    options.handshake_timeout_min = absl::Seconds(1);
    options.handshake_timeout_max = absl::Seconds(4);
    // Small, so that a restarted client at other addresses reaches the limit.
    options.max_sessions = 2;
    options.psk_lookup = [](std::string_view identity) -> std::optional<PskCredential> {
      if (identity != kIdentity) return std::nullopt;
      return PskCredential{kKey, kEndpoint};
    };
    const char* texts[] = {"192.0.2.10:40001", "198.51.100.7:50123", "[2001:db8::7]:5684",
                           "203.0.113.66:6666"};
    for (size_t i = 0; i < addresses.size(); ++i) {
      std::optional<PeerAddress> address = PeerAddress::Parse(texts[i]);
      Require(address.has_value(), "address");
      addresses[i] = *address;
    }
  }

  // Restarted with every input, so that an input does not depend on the ones before it.
  void Reseed() {
    mbedtls_ctr_drbg_free(&random);
    mbedtls_ctr_drbg_init(&random);
    Require(mbedtls_ctr_drbg_seed(&random, FixedEntropy, nullptr, nullptr, 0) == 0, "drbg");
  }

  void SetUp(mbedtls_ssl_config* conf, size_t cid_length) {
    mbedtls_ssl_config_init(conf);
    Require(mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_DATAGRAM,
                                        MBEDTLS_SSL_PRESET_DEFAULT) == 0,
            "client configuration");
    mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &random);
    mbedtls_ssl_conf_ciphersuites(conf, kSuites);
    Require(mbedtls_ssl_conf_psk(
                conf, reinterpret_cast<const unsigned char*>(kKey), sizeof(kKey) - 1,
                reinterpret_cast<const unsigned char*>(kIdentity), sizeof(kIdentity) - 1) == 0,
            "client psk");
    if (cid_length != 0) {
      Require(mbedtls_ssl_conf_cid(conf, cid_length, MBEDTLS_SSL_UNEXPECTED_CID_IGNORE) == 0,
              "client cid");
    }
  }
};

// The shard: sends are kept for routing, timers run on a clock the input moves.
class FuzzIo : public lwm2md::net::ShardIo {
 public:
  struct Sent {
    PeerAddress to;
    std::vector<uint8_t> bytes;
  };

  FuzzIo() : now_(lwm2md::net::TimePoint() + std::chrono::hours(24)), timers_(now_) {}
  int shard_id() const override { return 1; }
  lwm2md::net::TimePoint Now() const override { return now_; }
  bool Send(int listener, const PeerAddress& to, std::span<const uint8_t> bytes) override {
    Require(listener == kListener, "sent on another listener");
    sent_.push_back(Sent{to, std::vector<uint8_t>(bytes.begin(), bytes.end())});
    return true;
  }
  lwm2md::net::TimerWheel& timers() override { return timers_; }

  void Advance(std::chrono::milliseconds duration) {
    // In 10 ms steps, as a busy shard loop would see the clock.
    for (auto left = duration; left.count() > 0; left -= std::chrono::milliseconds(10)) {
      now_ += std::min(left, std::chrono::milliseconds(10));
      timers_.Advance(now_);
    }
  }
  std::vector<Sent> TakeSent() {
    std::vector<Sent> out;
    out.swap(sent_);
    return out;
  }

 private:
  lwm2md::net::TimePoint now_;
  lwm2md::net::TimerWheel timers_;
  std::vector<Sent> sent_;
};

// The operands of the script; reads past the end yield zeros.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : bytes_(data, size) {}
  bool empty() const { return position_ >= bytes_.size(); }
  uint8_t Byte() { return empty() ? 0 : bytes_[position_++]; }
  std::span<const uint8_t> Bytes(size_t count) {
    count = std::min(count, bytes_.size() - std::min(position_, bytes_.size()));
    std::span<const uint8_t> out = bytes_.subspan(position_, count);
    position_ += count;
    return out;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t position_ = 0;
};

class Run {
 public:
  enum Op : uint8_t {
    kRaw,          // from, length (2 bytes), bytes: a datagram as is
    kClientStep,   // from, offset, xor: one handshake step (or read), its datagrams altered
    kApplication,  // from, offset, xor, length, plaintext: one record of the client's
    kReplay,       // from, index, offset, xor: a datagram the client sent before, again
    kCloseNotify,  // from
    kAdvance,      // n: the clock moves (n + 1) * 50 ms
    kServerSend,   // to, length, plaintext: the server encrypts to that address
    kRestart,      // at: the client starts over (new context) at that address
    kOpCount,
  };

  Run(Shared& shared, uint8_t mode) : shared_(shared), cid_((mode & 2) != 0) {
    absl::StatusOr<std::unique_ptr<DtlsServer>> server = DtlsServer::Create(
        io_, shared_.options, metrics_,
        [this](const lwm2md::net::ReceivedDatagram& datagram) { OnDeliver(datagram); });
    Require(server.ok(), "server creation");
    server_ = std::move(*server);
    StartClient(shared_.addresses[0]);
  }

  ~Run() {
    server_.reset();
    Require(io_.timers().size() == 0, "a timer outlives the server");
    Require(metrics_.sessions.Value() == 0, "session gauge after destruction");
  }

  // A PSK handshake with the right key must complete.
  void Handshake() {
    for (int round = 0; round < 16 && !client_->handshake_over(); ++round) {
      const int result = mbedtls_ssl_handshake(client_->ssl());
      Require(result == 0 || result == MBEDTLS_ERR_SSL_WANT_READ, "client handshake failed");
      Forward(client_address_, 0, 0);
    }
    Require(client_->handshake_over(), "handshake did not complete");
    Require(metrics_.handshakes_completed.Value() == 1, "handshakes_completed");
    const PeerIdentity* identity = server_->FindIdentity(client_address_);
    Require(identity != nullptr && identity->endpoint == kEndpoint, "identity after handshake");
  }

  void Do(Input& in) {
    switch (static_cast<Op>(in.Byte() % kOpCount)) {
      case kRaw: {
        const PeerAddress from = From(in.Byte());
        const size_t length = (size_t{in.Byte()} << 8) | in.Byte();
        const std::span<const uint8_t> bytes = in.Bytes(length);
        server_->OnDatagram({kListener, from, bytes});
        Route();
        break;
      }
      case kClientStep: {
        const PeerAddress from = From(in.Byte());
        const uint8_t offset = in.Byte();
        const uint8_t flip = in.Byte();
        if (!client_->handshake_over()) {
          mbedtls_ssl_handshake(client_->ssl());
        } else {
          ClientReads();
        }
        Forward(from, offset, flip);
        break;
      }
      case kApplication: {
        const PeerAddress from = From(in.Byte());
        const uint8_t offset = in.Byte();
        const uint8_t flip = in.Byte();
        const std::span<const uint8_t> plaintext = in.Bytes(in.Byte());
        if (!client_->handshake_over()) break;
        if (client_->Write(Text(plaintext)) == static_cast<int>(plaintext.size())) {
          ++written_[Text(plaintext)];
        }
        Forward(from, offset, flip);
        break;
      }
      case kReplay: {
        const PeerAddress from = From(in.Byte());
        const uint8_t index = in.Byte();
        const uint8_t offset = in.Byte();
        const uint8_t flip = in.Byte();
        if (history_.empty()) break;
        std::vector<uint8_t> datagram = history_[index % history_.size()];
        Alter(datagram, offset, flip);
        server_->OnDatagram({kListener, from, datagram});
        Route();
        break;
      }
      case kCloseNotify: {
        const PeerAddress from = From(in.Byte());
        mbedtls_ssl_close_notify(client_->ssl());
        Forward(from, 0, 0);
        break;
      }
      case kAdvance: {
        const std::chrono::milliseconds step((in.Byte() + 1) * 50);
        io_.Advance(step);
        link_.clock.now_ms += static_cast<uint64_t>(step.count());
        Route();
        break;
      }
      case kServerSend: {
        const PeerAddress to = From(in.Byte());
        const std::span<const uint8_t> plaintext = in.Bytes(in.Byte());
        if (server_->Send(kListener, to, plaintext)) ++sent_plaintext_[Text(plaintext)];
        Route();
        if (client_->handshake_over()) ClientReads();
        break;
      }
      case kRestart:
        StartClient(From(in.Byte()));
        break;
      case kOpCount:
        break;
    }
    Check();
  }

 private:
  // 0 (the commonest byte): wherever the client is now; 1 to 4: shared_.addresses[0 to 3].
  PeerAddress From(uint8_t selector) const {
    const size_t index = selector % (shared_.addresses.size() + 1);
    return index == 0 ? client_address_ : shared_.addresses[index - 1];
  }

  void StartClient(const PeerAddress& at) {
    client_address_ = at;
    link_.to_server.Clear();
    link_.to_client.Clear();
    client_ = std::make_unique<Endpoint>(cid_ ? &shared_.client_cid : &shared_.client,
                                         &link_.to_client, &link_.to_server, &link_.clock);
    Require(client_->setup_result() == 0, "client setup");
    if (cid_) {
      Require(mbedtls_ssl_set_cid(client_->ssl(), MBEDTLS_SSL_CID_ENABLED, kClientCid,
                                  sizeof(kClientCid)) == 0,
              "client cid");
    }
  }

  static void Alter(std::vector<uint8_t>& datagram, uint8_t offset, uint8_t flip) {
    if (flip != 0 && !datagram.empty()) datagram[offset % datagram.size()] ^= flip;
  }

  // Hands what the client wrote to the server as coming from `from` (the first datagram
  // altered), then the server's answers to the client.
  void Forward(const PeerAddress& from, uint8_t offset, uint8_t flip) {
    bool first = true;
    for (; !link_.to_server.empty(); link_.to_server.Pop()) {
      const std::span<const uint8_t> front = link_.to_server.Front();
      std::vector<uint8_t> datagram(front.begin(), front.end());
      if (history_.size() < kMaxHistory) history_.push_back(datagram);
      if (first) Alter(datagram, offset, flip);
      first = false;
      server_->OnDatagram({kListener, from, datagram});
    }
    Route();
  }

  // The network delivers to the client only what is addressed to where it is.
  void Route() {
    for (FuzzIo::Sent& sent : io_.TakeSent()) {
      if (sent.to == client_address_) link_.to_client.Push(sent.bytes);
    }
  }

  void ClientReads() {
    std::string plaintext;
    for (int i = 0; i < 8; ++i) {
      const int result = client_->Read(&plaintext);
      if (result <= 0) break;
      auto it = sent_plaintext_.find(plaintext);
      Require(it != sent_plaintext_.end() && it->second > 0,
              "the client read a record the server never sent (or twice)");
      --it->second;
    }
  }

  void OnDeliver(const lwm2md::net::ReceivedDatagram& datagram) {
    Require(datagram.listener == kListener, "delivered on another listener");
    Require(!datagram.bytes.empty(), "delivered an empty message");
    auto it = written_.find(Text(datagram.bytes));
    Require(it != written_.end() && it->second > 0,
            "delivered a record the client never wrote (or twice)");
    --it->second;
    Require(metrics_.records_in.Value() > 0, "delivered without records_in");
  }

  void Check() {
    Require(metrics_.sessions.Value() == server_->session_count(), "session gauge");
    Require(server_->session_count() <= shared_.options.max_sessions, "beyond max_sessions");
    for (const PeerAddress& address : shared_.addresses) {
      if (const PeerIdentity* identity = server_->FindIdentity(address)) {
        Require(identity->psk_identity == kIdentity && identity->endpoint == kEndpoint &&
                    !identity->ciphersuite.empty(),
                "an established session with an identity nobody proved");
      }
    }
  }

  Shared& shared_;
  const bool cid_;
  FuzzIo io_;
  DtlsMetrics metrics_;
  std::unique_ptr<DtlsServer> server_;
  Link link_;
  std::unique_ptr<Endpoint> client_;
  PeerAddress client_address_;
  std::vector<std::vector<uint8_t>> history_;
  // Plaintexts each side encrypted, with how often: the other side may read each that often.
  std::map<std::string, int> written_;
  std::map<std::string, int> sent_plaintext_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Shared& shared = *new Shared;  // never destroyed: inputs run until the process ends
  Input in(data, size);
  const uint8_t mode = in.Byte();
  shared.Reseed();
  Run run(shared, mode);
  if (mode & 1) run.Handshake();
  for (size_t n = 0; n < kMaxOperations && !in.empty(); ++n) run.Do(in);
  return 0;
}
