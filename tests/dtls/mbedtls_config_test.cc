// Checks that our mbedTLS build (third_party/mbedtls/lwm2md_mbedtls_config.h) does what
// the DTLS layer relies on, with a client and a server talking in memory: the LwM2M
// suites with cookies and RFC 9146 Connection IDs, certificate chains at our 2 KiB record
// buffers, the client certificate's thumbprint without keeping the certificate, session
// save and load, and clear failures.

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "dtls_pair.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mbedtls/error.h"
#include "mbedtls/oid.h"
#include "mbedtls/pk.h"
#include "mbedtls/sha256.h"
#include "mbedtls/ssl.h"
#include "mbedtls/ssl_ciphersuites.h"
#include "mbedtls/version.h"
#include "mbedtls/x509_crt.h"

namespace lwm2md::dtls::testing {
namespace {

// What the DTLS layer builds on, checked where it is compiled. A mismatch here means the
// headers are not the ones tools/setup installed (Debian 12's 2.28, say).
static_assert(MBEDTLS_VERSION_NUMBER >= 0x03060000 && MBEDTLS_VERSION_NUMBER < 0x03070000,
              "lwm2md is written for mbedTLS 3.6 LTS");
// src/lwm2m/endpoint_config.h: kMaxPskKeyBytes.
static_assert(MBEDTLS_PSK_MAX_LEN >= 64);
static_assert(MBEDTLS_SSL_IN_CONTENT_LEN == 2048 && MBEDTLS_SSL_OUT_CONTENT_LEN == 2048);
static_assert(MBEDTLS_SSL_CID_IN_LEN_MAX >= 8);
#if !defined(MBEDTLS_SSL_DTLS_CONNECTION_ID) || MBEDTLS_SSL_DTLS_CONNECTION_ID_COMPAT != 0
#error "RFC 9146 Connection IDs are required"
#endif
#if !defined(MBEDTLS_SSL_CONTEXT_SERIALIZATION) || !defined(MBEDTLS_SSL_DTLS_HELLO_VERIFY) || \
    !defined(MBEDTLS_SSL_DTLS_ANTI_REPLAY) || !defined(MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH)
#error "session serialisation, cookies, anti-replay and variable buffers are required"
#endif
#if defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE) || defined(MBEDTLS_THREADING_C) || \
    defined(MBEDTLS_SSL_PROTO_TLS1_3) || defined(MBEDTLS_SSL_RENEGOTIATION)
#error "our configuration leaves these off"
#endif

constexpr char kIdentity[] = "urn:imei:351234567890123";
// The longest key an endpoint may have (kMaxPskKeyBytes).
const std::string kPsk(64, '\x5a');
constexpr uint8_t kServerCid[8] = {0xc1, 0xd2, 0xe3, 0xf4, 0x05, 0x16, 0x27, 0x38};
constexpr uint8_t kClientCid[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};

std::string ErrorText(int code) {
  char text[160];
  mbedtls_strerror(code, text, sizeof(text));
  char hex[16];
  std::snprintf(hex, sizeof(hex), "-0x%04x", -code);
  return std::string(hex) + " " + text;
}

std::string Describe(const HandshakeResult& r) {
  return "client: " + (r.client ? ErrorText(r.client) : "ok") +
         ", server: " + (r.server ? ErrorText(r.server) : "ok");
}

std::string ReadTestData(const std::string& name) {
  std::ifstream in(std::string(LWM2MD_SOURCE_DIR) + "/tests/dtls/testdata/" + name,
                   std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The thumbprint make.sh wrote for a certificate: 64 hex digits.
std::string ExpectedThumbprint(const std::string& name) {
  std::string hex = ReadTestData(name);
  return hex.substr(0, hex.find_first_of(" \n"));
}

std::string Hex(std::span<const unsigned char> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

// A DTLS record with a CID (RFC 9146 §4): content type 25, version, epoch, sequence
// number, then the CID the receiver chose.
std::vector<uint8_t> RecordCid(std::span<const uint8_t> datagram, size_t cid_length) {
  if (datagram.size() < 11 + cid_length || datagram[0] != MBEDTLS_SSL_MSG_CID) return {};
  return {datagram.begin() + 11, datagram.begin() + 11 + cid_length};
}

// A certificate chain (leaf first), its private key, and the root to check the peer's.
class Credentials {
 public:
  // `send_root` adds the root to the chain this side sends (three certificates).
  Credentials(Random* random, const std::string& kind, const std::string& role,
              bool send_root = false) {
    mbedtls_x509_crt_init(&chain_);
    mbedtls_x509_crt_init(&root_);
    mbedtls_pk_init(&key_);
    std::vector<std::string> files = {kind + "_" + role + ".pem", kind + "_intermediate.pem"};
    if (send_root) files.push_back(kind + "_root.pem");
    for (const std::string& file : files) {
      std::string pem = ReadTestData(file);
      // PEM input includes its terminating NUL.
      if (int ret = mbedtls_x509_crt_parse(
              &chain_, reinterpret_cast<const unsigned char*>(pem.c_str()), pem.size() + 1);
          ret != 0) {
        error_ = file + ": " + ErrorText(ret);
        return;
      }
    }
    std::string root = ReadTestData(kind + "_root.pem");
    std::string key = ReadTestData(kind + "_" + role + ".key");
    if (int ret = mbedtls_x509_crt_parse(
            &root_, reinterpret_cast<const unsigned char*>(root.c_str()), root.size() + 1);
        ret != 0) {
      error_ = "root: " + ErrorText(ret);
      return;
    }
    if (int ret = mbedtls_pk_parse_key(&key_, reinterpret_cast<const unsigned char*>(key.c_str()),
                                       key.size() + 1, nullptr, 0, Random::Generate, random);
        ret != 0) {
      error_ = "key: " + ErrorText(ret);
    }
  }
  ~Credentials() {
    mbedtls_pk_free(&key_);
    mbedtls_x509_crt_free(&root_);
    mbedtls_x509_crt_free(&chain_);
  }
  Credentials(const Credentials&) = delete;
  Credentials& operator=(const Credentials&) = delete;

  const std::string& error() const { return error_; }
  // DER bytes this side sends in its Certificate message.
  size_t chain_bytes() const {
    size_t n = 0;
    for (const mbedtls_x509_crt* c = &chain_; c != nullptr; c = c->next) n += c->raw.len;
    return n;
  }
  int Use(mbedtls_ssl_config* conf) {
    mbedtls_ssl_conf_ca_chain(conf, &root_, nullptr);
    mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    return mbedtls_ssl_conf_own_cert(conf, &chain_, &key_);
  }

 private:
  mbedtls_x509_crt chain_;
  mbedtls_x509_crt root_;
  mbedtls_pk_context key_;
  std::string error_;
};

// What the server learns of the client's certificate while verifying the chain: with
// MBEDTLS_SSL_KEEP_PEER_CERTIFICATE off this is the only time it sees the certificate.
struct PeerCertificate {
  int leaf_calls = 0;
  std::string sha256_hex;
  std::string common_name;
  std::string uri;

  static int Capture(void* self, mbedtls_x509_crt* crt, int depth, uint32_t* /*flags*/) {
    if (depth != 0) return 0;  // An intermediate or the root.
    auto* p = static_cast<PeerCertificate*>(self);
    ++p->leaf_calls;
    unsigned char digest[32];
    if (mbedtls_sha256(crt->raw.p, crt->raw.len, digest, 0) != 0) return -1;
    p->sha256_hex = Hex(digest);
    for (const mbedtls_x509_name* n = &crt->subject; n != nullptr; n = n->next) {
      if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
        p->common_name.assign(reinterpret_cast<const char*>(n->val.p), n->val.len);
      }
    }
    for (const mbedtls_x509_sequence* s = &crt->subject_alt_names; s != nullptr; s = s->next) {
      mbedtls_x509_subject_alternative_name san;
      if (s->buf.p == nullptr || mbedtls_x509_parse_subject_alt_name(&s->buf, &san) != 0) {
        continue;
      }
      if (san.type == MBEDTLS_X509_SAN_UNIFORM_RESOURCE_IDENTIFIER) {
        p->uri.assign(reinterpret_cast<const char*>(san.san.unstructured_name.p),
                      san.san.unstructured_name.len);
      }
      mbedtls_x509_free_subject_alt_name(&san);
    }
    return 0;
  }
};

class MbedtlsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(random_.ok()); }

  std::unique_ptr<Endpoint> Client(ClientConfig& config, uint16_t mtu = 1280) {
    return std::make_unique<Endpoint>(config.conf(), &link_.to_client, &link_.to_server,
                                      &link_.clock, mtu);
  }
  std::unique_ptr<Endpoint> Server(ServerConfig& config, uint16_t mtu = 1280) {
    return std::make_unique<Endpoint>(config.conf(), &link_.to_server, &link_.to_client,
                                      &link_.clock, mtu);
  }

  // A record each way after the handshake; with `cid`, each carries the receiver's CID.
  void ExchangeRecords(Endpoint& client, Endpoint& server, std::string_view tag, bool cid = true) {
    std::string request = "client record " + std::string(tag);
    ASSERT_EQ(client.Write(request), static_cast<int>(request.size()));
    ASSERT_EQ(link_.to_server.size(), 1u);
    if (cid) {
      EXPECT_THAT(RecordCid(link_.to_server.Front(), 8), ::testing::ElementsAreArray(kServerCid));
    }
    std::string got;
    ASSERT_EQ(server.Read(&got), static_cast<int>(request.size()));
    EXPECT_EQ(got, request);

    std::string response = "server record " + std::string(tag);
    ASSERT_EQ(server.Write(response), static_cast<int>(response.size()));
    ASSERT_EQ(link_.to_client.size(), 1u);
    if (cid) {
      EXPECT_THAT(RecordCid(link_.to_client.Front(), 8), ::testing::ElementsAreArray(kClientCid));
    }
    ASSERT_EQ(client.Read(&got), static_cast<int>(response.size()));
    EXPECT_EQ(got, response);
  }

  // A handshake that needed the client to repeat its last flight leaves the rest of that
  // flight queued for a server that is done with it; drop it, as the network might.
  void SkipRetransmittedFlight(const HandshakeResult& r, const char* what) {
    if (r.timeouts == 0) return;
    std::printf("%s: handshake completed after %d retransmission(s)\n", what, r.timeouts);
    link_.to_server.Clear();
  }

  Random random_;
  Link link_;
};

TEST_F(MbedtlsConfigTest, LinkedLibraryIsTheOneTheHeadersDescribe) {
  EXPECT_EQ(mbedtls_version_get_number(), static_cast<unsigned>(MBEDTLS_VERSION_NUMBER));
}

TEST_F(MbedtlsConfigTest, PskCcm8HandshakeWithCookieAndConnectionIds) {
  ServerConfig server_config(&random_);
  ASSERT_EQ(server_config.result(), 0) << ErrorText(server_config.result());
  server_config.SetPsk(kIdentity, kPsk);
  const int suites[] = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, 0};
  ClientConfig client_config(&random_, suites);
  ASSERT_EQ(client_config.result(), 0);
  ASSERT_EQ(client_config.SetPsk(kIdentity, kPsk), 0);
  auto client = Client(client_config);
  auto server = Server(server_config);
  ASSERT_EQ(UseCid(*client, kClientCid), 0);
  ASSERT_EQ(UseCid(*server, kServerCid), 0);

