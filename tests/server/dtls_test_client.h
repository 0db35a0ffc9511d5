// A CoAP client over DTLS 1.2 for the server tests: the Client of coap_test_client.h with an
// mbedTLS client (PSK, optionally asking for an RFC 9146 connection id) between it and its
// UDP socket. coap-client-openssl cannot ask for a connection id, nor keep a session across
// a server restart, which is what these tests need.

#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "../dtls/dtls_pair.h"
#include "coap_test_client.h"
#include "mbedtls/ssl.h"
#include "mbedtls/ssl_ciphersuites.h"

namespace lwm2md::server {

class DtlsClient : public Client {
 public:
  // connection_id: offer a zero-length id of our own, which asks the server for one to put in
  // every record we send (RFC 9146 §3), so that the session survives a new source port.
  DtlsClient(uint16_t server_port, const std::string& identity, const std::string& key,
             bool connection_id)
      : Client(server_port),
        config_(&random_, kSuites, /*cid_length=*/0) {
    mbedtls_ssl_config* conf = config_.conf();
    mbedtls_ssl_conf_psk(conf, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                         reinterpret_cast<const unsigned char*>(identity.data()), identity.size());
    mbedtls_ssl_conf_handshake_timeout(conf, 200, 3200);
    mbedtls_ssl_init(&ssl_);
    setup_ = mbedtls_ssl_setup(&ssl_, conf);
    if (setup_ == 0 && connection_id) {
      setup_ = mbedtls_ssl_set_cid(&ssl_, MBEDTLS_SSL_CID_ENABLED, nullptr, 0);
    }
    mbedtls_ssl_set_bio(&ssl_, this, &DtlsClient::BioSend, &DtlsClient::BioReceive, nullptr);
    mbedtls_ssl_set_timer_cb(&ssl_, this, &DtlsClient::SetTimer, &DtlsClient::GetTimer);
  }
  ~DtlsClient() override { mbedtls_ssl_free(&ssl_); }

  // Runs the handshake within a few seconds: 0, or the mbedTLS error.
  int Handshake() {
    if (setup_ != 0) return setup_;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      const int result = mbedtls_ssl_handshake(&ssl_);
      if (result == 0) return 0;
      if (result != MBEDTLS_ERR_SSL_WANT_READ && result != MBEDTLS_ERR_SSL_WANT_WRITE) {
        return result;
      }
      pollfd p{fd_, POLLIN, 0};
      poll(&p, 1, 20);
    }
    return MBEDTLS_ERR_SSL_TIMEOUT;
  }
  // Whether the server took up the connection id offer.
  bool connection_id_in_use() {
    int enabled = MBEDTLS_SSL_CID_DISABLED;
    unsigned char peer[MBEDTLS_SSL_CID_OUT_LEN_MAX];
    size_t length = 0;
    return mbedtls_ssl_get_peer_cid(&ssl_, &enabled, peer, &length) == 0 &&
           enabled == MBEDTLS_SSL_CID_ENABLED && length > 0;
  }
  // The first byte of the connection id the server gave us: the shard it names.
  int server_connection_id_shard() {
    int enabled = MBEDTLS_SSL_CID_DISABLED;
    unsigned char peer[MBEDTLS_SSL_CID_OUT_LEN_MAX];
    size_t length = 0;
    if (mbedtls_ssl_get_peer_cid(&ssl_, &enabled, peer, &length) != 0 || length == 0) return -1;
    return peer[0];
  }
  // The session goes on from a new source port.
  void Rebind() { Reopen(); }

 protected:
  void Send(std::span<const uint8_t> bytes) override {
    mbedtls_ssl_write(&ssl_, bytes.data(), bytes.size());
  }
  size_t ReceiveDatagram(uint8_t (&in)[2048]) override {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) return 0;
    const int n = mbedtls_ssl_read(&ssl_, in, sizeof(in));
    return n > 0 ? static_cast<size_t>(n) : 0;
  }

 private:
  static constexpr int kSuites[] = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, 0};

  static int BioSend(void* self, const unsigned char* bytes, size_t length) {
    static_cast<DtlsClient*>(self)->SendDatagram(std::span<const uint8_t>(bytes, length));
    return static_cast<int>(length);
  }
  static int BioReceive(void* self, unsigned char* bytes, size_t length) {
    const ssize_t n = recv(static_cast<DtlsClient*>(self)->fd_, bytes, length, MSG_DONTWAIT);
    return n > 0 ? static_cast<int>(n) : MBEDTLS_ERR_SSL_WANT_READ;
  }
  static void SetTimer(void* self, uint32_t intermediate_ms, uint32_t final_ms) {
    auto* client = static_cast<DtlsClient*>(self);
    client->timer_start_ = std::chrono::steady_clock::now();
    client->intermediate_ms_ = intermediate_ms;
    client->final_ms_ = final_ms;
  }
  static int GetTimer(void* self) {
    auto* client = static_cast<DtlsClient*>(self);
    if (client->final_ms_ == 0) return -1;
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - client->timer_start_)
                             .count();
    if (elapsed >= client->final_ms_) return 2;
    if (elapsed >= client->intermediate_ms_) return 1;
    return 0;
  }

  dtls::testing::Random random_;
  dtls::testing::ClientConfig config_;
  mbedtls_ssl_context ssl_;
  int setup_ = 0;
  std::chrono::steady_clock::time_point timer_start_{};
  uint32_t intermediate_ms_ = 0;
  uint32_t final_ms_ = 0;
};

}  // namespace lwm2md::server
