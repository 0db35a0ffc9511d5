// An in-memory DTLS 1.2 link between an mbedTLS client and server: a datagram queue per
// direction behind the BIO callbacks, a fake millisecond clock behind the timer
// callbacks, and a driver that runs both handshakes to completion in one thread, with
// the server's HelloVerifyRequest round (RFC 6347 §4.2.1) handled as a server must.
// Shared by tests/dtls and bench/dtls_bench.cc; header-only, no sockets.
//
// Everything here lives on the thread that made it, like a shard's DTLS state.

#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "mbedtls/ctr_drbg.h"
#include "mbedtls/entropy.h"
#include "mbedtls/ssl.h"
#include "mbedtls/ssl_cookie.h"

namespace lwm2md::dtls::testing {

// One CTR_DRBG seeded from the kernel, as each shard will have.
class Random {
 public:
  Random() {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&drbg_);
    static constexpr char kPersonalisation[] = "lwm2md dtls test";
    ok_ = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_,
                                reinterpret_cast<const unsigned char*>(kPersonalisation),
                                sizeof(kPersonalisation) - 1) == 0;
  }
  ~Random() {
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
  }
  Random(const Random&) = delete;
  Random& operator=(const Random&) = delete;

  bool ok() const { return ok_; }
  mbedtls_ctr_drbg_context* drbg() { return &drbg_; }
  static int Generate(void* self, unsigned char* out, size_t len) {
    return mbedtls_ctr_drbg_random(&static_cast<Random*>(self)->drbg_, out, len);
  }

 private:
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
  bool ok_ = false;
};

// A bounded FIFO of datagrams in fixed slots: no allocation per datagram, so that
// benchmarks measure mbedTLS and not the queue.
class DatagramQueue {
 public:
  static constexpr size_t kSlots = 32;
  static constexpr size_t kMaxDatagram = 4096;

  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }
  void Clear() { head_ = count_ = 0; }

  // Returns false (the datagram is lost, as on a full socket buffer) when full.
  bool Push(std::span<const uint8_t> datagram) {
    if (count_ == kSlots || datagram.size() > kMaxDatagram) return false;
    Slot& s = slots_[(head_ + count_) % kSlots];
    std::memcpy(s.bytes.data(), datagram.data(), datagram.size());
    s.size = datagram.size();
    ++count_;
    return true;
  }
  std::span<const uint8_t> Front() const {
    const Slot& s = slots_[head_];
    return {s.bytes.data(), s.size};
  }
  void Pop() {
    head_ = (head_ + 1) % kSlots;
    --count_;
  }

  // mbedTLS BIO callbacks over a pair of queues (in, out).
  struct Ends {
    DatagramQueue* in;
    DatagramQueue* out;
  };
  static int Send(void* ends, const unsigned char* buf, size_t len) {
    static_cast<Ends*>(ends)->out->Push({buf, len});
    return static_cast<int>(len);  // UDP: a lost datagram was still sent.
  }
  static int Receive(void* ends, unsigned char* buf, size_t len) {
    DatagramQueue& q = *static_cast<Ends*>(ends)->in;
    if (q.empty()) return MBEDTLS_ERR_SSL_WANT_READ;
    std::span<const uint8_t> d = q.Front();
    size_t n = d.size() < len ? d.size() : len;  // Truncated like recvfrom().
    std::memcpy(buf, d.data(), n);
    q.Pop();
    return static_cast<int>(n);
  }

 private:
  struct Slot {
    size_t size = 0;
    std::array<uint8_t, kMaxDatagram> bytes;
  };
  std::array<Slot, kSlots> slots_;
  size_t head_ = 0;
  size_t count_ = 0;
};

// Milliseconds that pass only when a test says so.
struct FakeClock {
  uint64_t now_ms = 0;
};

// The retransmission timer of one context (mbedtls_ssl_set_timer_cb's contract).
struct Timer {
  FakeClock* clock = nullptr;
  uint64_t start_ms = 0;
  uint32_t intermediate_ms = 0;
  uint32_t final_ms = 0;

  static void Set(void* self, uint32_t int_ms, uint32_t fin_ms) {
    auto* t = static_cast<Timer*>(self);
    t->start_ms = t->clock->now_ms;
    t->intermediate_ms = int_ms;
    t->final_ms = fin_ms;
  }
  // -1 cancelled, 0 running, 1 intermediate delay passed, 2 final delay passed.
  static int Get(void* self) {
    auto* t = static_cast<Timer*>(self);
    if (t->final_ms == 0) return -1;
    uint64_t elapsed = t->clock->now_ms - t->start_ms;
    if (elapsed >= t->final_ms) return 2;
    if (elapsed >= t->intermediate_ms) return 1;
    return 0;
  }
};

