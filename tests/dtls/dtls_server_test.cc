// dtls::DtlsServer driven by real mbedTLS clients over an in-memory network: datagrams the
// server sends are captured by a fake shard and routed to the client at that address; what a
// client writes reaches OnDatagram from whichever address the test says. Each test checks
// what an operator sees: the DTLS counters, the sessions held, what reaches CoAP and what
// goes out on the wire.

#include "dtls/dtls_server.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dtls_pair.h"
#include "gtest/gtest.h"
#include "mbedtls/ssl.h"
#include "mbedtls/ssl_ciphersuites.h"
#include "net/peer_address.h"
#include "net/shard.h"
#include "net/steering.h"
#include "net/timer_wheel.h"

namespace lwm2md::dtls {
namespace {

using testing::ClientConfig;
using testing::Endpoint;
using testing::Link;
using testing::Random;

constexpr int kListener = 2;
constexpr int kShard = 3;
constexpr char kIdentity[] = "urn:imei:351234567890123";
constexpr char kEndpoint[] = "sensor-17";
constexpr char kOtherIdentity[] = "urn:imei:351234567890999";
constexpr char kOtherEndpoint[] = "sensor-99";
const std::string kKey(16, '\x5a');
const std::string kOtherKey(32, '\x3c');
constexpr uint8_t kClientCid[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
// The client prefers GCM; the server's order (CCM_8 first, as LwM2M mandates) must win.
constexpr int kClientSuites[] = {MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256,
                                 MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, 0};

net::PeerAddress Address(std::string_view text) {
  std::optional<net::PeerAddress> address = net::PeerAddress::Parse(text);
  EXPECT_TRUE(address.has_value()) << text;
  return address.value_or(net::PeerAddress());
}

std::span<const uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// A shard as the server sees it: sends are captured, timers run on a clock the test moves.
class TestIo : public net::ShardIo {
 public:
  struct Sent {
    int listener = 0;
    net::PeerAddress to;
    std::vector<uint8_t> bytes;
  };

  TestIo() : now_(net::TimePoint() + std::chrono::hours(24)), timers_(now_) {}

  int shard_id() const override { return kShard; }
  net::TimePoint Now() const override { return now_; }
  bool Send(int listener, const net::PeerAddress& to, std::span<const uint8_t> bytes) override {
    sent_.push_back(Sent{listener, to, std::vector<uint8_t>(bytes.begin(), bytes.end())});
    ++sent_total_;
    return true;
  }
  net::TimerWheel& timers() override { return timers_; }

  // In 1 ms steps, firing timers as the shard loop would.
  void Advance(net::Duration duration) {
    const net::TimePoint target = now_ + duration;
    while (now_ < target) {
      now_ += std::min<net::Duration>(std::chrono::milliseconds(1), target - now_);
      timers_.Advance(now_);
    }
  }

  std::vector<Sent> TakeSent() {
    std::vector<Sent> out;
    out.swap(sent_);
    return out;
  }
  size_t sent_total() const { return sent_total_; }

 private:
  net::TimePoint now_;
  net::TimerWheel timers_;
  std::vector<Sent> sent_;
  size_t sent_total_ = 0;
};

// An mbedTLS DTLS client at one address, with a PSK and (optionally) a connection id of its
// own to offer.
struct Client {
  Client(Random* random, const net::PeerAddress& at, std::string_view identity,
         std::string_view key, bool offer_cid)
      : address(at), config(random, kClientSuites) {
    psk_result = config.SetPsk(identity, key);
    endpoint =
        std::make_unique<Endpoint>(config.conf(), &link.to_client, &link.to_server, &link.clock);
    if (offer_cid) cid_result = testing::UseCid(*endpoint, kClientCid);
  }
  bool ok() const {
    return config.result() == 0 && psk_result == 0 && cid_result == 0 &&
           endpoint->setup_result() == 0;
  }
  mbedtls_ssl_context* ssl() { return endpoint->ssl(); }

  // What the client has written and not yet handed to the network.
  std::vector<std::vector<uint8_t>> TakeWritten() {
    std::vector<std::vector<uint8_t>> out;
    for (; !link.to_server.empty(); link.to_server.Pop()) {
      std::span<const uint8_t> d = link.to_server.Front();
      out.emplace_back(d.begin(), d.end());
    }
    return out;
  }

  net::PeerAddress address;
  Link link;
  ClientConfig config;
  std::unique_ptr<Endpoint> endpoint;
  int psk_result = 0;
  int cid_result = 0;
};

struct Delivered {
  int listener = 0;
  net::PeerAddress peer;
  std::string plaintext;
};

class DtlsServerTest : public ::testing::Test {
 protected:
  DtlsServerTest() {
    options_.handshake_timeout_min = absl::Seconds(1);
    options_.handshake_timeout_max = absl::Seconds(4);
    options_.psk_lookup = [](std::string_view identity) -> std::optional<PskCredential> {
      if (identity == kIdentity) return PskCredential{kKey, kEndpoint};
      if (identity == kOtherIdentity) return PskCredential{kOtherKey, kOtherEndpoint};
      return std::nullopt;
    };
  }

  void StartServer() {
    ASSERT_TRUE(random_.ok());
    absl::StatusOr<std::unique_ptr<DtlsServer>> server =
        DtlsServer::Create(io_, options_, metrics_, [this](const net::ReceivedDatagram& d) {
          delivered_.push_back(Delivered{
              d.listener, d.peer,
              std::string(reinterpret_cast<const char*>(d.bytes.data()), d.bytes.size())});
        });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  // A client the network routes the server's datagrams for `at` to (the latest one made
  // for an address takes it over, as a device that restarted would).
  Client& NewClient(std::string_view at, std::string_view identity = kIdentity,
                    std::string_view key = kKey, bool offer_cid = true) {
    clients_.push_back(std::make_unique<Client>(&random_, Address(at), identity, key, offer_cid));
    Client& client = *clients_.back();
    EXPECT_TRUE(client.ok());
    return client;
  }

  void Feed(const net::PeerAddress& from, std::span<const uint8_t> bytes) {
    server_->OnDatagram(net::ReceivedDatagram{kListener, from, bytes});
  }

  // Hands the server's datagrams to the clients they are addressed to.
  void Route() {
    for (TestIo::Sent& sent : io_.TakeSent()) {
      EXPECT_EQ(sent.listener, kListener);
      for (auto it = clients_.rbegin(); it != clients_.rend(); ++it) {
        if ((*it)->address == sent.to) {
          (*it)->link.to_client.Push(sent.bytes);
          break;
        }
      }
    }
  }

  // Sends what the client wrote from its own address, then routes the answers.
  void Exchange(Client& client) {
    for (const std::vector<uint8_t>& datagram : client.TakeWritten())
      Feed(client.address, datagram);
    Route();
  }

  // Runs the client's handshake against the server; 0 or the client's error.
  int Handshake(Client& client) {
    for (int round = 0; round < 16 && !client.endpoint->handshake_over(); ++round) {
      const int result = mbedtls_ssl_handshake(client.ssl());
      Exchange(client);
      if (result != 0 && result != MBEDTLS_ERR_SSL_WANT_READ &&
          result != MBEDTLS_ERR_SSL_WANT_WRITE) {
        return result;
      }
      if (client.link.to_client.empty() && client.link.to_server.empty() &&
          !client.endpoint->handshake_over()) {
        // Nothing left to answer: the server dropped the client or stays silent.
        return MBEDTLS_ERR_SSL_TIMEOUT;
      }
    }
    return client.endpoint->handshake_over() ? 0 : MBEDTLS_ERR_SSL_TIMEOUT;
  }

  // One application record, encrypted by the client and not yet sent.
  std::vector<uint8_t> Record(Client& client, std::string_view plaintext) {
    EXPECT_EQ(client.endpoint->Write(plaintext), static_cast<int>(plaintext.size()));
    std::vector<std::vector<uint8_t>> written = client.TakeWritten();
    EXPECT_EQ(written.size(), 1u);
    return written.empty() ? std::vector<uint8_t>() : written.front();
  }

  // Routes what the server sent and returns the plaintext the client reads from it.
  std::string ClientReads(Client& client) {
    Route();
    std::string out;
    const int result = client.endpoint->Read(&out);
    EXPECT_GT(result, 0) << "client read: -0x" << std::hex << -result;
    return out;
  }

  uint64_t Failures(DtlsMetrics::Failure failure) const {
    return metrics_.handshake_failures[static_cast<int>(failure)].Value();
  }
  uint64_t Dropped(DtlsMetrics::Drop drop) const {
    return metrics_.dropped[static_cast<int>(drop)].Value();
  }
  uint64_t AllFailures() const {
    uint64_t n = 0;
    for (const net::ShardCounter& c : metrics_.handshake_failures) n += c.Value();
    return n;
  }

  Random random_;
  TestIo io_;
  DtlsOptions options_;
  DtlsMetrics metrics_;
  std::vector<Delivered> delivered_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::unique_ptr<DtlsServer> server_;
};

TEST_F(DtlsServerTest, ClientHelloWithoutCookieGetsHelloVerifyRequestAndKeepsNoState) {
  StartServer();
  Client& client = NewClient("192.0.2.10:40001");
  ASSERT_EQ(mbedtls_ssl_handshake(client.ssl()), MBEDTLS_ERR_SSL_WANT_READ);
  std::vector<std::vector<uint8_t>> hello = client.TakeWritten();
  ASSERT_EQ(hello.size(), 1u);
  Feed(client.address, hello[0]);

  std::vector<TestIo::Sent> sent = io_.TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to, client.address);
  // RFC 6347 §4.2.1: a handshake record (22), epoch 0, carrying hello_verify_request (3).
  ASSERT_GT(sent[0].bytes.size(), 13u);
  EXPECT_EQ(sent[0].bytes[0], 22);
  EXPECT_EQ(sent[0].bytes[13], 3);
  EXPECT_EQ(metrics_.hello_verify_requests.Value(), 1u);
  EXPECT_EQ(metrics_.handshakes_started.Value(), 0u);
  EXPECT_EQ(server_->session_count(), 0u);
  EXPECT_EQ(metrics_.sessions.Value(), 0u);

  // The same ClientHello again (a retransmission) costs no state either.
  Feed(client.address, hello[0]);
  EXPECT_EQ(metrics_.hello_verify_requests.Value(), 2u);
  EXPECT_EQ(server_->session_count(), 0u);
}

TEST_F(DtlsServerTest, HandshakeWithCookieThenApplicationDataBothWays) {
  StartServer();
  Client& client = NewClient("192.0.2.10:40001");
  ASSERT_EQ(Handshake(client), 0);
  EXPECT_EQ(metrics_.hello_verify_requests.Value(), 1u);
  EXPECT_EQ(metrics_.handshakes_started.Value(), 1u);
  EXPECT_EQ(metrics_.handshakes_completed.Value(), 1u);
  EXPECT_EQ(AllFailures(), 0u);
  EXPECT_EQ(server_->session_count(), 1u);
  EXPECT_EQ(metrics_.sessions.Value(), 1u);

  const PeerIdentity* identity = server_->FindIdentity(client.address);
  ASSERT_NE(identity, nullptr);
  EXPECT_EQ(identity->psk_identity, kIdentity);
  EXPECT_EQ(identity->endpoint, kEndpoint);
  EXPECT_EQ(identity->ciphersuite, "TLS-PSK-WITH-AES-128-CCM-8");
  EXPECT_STREQ(mbedtls_ssl_get_ciphersuite(client.ssl()), "TLS-PSK-WITH-AES-128-CCM-8");

  // The server's connection id names its shard in the first byte (net/steering.h).
  int enabled = MBEDTLS_SSL_CID_DISABLED;
  unsigned char server_cid[MBEDTLS_SSL_CID_OUT_LEN_MAX];
  size_t server_cid_length = 0;
  ASSERT_EQ(mbedtls_ssl_get_peer_cid(client.ssl(), &enabled, server_cid, &server_cid_length), 0);
  EXPECT_EQ(enabled, MBEDTLS_SSL_CID_ENABLED);
  ASSERT_EQ(server_cid_length, 8u);
  EXPECT_EQ(server_cid[0], kShard);

  const std::string request = "\x40\x01\x12\x34\xb2rd";  // a CoAP CON POST /rd
  Feed(client.address, Record(client, request));
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_EQ(delivered_[0].listener, kListener);
  EXPECT_EQ(delivered_[0].peer, client.address);
  EXPECT_EQ(delivered_[0].plaintext, request);
  EXPECT_EQ(metrics_.records_in.Value(), 1u);

  const std::string response = "\x60\x41\x12\x34";  // ACK 2.01 Created
  ASSERT_TRUE(server_->Send(kListener, client.address, AsBytes(response)));
  EXPECT_EQ(metrics_.records_out.Value(), 1u);
  EXPECT_EQ(ClientReads(client), response);
  EXPECT_EQ(metrics_.send_failures.Value(), 0u);
}

TEST_F(DtlsServerTest, SendWithoutEstablishedSessionFails) {
  StartServer();
  Client& client = NewClient("192.0.2.10:40001");
  EXPECT_FALSE(server_->Send(kListener, client.address, AsBytes("x")));
  ASSERT_EQ(Handshake(client), 0);
  // Another listener is another socket: the session is not there.
  EXPECT_FALSE(server_->Send(kListener + 1, client.address, AsBytes("x")));
  EXPECT_EQ(metrics_.send_failures.Value(), 2u);
  EXPECT_EQ(metrics_.records_out.Value(), 0u);
  EXPECT_EQ(server_->FindIdentity(Address("192.0.2.10:40002")), nullptr);
}

TEST_F(DtlsServerTest, ConnectionIdRecordFromNewAddressMovesTheSession) {
  StartServer();
  Client& client = NewClient("192.0.2.10:40001");
  ASSERT_EQ(Handshake(client), 0);
  Feed(client.address, Record(client, "before"));
  ASSERT_EQ(delivered_.size(), 1u);

  // The NAT gave the device a new port: its records carry the connection id.
  const net::PeerAddress moved = Address("198.51.100.7:50123");
  const std::vector<uint8_t> record = Record(client, "after");
  ASSERT_EQ(record[0], net::kDtlsContentTypeCid);
  Feed(moved, record);
  ASSERT_EQ(delivered_.size(), 2u);
  EXPECT_EQ(delivered_[1].plaintext, "after");
  EXPECT_EQ(delivered_[1].peer, moved);
  EXPECT_EQ(metrics_.rebinds.Value(), 1u);
  EXPECT_EQ(server_->session_count(), 1u);
  ASSERT_NE(server_->FindIdentity(moved), nullptr);
  EXPECT_EQ(server_->FindIdentity(moved)->endpoint, kEndpoint);

  // Answers go to where the client now is.
  client.address = moved;
  ASSERT_TRUE(server_->Send(kListener, moved, AsBytes("ack")));
  EXPECT_EQ(ClientReads(client), "ack");
}

TEST_F(DtlsServerTest, ForgedConnectionIdRecordFromNewAddressDoesNotMoveTheSession) {
  StartServer();
  Client& client = NewClient("192.0.2.10:40001");
  ASSERT_EQ(Handshake(client), 0);

  const net::PeerAddress attacker = Address("203.0.113.66:6666");
  std::vector<uint8_t> record = Record(client, "hijack");
  ASSERT_EQ(record[0], net::kDtlsContentTypeCid);
  record.back() ^= 0x01;  // the connection id stays valid, the authentication tag does not
  Feed(attacker, record);
  EXPECT_TRUE(delivered_.empty());
  EXPECT_EQ(metrics_.rebinds.Value(), 0u);
  EXPECT_EQ(server_->FindIdentity(attacker), nullptr);

  // The session still answers at the client's own address.
  ASSERT_TRUE(server_->Send(kListener, client.address, AsBytes("still here")));
  std::vector<TestIo::Sent> sent = io_.TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to, client.address);
  Feed(client.address, Record(client, "mine"));
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_EQ(delivered_[0].peer, client.address);
}

TEST_F(DtlsServerTest, SilentClientGetsRetransmissionsThenTheHandshakeTimesOut) {
  StartServer();
  Client& client = NewClient("192.0.2.10:40001");
  // ClientHello, HelloVerifyRequest, ClientHello with the cookie, the server's flight.
  ASSERT_EQ(mbedtls_ssl_handshake(client.ssl()), MBEDTLS_ERR_SSL_WANT_READ);
  Exchange(client);
  ASSERT_EQ(mbedtls_ssl_handshake(client.ssl()), MBEDTLS_ERR_SSL_WANT_READ);
  Exchange(client);
  ASSERT_EQ(metrics_.handshakes_started.Value(), 1u);
  ASSERT_EQ(server_->session_count(), 1u);
  const size_t first_flight = io_.sent_total();

  // The client never answers. RFC 6347 §4.2.4.1: the flight goes out again after the
  // initial timeout, with the timeout doubled each time up to the maximum.
  io_.Advance(std::chrono::milliseconds(1001));
  EXPECT_GT(io_.sent_total(), first_flight);
  EXPECT_EQ(server_->session_count(), 1u);
  EXPECT_EQ(Failures(DtlsMetrics::Failure::kTimeout), 0u);

  // 1 + 2 + 4 seconds of timeouts (the maximum, 4 s, reached), then the handshake fails.
  io_.Advance(std::chrono::seconds(7));
  EXPECT_EQ(server_->session_count(), 0u);
  EXPECT_EQ(metrics_.sessions.Value(), 0u);
  EXPECT_EQ(Failures(DtlsMetrics::Failure::kTimeout), 1u);
  EXPECT_EQ(metrics_.handshakes_completed.Value(), 0u);
  EXPECT_EQ(server_->FindIdentity(client.address), nullptr);
}

TEST_F(DtlsServerTest, RestartedClientThatGoesSilentTimesOut) {
  StartServer();
  Client& old_client = NewClient("192.0.2.10:40001");
  ASSERT_EQ(Handshake(old_client), 0);
  // The device restarts at the same address, gets its cookie, sends the ClientHello that
  // carries it (the session starts over), then is never heard from again.
  Client& client = NewClient("192.0.2.10:40001");
  ASSERT_EQ(mbedtls_ssl_handshake(client.ssl()), MBEDTLS_ERR_SSL_WANT_READ);
  Exchange(client);
  ASSERT_EQ(mbedtls_ssl_handshake(client.ssl()), MBEDTLS_ERR_SSL_WANT_READ);
  Exchange(client);
  ASSERT_EQ(metrics_.handshakes_started.Value(), 2u);
  ASSERT_EQ(server_->session_count(), 1u);
  EXPECT_EQ(server_->FindIdentity(client.address), nullptr);  // handshaking, not established
  const size_t first_flight = io_.sent_total();

  io_.Advance(std::chrono::milliseconds(999));
  EXPECT_EQ(io_.sent_total(), first_flight);
  io_.Advance(std::chrono::milliseconds(2));
  EXPECT_GT(io_.sent_total(), first_flight);  // RFC 6347 §4.2.4.1: the flight again
  EXPECT_EQ(server_->session_count(), 1u);

  // 1 + 2 + 4 seconds of timeouts (the maximum, 4 s, reached), then the handshake fails.
  io_.Advance(std::chrono::seconds(7));
  EXPECT_EQ(server_->session_count(), 0u);
  EXPECT_EQ(metrics_.sessions.Value(), 0u);
  EXPECT_EQ(Failures(DtlsMetrics::Failure::kTimeout), 1u);
  EXPECT_EQ(AllFailures(), 1u);
  EXPECT_EQ(metrics_.handshakes_completed.Value(), 1u);
}

TEST_F(DtlsServerTest, WrongKeyFailsAsBadCredentials) {
  StartServer();
  Client& client = NewClient("192.0.2.10:40001", kIdentity, "not the endpoint's key");
  EXPECT_NE(Handshake(client), 0);
  EXPECT_EQ(metrics_.handshakes_started.Value(), 1u);
  EXPECT_EQ(Failures(DtlsMetrics::Failure::kBadCredentials), 1u);
  EXPECT_EQ(AllFailures(), 1u);
  EXPECT_EQ(metrics_.handshakes_completed.Value(), 0u);
  EXPECT_EQ(server_->session_count(), 0u);
  EXPECT_EQ(metrics_.sessions.Value(), 0u);
  EXPECT_EQ(server_->FindIdentity(client.address), nullptr);
}

TEST_F(DtlsServerTest, UnknownIdentityFails) {
  StartServer();
  Client& client = NewClient("192.0.2.10:40001", "urn:imei:000000000000000", kKey);
  EXPECT_NE(Handshake(client), 0);
  EXPECT_EQ(Failures(DtlsMetrics::Failure::kUnknownIdentity), 1u);
  EXPECT_EQ(AllFailures(), 1u);
  EXPECT_EQ(metrics_.handshakes_completed.Value(), 0u);
  EXPECT_EQ(server_->session_count(), 0u);
  EXPECT_EQ(metrics_.sessions.Value(), 0u);
}

TEST_F(DtlsServerTest, NewHandshakeFromAnEstablishedAddressReplacesTheSession) {
  StartServer();
  Client& old_client = NewClient("192.0.2.10:40001");
  ASSERT_EQ(Handshake(old_client), 0);
  const std::vector<uint8_t> stale = Record(old_client, "from before the restart");

  // The device restarted with the same address (and another credential, to tell them apart).
  Client& client = NewClient("192.0.2.10:40001", kOtherIdentity, kOtherKey);
  ASSERT_EQ(Handshake(client), 0);
  EXPECT_EQ(metrics_.handshakes_completed.Value(), 2u);
  EXPECT_EQ(AllFailures(), 0u);
  EXPECT_EQ(server_->session_count(), 1u);
  EXPECT_EQ(metrics_.sessions.Value(), 1u);
  const PeerIdentity* identity = server_->FindIdentity(client.address);
  ASSERT_NE(identity, nullptr);
  EXPECT_EQ(identity->psk_identity, kOtherIdentity);
  EXPECT_EQ(identity->endpoint, kOtherEndpoint);

  // The old keys are gone: the old session's record is not delivered, the new one's are.
  Feed(client.address, stale);
  EXPECT_TRUE(delivered_.empty());
  Feed(client.address, Record(client, "after the restart"));
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_EQ(delivered_[0].plaintext, "after the restart");
  ASSERT_TRUE(server_->Send(kListener, client.address, AsBytes("welcome back")));
  EXPECT_EQ(ClientReads(client), "welcome back");
}

TEST_F(DtlsServerTest, AddressLeftByRebindingCanBeTakenByAnotherClient) {
  StartServer();
  Client& first = NewClient("192.0.2.10:40001");
  ASSERT_EQ(Handshake(first), 0);
  first.address = Address("198.51.100.7:50123");
  Feed(first.address, Record(first, "moved"));
  ASSERT_EQ(metrics_.rebinds.Value(), 1u);

  // The NAT hands the old address to another device.
  Client& second = NewClient("192.0.2.10:40001", kOtherIdentity, kOtherKey);
  ASSERT_EQ(Handshake(second), 0);
  ASSERT_NE(server_->FindIdentity(second.address), nullptr);
  EXPECT_EQ(server_->FindIdentity(second.address)->endpoint, kOtherEndpoint);
  // The moved device keeps its session.
  ASSERT_NE(server_->FindIdentity(first.address), nullptr);
  EXPECT_EQ(server_->FindIdentity(first.address)->endpoint, kEndpoint);
  Feed(first.address, Record(first, "still mine"));
  ASSERT_FALSE(delivered_.empty());
  EXPECT_EQ(delivered_.back().plaintext, "still mine");
  EXPECT_EQ(server_->session_count(), 2u);
}

TEST_F(DtlsServerTest, SameAddressOnAnotherListenerIsAnotherPeer) {
  StartServer();
  Client& client = NewClient("192.0.2.10:40001");
  ASSERT_EQ(Handshake(client), 0);
  // The same source address and port, to the server's other coaps socket (say the
  // bootstrap port): a ClientHello there must be answered on that socket.
  Client& other = NewClient("192.0.2.10:40001", kOtherIdentity, kOtherKey);
  ASSERT_EQ(mbedtls_ssl_handshake(other.ssl()), MBEDTLS_ERR_SSL_WANT_READ);
  for (const std::vector<uint8_t>& datagram : other.TakeWritten()) {
    server_->OnDatagram(net::ReceivedDatagram{kListener + 1, other.address, datagram});
  }
  std::vector<TestIo::Sent> sent = io_.TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].listener, kListener + 1);
}