  HandshakeResult r = DriveHandshake(*client, *server, link_);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r.hello_verify_requests, 1);
  EXPECT_EQ(r.timeouts, 0);
  EXPECT_EQ(mbedtls_ssl_get_ciphersuite_id_from_ssl(server->ssl()),
            MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8);
  EXPECT_STREQ(mbedtls_ssl_get_ciphersuite(server->ssl()), "TLS-PSK-WITH-AES-128-CCM-8");
  EXPECT_STREQ(mbedtls_ssl_get_version(server->ssl()), "DTLSv1.2");

  // Each side learnt the CID the other chose.
  int enabled = 0;
  unsigned char cid[MBEDTLS_SSL_CID_OUT_LEN_MAX];
  size_t cid_length = 0;
  ASSERT_EQ(mbedtls_ssl_get_peer_cid(server->ssl(), &enabled, cid, &cid_length), 0);
  EXPECT_EQ(enabled, MBEDTLS_SSL_CID_ENABLED);
  EXPECT_THAT(std::vector<uint8_t>(cid, cid + cid_length), ::testing::ElementsAreArray(kClientCid));
  ASSERT_EQ(mbedtls_ssl_get_peer_cid(client->ssl(), &enabled, cid, &cid_length), 0);
  EXPECT_EQ(enabled, MBEDTLS_SSL_CID_ENABLED);
  EXPECT_THAT(std::vector<uint8_t>(cid, cid + cid_length), ::testing::ElementsAreArray(kServerCid));