// One side of the link: an SSL context with its BIO ends and its timer.
class Endpoint {
 public:
  // mtu 0 leaves mbedTLS's default (records up to the buffer size).
  Endpoint(const mbedtls_ssl_config* conf, DatagramQueue* in, DatagramQueue* out, FakeClock* clock,
           uint16_t mtu = 1280)
      : ends_{in, out} {
    timer_.clock = clock;
    mbedtls_ssl_init(&ssl_);
    setup_result_ = mbedtls_ssl_setup(&ssl_, conf);
    Attach(mtu);
  }
  ~Endpoint() { mbedtls_ssl_free(&ssl_); }
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  int setup_result() const { return setup_result_; }
  mbedtls_ssl_context* ssl() { return &ssl_; }
  bool handshake_over() { return mbedtls_ssl_is_handshake_over(&ssl_) != 0; }

  // Frees the context and sets it up afresh on `conf`, as a server does before loading a
  // saved session into it.
  int Reset(const mbedtls_ssl_config* conf, uint16_t mtu = 1280) {
    mbedtls_ssl_free(&ssl_);
    mbedtls_ssl_init(&ssl_);
    setup_result_ = mbedtls_ssl_setup(&ssl_, conf);
    Attach(mtu);
    return setup_result_;
  }

  // Sends `data` as one record; returns mbedTLS's result.
  int Write(std::string_view data) {
    return mbedtls_ssl_write(&ssl_, reinterpret_cast<const unsigned char*>(data.data()),
                             data.size());
  }
  // Reads one record into `out`; returns the byte count or an mbedTLS error.
  int Read(std::string* out) {
    std::array<unsigned char, 4096> buf;
    int n = mbedtls_ssl_read(&ssl_, buf.data(), buf.size());
    if (n > 0) out->assign(reinterpret_cast<const char*>(buf.data()), n);
    return n;
  }

 private:
  void Attach(uint16_t mtu) {
    mbedtls_ssl_set_bio(&ssl_, &ends_, DatagramQueue::Send, DatagramQueue::Receive, nullptr);
    mbedtls_ssl_set_timer_cb(&ssl_, &timer_, Timer::Set, Timer::Get);
    if (mtu != 0) mbedtls_ssl_set_mtu(&ssl_, mtu);
  }

  mbedtls_ssl_context ssl_;
  DatagramQueue::Ends ends_;
  Timer timer_;
  int setup_result_ = 0;
};

// The two queues and the clock a client and a server share.
struct Link {
  DatagramQueue to_server;
  DatagramQueue to_client;
  FakeClock clock;
};

// The peer's address as the server's cookie binds it (mbedtls_ssl_set_client_transport_id).
inline constexpr unsigned char kClientAddress[] = {127, 0, 0, 1, 0x16, 0x33};

struct HandshakeResult {
  int client = 0;  // 0 or the client's fatal error.
  int server = 0;  // 0 or the server's fatal error.
  int hello_verify_requests = 0;
  int timeouts = 0;  // How often the clock had to jump to a retransmission.
  bool ok() const { return client == 0 && server == 0; }
};

// Runs both handshakes until both are over or one failed (and the other has read the
// alert), within `max_rounds` turns each. `server_step` wraps every server call, so that
// a benchmark can time the server's share alone. When both sides wait on an empty link,
// the clock jumps to the next retransmission.
template <typename ServerStep>
HandshakeResult DriveHandshake(Endpoint& client, Endpoint& server, Link& link,
                               ServerStep&& server_step, int max_rounds = 64) {
  HandshakeResult r;
  auto want = [](int ret) {
    return ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE;
  };
  server_step([&] {
    mbedtls_ssl_set_client_transport_id(server.ssl(), kClientAddress, sizeof(kClientAddress));
  });
  for (int round = 0; round < max_rounds; ++round) {
    bool client_done = r.client != 0 || client.handshake_over();
    bool server_done = r.server != 0 || server.handshake_over();
    if (client_done && server_done) return r;
    bool idle = link.to_server.empty() && link.to_client.empty();
    if (!client_done) {
      int ret = mbedtls_ssl_handshake(client.ssl());
      if (ret != 0 && !want(ret)) r.client = ret;
    }
    if (!server_done) {
      server_step([&] {
        int ret = mbedtls_ssl_handshake(server.ssl());
        if (ret == MBEDTLS_ERR_SSL_HELLO_VERIFY_REQUIRED) {
          // The cookie went out; the context starts over for the ClientHello that
          // carries it (the server keeps no state for an unverified address).
          ++r.hello_verify_requests;
          mbedtls_ssl_session_reset(server.ssl());
          mbedtls_ssl_set_client_transport_id(server.ssl(), kClientAddress, sizeof(kClientAddress));
        } else if (ret != 0 && !want(ret)) {
          r.server = ret;
        }
      });
    }
    if (idle && link.to_server.empty() && link.to_client.empty()) {
      link.clock.now_ms += 1000;  // Nothing moved: let a retransmission timer fire.
      ++r.timeouts;
    }
  }
  if (r.client == 0 && !client.handshake_over()) r.client = MBEDTLS_ERR_SSL_TIMEOUT;
  if (r.server == 0 && !server.handshake_over()) r.server = MBEDTLS_ERR_SSL_TIMEOUT;
  return r;
}