TEST_F(DtlsServerTest, CloseNotifyEndsTheSession) {
  StartServer();
  // Without a connection id: its records are found by address.
  Client& client = NewClient("192.0.2.10:40001", kIdentity, kKey, /*offer_cid=*/false);
  ASSERT_EQ(Handshake(client), 0);
  const std::vector<uint8_t> late = Record(client, "late");
  ASSERT_EQ(late[0], MBEDTLS_SSL_MSG_APPLICATION_DATA);

  ASSERT_EQ(mbedtls_ssl_close_notify(client.ssl()), 0);
  Exchange(client);
  EXPECT_EQ(metrics_.closed.Value(), 1u);
  EXPECT_EQ(server_->session_count(), 0u);
  EXPECT_EQ(metrics_.sessions.Value(), 0u);
  EXPECT_EQ(server_->FindIdentity(client.address), nullptr);
  EXPECT_FALSE(server_->Send(kListener, client.address, AsBytes("x")));

  const uint64_t no_session = Dropped(DtlsMetrics::Drop::kNoSession);
  Feed(client.address, late);
  EXPECT_TRUE(delivered_.empty());
  EXPECT_EQ(Dropped(DtlsMetrics::Drop::kNoSession), no_session + 1);
}

TEST_F(DtlsServerTest, MalformedDatagramsAreCountedAndDropped) {
  StartServer();
  const net::PeerAddress stranger = Address("203.0.113.5:1234");
  // Shorter than a record header.
  const uint8_t runt[] = {23, 0xfe, 0xfd, 0, 1};
  Feed(stranger, runt);
  EXPECT_EQ(Dropped(DtlsMetrics::Drop::kMalformed), 1u);
  // A connection id record cut inside its id.
  const uint8_t cut_cid[] = {25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, kShard, 0, 0};
  Feed(stranger, cut_cid);
  EXPECT_EQ(Dropped(DtlsMetrics::Drop::kMalformed), 2u);
  // A whole connection id record whose id no session has.
  std::vector<uint8_t> unknown_cid = {25,     0xfe, 0xfd, 0, 1, 0, 0,    0,    0, 0, 7,
                                      kShard, 0,    0,    0, 0, 0, 0x7f, 0x7f, 0, 24};
  unknown_cid.resize(unknown_cid.size() + 24, 0xa5);
  Feed(stranger, unknown_cid);
  // Application data from an address without a session, and bytes that are no record.
  std::vector<uint8_t> application = {23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 16};
  application.resize(application.size() + 16, 0x42);
  Feed(stranger, application);
  std::vector<uint8_t> garbage(100);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 37 + 11);
  Feed(stranger, garbage);
  EXPECT_EQ(Dropped(DtlsMetrics::Drop::kNoSession), 3u);
  EXPECT_EQ(Dropped(DtlsMetrics::Drop::kMalformed), 2u);

  // Something shaped like a ClientHello whose body is garbage: a refused handshake, nothing
  // kept, and no answer to an address that has not proved itself.
  std::vector<uint8_t> bad_hello = {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 30, 1};
  bad_hello.resize(bad_hello.size() + 29, 0xee);
  Feed(stranger, bad_hello);
  EXPECT_EQ(Failures(DtlsMetrics::Failure::kProtocol), 1u);
  EXPECT_EQ(metrics_.hello_verify_requests.Value(), 0u);
  EXPECT_EQ(metrics_.handshakes_started.Value(), 0u);
  EXPECT_EQ(server_->session_count(), 0u);
  EXPECT_TRUE(delivered_.empty());
  EXPECT_TRUE(io_.TakeSent().empty());

  // The same bytes at an established session are discarded by it, and it goes on working.
  Client& client = NewClient("192.0.2.10:40001");
  ASSERT_EQ(Handshake(client), 0);
  Feed(client.address, garbage);
  Feed(client.address, application);
  Feed(client.address, runt);
  EXPECT_EQ(Dropped(DtlsMetrics::Drop::kMalformed), 3u);
  EXPECT_EQ(server_->session_count(), 1u);
  EXPECT_TRUE(delivered_.empty());
  Feed(client.address, Record(client, "fine"));
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_EQ(delivered_[0].plaintext, "fine");
}