  ExchangeRecords(*client, *server, "1");
}

TEST_F(MbedtlsConfigTest, EcdheEcdsaCcm8WithClientCertificateAndTwoCertificateChains) {
  Credentials server_credentials(&random_, "ec", "server");
  ASSERT_EQ(server_credentials.error(), "");
  Credentials client_credentials(&random_, "ec", "client");
  ASSERT_EQ(client_credentials.error(), "");
  ServerConfig server_config(&random_);
  ASSERT_EQ(server_credentials.Use(server_config.conf()), 0);
  const int suites[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, 0};
  ClientConfig client_config(&random_, suites);
  ASSERT_EQ(client_credentials.Use(client_config.conf()), 0);
  auto client = Client(client_config);
  auto server = Server(server_config);
  ASSERT_EQ(mbedtls_ssl_set_hostname(client->ssl(), "lwm2md.test"), 0);
  ASSERT_EQ(UseCid(*client, kClientCid), 0);
  ASSERT_EQ(UseCid(*server, kServerCid), 0);
  PeerCertificate peer;
  mbedtls_ssl_set_verify(server->ssl(), PeerCertificate::Capture, &peer);

  HandshakeResult r = DriveHandshake(*client, *server, link_);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r.hello_verify_requests, 1);
  EXPECT_EQ(mbedtls_ssl_get_ciphersuite_id_from_ssl(server->ssl()),
            MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8);
  SkipRetransmittedFlight(r, "P-256 chains with CIDs");
  EXPECT_EQ(mbedtls_ssl_get_verify_result(server->ssl()), 0u);
  EXPECT_EQ(mbedtls_ssl_get_verify_result(client->ssl()), 0u);

  // The thumbprint, CN and URI SAN were taken while verifying; the certificate itself
  // is gone after the handshake.
  EXPECT_EQ(peer.leaf_calls, 1);
  std::string expected = ExpectedThumbprint("ec_client.sha256");
  ASSERT_EQ(expected.size(), 64u);
  EXPECT_EQ(peer.sha256_hex, expected);
  EXPECT_EQ(peer.common_name, kIdentity);
  EXPECT_EQ(peer.uri, kIdentity);
  EXPECT_EQ(mbedtls_ssl_get_peer_cert(server->ssl()), nullptr);

  ExchangeRecords(*client, *server, "1");
  ::testing::Test::RecordProperty("client_chain_bytes", client_credentials.chain_bytes());
  ::testing::Test::RecordProperty("server_chain_bytes", server_credentials.chain_bytes());
}