inline HandshakeResult DriveHandshake(Endpoint& client, Endpoint& server, Link& link) {
  return DriveHandshake(client, server, link, [](auto&& step) { step(); });
}

// A server configuration for DTLS 1.2 over the link: cookies, Connection IDs of
// `cid_length` bytes, and PSKs looked up by identity (one identity here).
class ServerConfig {
 public:
  explicit ServerConfig(Random* random, size_t cid_length = 8) {
    mbedtls_ssl_config_init(&conf_);
    mbedtls_ssl_cookie_init(&cookie_);
    result_ = mbedtls_ssl_config_defaults(
        &conf_, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_DATAGRAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (result_ != 0) return;
    mbedtls_ssl_conf_rng(&conf_, Random::Generate, random);
    result_ = mbedtls_ssl_cookie_setup(&cookie_, Random::Generate, random);
    if (result_ != 0) return;
    mbedtls_ssl_conf_dtls_cookies(&conf_, mbedtls_ssl_cookie_write, mbedtls_ssl_cookie_check,
                                  &cookie_);
    if (cid_length != 0) {
      result_ = mbedtls_ssl_conf_cid(&conf_, cid_length, MBEDTLS_SSL_UNEXPECTED_CID_IGNORE);
      if (result_ != 0) return;
    }
    mbedtls_ssl_conf_psk_cb(&conf_, LookUpPsk, this);
  }
  ~ServerConfig() {
    mbedtls_ssl_cookie_free(&cookie_);
    mbedtls_ssl_config_free(&conf_);
  }
  ServerConfig(const ServerConfig&) = delete;
  ServerConfig& operator=(const ServerConfig&) = delete;

  int result() const { return result_; }
  mbedtls_ssl_config* conf() { return &conf_; }
  void SetPsk(std::string_view identity, std::string_view key) {
    identity_ = identity;
    key_ = key;
  }

 private:
  static int LookUpPsk(void* self, mbedtls_ssl_context* ssl, const unsigned char* identity,
                       size_t identity_len) {
    auto* c = static_cast<ServerConfig*>(self);
    if (c->identity_.empty() ||
        std::string_view(reinterpret_cast<const char*>(identity), identity_len) != c->identity_) {
      return -1;  // mbedTLS answers with an unknown_psk_identity alert.
    }
    return mbedtls_ssl_set_hs_psk(ssl, reinterpret_cast<const unsigned char*>(c->key_.data()),
                                  c->key_.size());
  }

  mbedtls_ssl_config conf_;
  mbedtls_ssl_cookie_ctx cookie_;
  std::string identity_;
  std::string key_;
  int result_ = 0;
};

// A client configuration offering exactly `suites` (0-terminated), with a Connection ID
// of `cid_length` bytes on request.
class ClientConfig {
 public:
  ClientConfig(Random* random, const int* suites, size_t cid_length = 8) {
    mbedtls_ssl_config_init(&conf_);
    result_ = mbedtls_ssl_config_defaults(
        &conf_, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_DATAGRAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (result_ != 0) return;
    mbedtls_ssl_conf_rng(&conf_, Random::Generate, random);
    mbedtls_ssl_conf_ciphersuites(&conf_, suites);
    if (cid_length != 0) {
      result_ = mbedtls_ssl_conf_cid(&conf_, cid_length, MBEDTLS_SSL_UNEXPECTED_CID_IGNORE);
    }
  }
  ~ClientConfig() { mbedtls_ssl_config_free(&conf_); }
  ClientConfig(const ClientConfig&) = delete;
  ClientConfig& operator=(const ClientConfig&) = delete;

  int result() const { return result_; }
  mbedtls_ssl_config* conf() { return &conf_; }
  int SetPsk(std::string_view identity, std::string_view key) {
    return mbedtls_ssl_conf_psk(&conf_, reinterpret_cast<const unsigned char*>(key.data()),
                                key.size(), reinterpret_cast<const unsigned char*>(identity.data()),
                                identity.size());
  }

 private:
  mbedtls_ssl_config conf_;
  int result_ = 0;
};

// Asks for RFC 9146 Connection IDs on `endpoint`, offering `own_cid` as the one its peer
// must put in the records it sends.
inline int UseCid(Endpoint& endpoint, std::span<const uint8_t> own_cid) {
  return mbedtls_ssl_set_cid(endpoint.ssl(), MBEDTLS_SSL_CID_ENABLED, own_cid.data(),
                             own_cid.size());
}

}  // namespace lwm2md::dtls::testing