TEST_F(DtlsServerTest, CookieVerifiedHelloBeyondMaxSessionsIsDropped) {
  options_.max_sessions = 1;
  StartServer();
  Client& first = NewClient("192.0.2.10:40001");
  Client& second = NewClient("192.0.2.20:40002", kOtherIdentity, kOtherKey);
  // The second client gets its cookie while the shard still has room...
  ASSERT_EQ(mbedtls_ssl_handshake(second.ssl()), MBEDTLS_ERR_SSL_WANT_READ);
  Exchange(second);
  ASSERT_EQ(metrics_.hello_verify_requests.Value(), 1u);
  // ...then the first takes the only place.
  ASSERT_EQ(Handshake(first), 0);
  ASSERT_EQ(server_->session_count(), 1u);

  ASSERT_EQ(mbedtls_ssl_handshake(second.ssl()), MBEDTLS_ERR_SSL_WANT_READ);
  Exchange(second);
  EXPECT_EQ(Dropped(DtlsMetrics::Drop::kOverloaded), 1u);
  EXPECT_EQ(metrics_.handshakes_started.Value(), 1u);
  EXPECT_EQ(server_->session_count(), 1u);
  EXPECT_TRUE(second.link.to_client.empty());  // no answer at all
  EXPECT_EQ(server_->FindIdentity(second.address), nullptr);

  // The session held is unaffected.
  Feed(first.address, Record(first, "ok"));
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_EQ(delivered_[0].plaintext, "ok");
}