// RSA-2048 chains are the largest handshake messages we expect: leaf and intermediate
// certificate, about 1.8 KiB, near the 2 KiB buffers. Whole in one record (no MTU) and
// fragmented over 1280- and 576-byte datagrams, both ways, with and without CIDs.
//
// mbedTLS 3.6 drops a CID-protected Finished that arrives packed in one datagram behind
// a fragmented handshake message (Mbed-TLS/mbedtls#6113: only records of type
// handshake are buffered for the next epoch, and with a CID the Finished is of type
// tls12_cid). The client's retransmission then completes the handshake, one timeout
// (1 s by default) later. Without CIDs the same flights need no retransmission.
TEST_F(MbedtlsConfigTest, EcdheRsaTwoCertificateChainsFitTheRecordBuffers) {
  for (bool cid : {false, true}) {
    for (uint16_t mtu : {uint16_t{0}, uint16_t{1280}, uint16_t{576}}) {
      SCOPED_TRACE(std::string(cid ? "with" : "without") + " CIDs, mtu " + std::to_string(mtu));
      link_.to_server.Clear();
      link_.to_client.Clear();
      Credentials server_credentials(&random_, "rsa", "server");
      ASSERT_EQ(server_credentials.error(), "");
      Credentials client_credentials(&random_, "rsa", "client");
      ASSERT_EQ(client_credentials.error(), "");
      EXPECT_GT(client_credentials.chain_bytes(), 1700u);
      ServerConfig server_config(&random_);
      ASSERT_EQ(server_credentials.Use(server_config.conf()), 0);
      const int suites[] = {MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 0};
      ClientConfig client_config(&random_, suites);
      ASSERT_EQ(client_credentials.Use(client_config.conf()), 0);
      auto client = Client(client_config, mtu);
      auto server = Server(server_config, mtu);
      ASSERT_EQ(mbedtls_ssl_set_hostname(client->ssl(), "lwm2md.test"), 0);
      if (cid) {
        ASSERT_EQ(UseCid(*client, kClientCid), 0);
        ASSERT_EQ(UseCid(*server, kServerCid), 0);
      }
      PeerCertificate peer;
      mbedtls_ssl_set_verify(server->ssl(), PeerCertificate::Capture, &peer);

      HandshakeResult r = DriveHandshake(*client, *server, link_);
      ASSERT_TRUE(r.ok()) << Describe(r);
      EXPECT_EQ(mbedtls_ssl_get_ciphersuite_id_from_ssl(server->ssl()),
                MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256);
      EXPECT_EQ(peer.sha256_hex, ExpectedThumbprint("rsa_client.sha256"));
      if (!cid) {
        EXPECT_EQ(r.timeouts, 0);
      }
      SkipRetransmittedFlight(r, ("RSA chains with CIDs, mtu " + std::to_string(mtu)).c_str());
      ExchangeRecords(*client, *server, "rsa", cid);
    }
  }
}

// The other side of the limit: a Certificate message above 2 KiB does not fit the output
// buffer, so our side cannot send a chain of three RSA certificates: the server's own
// chain must stay below it. (Coming from a device with larger buffers, such a message
// is ignored by the server, which reassembles handshake messages in its input buffer,
// and the handshake times out.)
TEST_F(MbedtlsConfigTest, ChainBeyondTheRecordBuffersCannotBeSent) {
  Credentials server_credentials(&random_, "rsa", "server");
  ASSERT_EQ(server_credentials.error(), "");
  Credentials client_credentials(&random_, "rsa", "client", /*send_root=*/true);
  ASSERT_EQ(client_credentials.error(), "");
  ASSERT_GT(client_credentials.chain_bytes() + 12, size_t{MBEDTLS_SSL_OUT_CONTENT_LEN});
  ServerConfig server_config(&random_);
  ASSERT_EQ(server_credentials.Use(server_config.conf()), 0);
  const int suites[] = {MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 0};
  ClientConfig client_config(&random_, suites);
  ASSERT_EQ(client_credentials.Use(client_config.conf()), 0);
  // The server gives up after 1 + 2 + 4 s of waiting rather than the default 60.
  mbedtls_ssl_conf_handshake_timeout(server_config.conf(), 1000, 4000);
  auto client = Client(client_config);
  auto server = Server(server_config);
  ASSERT_EQ(mbedtls_ssl_set_hostname(client->ssl(), "lwm2md.test"), 0);

  HandshakeResult r = DriveHandshake(*client, *server, link_);
  EXPECT_EQ(r.client, MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL) << Describe(r);
  EXPECT_EQ(r.server, MBEDTLS_ERR_SSL_TIMEOUT) << Describe(r);
}