TEST_F(DtlsServerTest, EmptyApplicationRecordKeepsTheSession) {
  StartServer();
  Client& client = NewClient("192.0.2.10:40001");
  ASSERT_EQ(Handshake(client), 0);
  // RFC 5246 §6.2.1: zero-length application data fragments MAY be sent (traffic analysis
  // countermeasure, or a keep-alive through a NAT). There is nothing for CoAP in one.
  Feed(client.address, Record(client, ""));
  EXPECT_TRUE(delivered_.empty());
  EXPECT_EQ(server_->session_count(), 1u);
  EXPECT_EQ(AllFailures(), 0u);
  Feed(client.address, Record(client, "next"));
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_EQ(delivered_[0].plaintext, "next");
}

TEST_F(DtlsServerTest, ReplayedRecordIsDeliveredOnce) {
  StartServer();
  Client& client = NewClient("192.0.2.10:40001");
  ASSERT_EQ(Handshake(client), 0);
  const std::vector<uint8_t> record = Record(client, "\x40\x02\x00\x01");
  Feed(client.address, record);
  Feed(client.address, record);
  // From another address it must not count as a rebind either (RFC 9146 §6).
  Feed(Address("203.0.113.9:9999"), record);
  EXPECT_EQ(delivered_.size(), 1u);
  EXPECT_EQ(metrics_.records_in.Value(), 1u);
  EXPECT_EQ(metrics_.rebinds.Value(), 0u);
}

}  // namespace
}  // namespace lwm2md::dtls