TEST_F(MbedtlsConfigTest, SavedServerSessionLoadsIntoAFreshContext) {
  ServerConfig server_config(&random_);
  server_config.SetPsk(kIdentity, kPsk);
  const int suites[] = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, 0};
  ClientConfig client_config(&random_, suites);
  ASSERT_EQ(client_config.SetPsk(kIdentity, kPsk), 0);
  auto client = Client(client_config);
  auto server = Server(server_config);
  ASSERT_EQ(UseCid(*client, kClientCid), 0);
  ASSERT_EQ(UseCid(*server, kServerCid), 0);
  HandshakeResult r = DriveHandshake(*client, *server, link_);
  ASSERT_TRUE(r.ok()) << Describe(r);

  // The server can save only once it has seen the client's first record of the new
  // epoch: until then it keeps the handshake to retransmit its last flight.
  ASSERT_EQ(client->Write("first"), 5);
  std::vector<uint8_t> first(link_.to_server.Front().begin(), link_.to_server.Front().end());
  size_t needed = 0;
  EXPECT_EQ(mbedtls_ssl_context_save(server->ssl(), nullptr, 0, &needed),
            MBEDTLS_ERR_SSL_BAD_INPUT_DATA);
  std::string got;
  ASSERT_EQ(server->Read(&got), 5);
  EXPECT_EQ(got, "first");

  ASSERT_EQ(mbedtls_ssl_context_save(server->ssl(), nullptr, 0, &needed),
            MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL);
  std::vector<unsigned char> saved(needed);
  size_t saved_length = 0;
  ASSERT_EQ(mbedtls_ssl_context_save(server->ssl(), saved.data(), saved.size(), &saved_length), 0);
  EXPECT_EQ(saved_length, needed);
  EXPECT_LT(saved_length, 512u);
  ::testing::Test::RecordProperty("saved_session_bytes", saved_length);
  std::printf("saved DTLS session: %zu bytes\n", saved_length);

  // A new context on the same configuration, no handshake.
  ASSERT_EQ(server->Reset(server_config.conf()), 0);
  ASSERT_EQ(mbedtls_ssl_context_load(server->ssl(), saved.data(), saved_length), 0);
  EXPECT_TRUE(server->handshake_over());
  EXPECT_EQ(mbedtls_ssl_get_ciphersuite_id_from_ssl(server->ssl()),
            MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8);

  // The replay window came along: the first record again is dropped.
  ASSERT_TRUE(link_.to_server.Push(first));
  EXPECT_EQ(server->Read(&got), MBEDTLS_ERR_SSL_WANT_READ);
  EXPECT_TRUE(link_.to_server.empty());

  ExchangeRecords(*client, *server, "after load");
}

TEST_F(MbedtlsConfigTest, WrongPskFailsTheHandshakeOnTheFinishedMessage) {
  ServerConfig server_config(&random_);
  server_config.SetPsk(kIdentity, kPsk);
  const int suites[] = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, 0};
  ClientConfig client_config(&random_, suites);
  ASSERT_EQ(client_config.SetPsk(kIdentity, std::string(64, '\x5b')), 0);
  auto client = Client(client_config);
  auto server = Server(server_config);

  HandshakeResult r = DriveHandshake(*client, *server, link_);
  // The server cannot authenticate the client's Finished, which is fatal during the
  // handshake (a bad record afterwards would only be dropped), and says so.
  EXPECT_EQ(r.server, MBEDTLS_ERR_SSL_INVALID_MAC) << Describe(r);
  EXPECT_EQ(r.client, MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) << Describe(r);
  EXPECT_THAT(ErrorText(r.server), ::testing::HasSubstr("MAC"));
}

TEST_F(MbedtlsConfigTest, UnknownPskIdentityIsRefused) {
  ServerConfig server_config(&random_);
  server_config.SetPsk("someone else", kPsk);
  const int suites[] = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, 0};
  ClientConfig client_config(&random_, suites);
  ASSERT_EQ(client_config.SetPsk(kIdentity, kPsk), 0);
  auto client = Client(client_config);
  auto server = Server(server_config);

  HandshakeResult r = DriveHandshake(*client, *server, link_);
  EXPECT_EQ(r.server, MBEDTLS_ERR_SSL_UNKNOWN_IDENTITY) << Describe(r);
  EXPECT_EQ(r.client, MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) << Describe(r);
}

}  // namespace
}  // namespace lwm2md::dtls::testing
