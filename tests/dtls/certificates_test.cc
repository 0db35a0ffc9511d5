// The certificate module of the DTLS layer: thumbprints as openssl prints them, the
// endpoint name a certificate carries, the server's chain and key (checks, the size limit,
// the generated pair), the CA set and its store; then handshakes in memory between an
// mbedTLS client and a server configured by ShardCertificates, as each shard is: thumbprint
// and CA mode accepted, and every certificate that must stay out refused; then the same
// through DtlsServer (the session's identity, the bad_certificate count).
//
// Fixtures: tests/dtls/testdata (make.sh, openssl CLI).

#include "dtls/certificates.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "dtls/dtls_server.h"
#include "dtls/saved_session.h"
#include "dtls_pair.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mbedtls/error.h"
#include "mbedtls/pk.h"
#include "mbedtls/ssl.h"
#include "mbedtls/ssl_ciphersuites.h"
#include "mbedtls/x509_crt.h"
#include "net/peer_address.h"
#include "net/shard.h"
#include "net/timer_wheel.h"
#include "store/store.h"

namespace lwm2md::dtls {
namespace {

using testing::ClientConfig;
using testing::DriveHandshake;
using ::testing::ElementsAre;
using testing::Endpoint;
using testing::HandshakeResult;
using ::testing::HasSubstr;
using testing::Link;
using testing::Random;
using testing::ServerConfig;
using ::testing::StartsWith;

std::string Message(const absl::Status& status) {
  return std::string(status.message().data(), status.message().size());
}

std::string TestDataPath(const std::string& name) {
  return std::string(LWM2MD_SOURCE_DIR) + "/tests/dtls/testdata/" + name;
}

std::string ReadTestData(const std::string& name) {
  std::ifstream in(TestDataPath(name), std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The thumbprint make.sh wrote with `openssl dgst -sha256` over the DER.
std::string FixtureThumbprint(const std::string& name) {
  std::string hex = ReadTestData(name + ".sha256");
  return hex.substr(0, hex.find_first_of(" \n"));
}

std::string ErrorText(int code) {
  char text[160];
  mbedtls_strerror(code, text, sizeof(text));
  return std::to_string(code) + " " + text;
}

std::string Describe(const HandshakeResult& r) {
  return "client: " + (r.client ? ErrorText(r.client) : "ok") +
         ", server: " + (r.server ? ErrorText(r.server) : "ok");
}

// One certificate file parsed.
class Parsed {
 public:
  explicit Parsed(const std::string& name) {
    mbedtls_x509_crt_init(&crt_);
    const std::string pem = ReadTestData(name);
    result_ = mbedtls_x509_crt_parse(&crt_, reinterpret_cast<const unsigned char*>(pem.c_str()),
                                     pem.size() + 1);
  }
  ~Parsed() { mbedtls_x509_crt_free(&crt_); }
  int result() const { return result_; }
  const mbedtls_x509_crt& crt() const { return crt_; }

 private:
  mbedtls_x509_crt crt_;
  int result_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Thumbprints, sizes and names.

TEST(CertificatesTest, ThumbprintIsOpensslsSha256Fingerprint) {
  for (const std::string name : {"cert_selfsigned", "ec_client", "rsa_client"}) {
    SCOPED_TRACE(name);
    Parsed parsed(name + ".pem");
    ASSERT_EQ(parsed.result(), 0);
    const std::string thumbprint = Sha256Hex({parsed.crt().raw.p, parsed.crt().raw.len});
    EXPECT_EQ(thumbprint, FixtureThumbprint(name));

    // What an operator copies from `openssl x509 -fingerprint -sha256`: the same digits, in
    // upper case with colons.
    const std::string command =
        "openssl x509 -noout -fingerprint -sha256 -in '" + TestDataPath(name + ".pem") + "'";
    FILE* pipe = popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    char line[256] = {};
    const bool read = fgets(line, sizeof(line), pipe) != nullptr;
    const int status = pclose(pipe);
    if (!read || status != 0) GTEST_SKIP() << "no openssl command";
    std::string printed = line;  // "sha256 Fingerprint=AB:CD:..."
    printed = printed.substr(printed.find('=') + 1);
    std::string digits;
    for (char c : printed) {
      if (std::isxdigit(static_cast<unsigned char>(c))) digits.push_back(std::tolower(c));
    }
    EXPECT_EQ(thumbprint, digits);
  }
}

TEST(CertificatesTest, CertificateMessageSize) {
  // RFC 6347's 12-byte handshake header, the 3-byte list length, 3 bytes per certificate.
  const size_t lengths[] = {500, 600};
  EXPECT_EQ(CertificateMessageBytes(lengths), 12u + 3u + 503u + 603u);
  EXPECT_EQ(CertificateMessageBytes({}), 15u);
  EXPECT_EQ(MaxCertificateMessageBytes(), 2048u);  // MBEDTLS_SSL_OUT_CONTENT_LEN
}

TEST(CertificatesTest, EndpointNameIsTheCnElseTheFirstDnsNameOrUri) {
  Parsed with_cn_and_uri("ec_client.pem");
  EXPECT_EQ(CertificateEndpointName(with_cn_and_uri.crt()), "urn:imei:351234567890123");
  Parsed cn_beside_dns("cert_cn_san.pem");
  EXPECT_EQ(CertificateEndpointName(cn_beside_dns.crt()), "cn-name");
  // No CN: the email SAN is skipped, the URI before the dNSName is taken.
  Parsed san_only("cert_san.pem");
  ASSERT_EQ(san_only.result(), 0);
  EXPECT_EQ(CertificateEndpointName(san_only.crt()), "urn:dev:san-first");
}

// ---------------------------------------------------------------------------------------------
// The server's credential.

TEST(CertificatesTest, ServerChainAndKeyAreChecked) {
  const std::string chain = ReadTestData("ec_server.pem") + ReadTestData("ec_intermediate.pem");
  absl::StatusOr<ServerCertificate> good =
      ParseServerCertificate(chain, ReadTestData("ec_server.key"), "cert", "key");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->certificates, 2u);
  EXPECT_EQ(good->subject, "O=lwm2md test, CN=lwm2md.test");
  EXPECT_EQ(good->thumbprint.size(), 64u);
  EXPECT_LT(good->message_bytes, MaxCertificateMessageBytes());
  EXPECT_FALSE(good->generated);

  EXPECT_EQ(
      Message(ParseServerCertificate(chain, ReadTestData("ec_client.key"), "cert", "key").status()),
      "key: does not match the certificate in cert");
  EXPECT_THAT(Message(ParseServerCertificate(chain, "not a key", "cert", "key").status()),
              StartsWith("key: no usable PEM private key"));
  EXPECT_THAT(
      Message(ParseServerCertificate("", ReadTestData("ec_server.key"), "cert", "key").status()),
      StartsWith("cert: no PEM certificate"));
  const std::string reversed = ReadTestData("ec_intermediate.pem") + ReadTestData("ec_server.pem");
  EXPECT_THAT(
      Message(
          ParseServerCertificate(reversed, ReadTestData("ec_server.key"), "cert", "key").status()),
      HasSubstr("cert: certificate 2 (O=lwm2md test, CN=lwm2md.test) is not the issuer of "
                "certificate 1"));
}

// mbedTLS cannot send a Certificate message larger than its 2 KiB output buffer (see
// mbedtls_config_test's ChainBeyondTheRecordBuffersCannotBeSent): such a chain is refused
// when it is loaded, with its size and the limit.
TEST(CertificatesTest, ChainTooLargeForOneHandshakeMessageIsRefused) {
  const std::string two = ReadTestData("rsa_server.pem") + ReadTestData("rsa_intermediate.pem");
  absl::StatusOr<ServerCertificate> fits =
      ParseServerCertificate(two, ReadTestData("rsa_server.key"), "cert", "key");
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_GT(fits->message_bytes, 1700u);

  absl::StatusOr<ServerCertificate> three = ParseServerCertificate(
      two + ReadTestData("rsa_root.pem"), ReadTestData("rsa_server.key"), "cert", "key");
  ASSERT_FALSE(three.ok());
  EXPECT_THAT(Message(three.status()),
              ::testing::MatchesRegex("cert: the chain \\(3 certificates\\) makes a 2[0-9]{3}-byte "
                                      "Certificate message, and mbedTLS sends at most 2048 bytes "
                                      "in one .*"));
}

TEST(CertificatesTest, LoadErrorsNameTheKeyAndTheFile) {
  EXPECT_EQ(
      Message(
          LoadServerCertificate("/nonexistent/cert.pem", TestDataPath("ec_server.key")).status()),
      "dtls.certificate_file: cannot read \"/nonexistent/cert.pem\": No such file or "
      "directory");
  EXPECT_EQ(
      Message(
          LoadServerCertificate(TestDataPath("ec_server.pem"), "/nonexistent/key.pem").status()),
      "dtls.private_key_file: cannot read \"/nonexistent/key.pem\": No such file or "
      "directory");
  absl::Status mismatch =
      LoadServerCertificate(TestDataPath("ec_server.pem"), TestDataPath("ec_client.key")).status();
  EXPECT_EQ(Message(mismatch), "dtls.private_key_file \"" + TestDataPath("ec_client.key") +
                                   "\": does not match the certificate in "
                                   "dtls.certificate_file \"" +
                                   TestDataPath("ec_server.pem") + "\"");
  absl::StatusOr<ServerCertificate> loaded =
      LoadServerCertificate(TestDataPath("ec_server.pem"), TestDataPath("ec_server.key"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->certificate_path, TestDataPath("ec_server.pem"));
}

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "certificates_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

using GeneratedCertificateTest = TempDirTest;

TEST_F(GeneratedCertificateTest, MadeOnceKeptAndReused) {
  absl::StatusOr<ServerCertificate> first = LoadOrCreateServerCertificate(dir_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->generated);
  EXPECT_EQ(first->subject, "CN=lwm2md");
  EXPECT_EQ(first->certificate_path, dir_ + "/dtls-server.pem");
  EXPECT_EQ(first->key_path, dir_ + "/dtls-server.key");
  EXPECT_GT(first->not_after, absl::FromCivil(absl::CivilYear(9999), absl::UTCTimeZone()));
  struct stat key_stat {};
  ASSERT_EQ(stat(first->key_path.c_str(), &key_stat), 0);
  EXPECT_EQ(key_stat.st_mode & 0777, 0600u);

  // openssl reads what was written: a self-signed P-256 certificate that is no CA.
  const std::string command = "openssl x509 -noout -text -in '" + first->certificate_path + "'";
  if (FILE* pipe = popen(command.c_str(), "r")) {
    std::string text;
    char buffer[512];
    while (fgets(buffer, sizeof(buffer), pipe) != nullptr) text += buffer;
    if (pclose(pipe) == 0) {
      EXPECT_THAT(text, HasSubstr("ecdsa-with-SHA256"));
      EXPECT_THAT(text, HasSubstr("prime256v1"));
      EXPECT_THAT(text, HasSubstr("CA:FALSE"));
      EXPECT_THAT(text, HasSubstr("Not After : Dec 31 23:59:59 9999 GMT"));
    }
  }

  absl::StatusOr<ServerCertificate> again = LoadOrCreateServerCertificate(dir_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->generated);
  EXPECT_EQ(again->thumbprint, first->thumbprint);
  EXPECT_EQ(again->key_pem, first->key_pem);

  // A key left without its certificate (a crash between the two) gets a certificate.
  std::filesystem::remove(first->certificate_path);
  absl::StatusOr<ServerCertificate> remade = LoadOrCreateServerCertificate(dir_);
  ASSERT_TRUE(remade.ok()) << remade.status();
  EXPECT_TRUE(remade->generated);
  EXPECT_EQ(remade->key_pem, first->key_pem);
  EXPECT_NE(remade->thumbprint, first->thumbprint);  // a new serial number

  // A certificate without its key cannot be used.
  std::filesystem::remove(first->key_path);
  absl::Status orphan = LoadOrCreateServerCertificate(dir_).status();
  EXPECT_EQ(orphan.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(orphan), HasSubstr("has no key beside it"));
}

// ---------------------------------------------------------------------------------------------
// CA certificates.

TEST(CertificatesTest, CaCertificatesParseAndMustBeCas) {
  const absl::Time now = absl::Now();
  // A bundle as openssl writes them, with text around the blocks and a repeated certificate.
  const std::string bundle = "subject=root\n" + ReadTestData("ec_root.pem") + "\n# next\n" +
                             ReadTestData("ec_intermediate.pem") + ReadTestData("ec_root.pem");
  absl::StatusOr<std::vector<CaCertificate>> parsed = ParseCaCertificates(bundle, now);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].subject, "O=lwm2md test, CN=lwm2md test root (ec)");
  EXPECT_EQ((*parsed)[0].issuer, (*parsed)[0].subject);
  EXPECT_EQ((*parsed)[1].issuer, "O=lwm2md test, CN=lwm2md test root (ec)");
  EXPECT_EQ((*parsed)[0].not_before,
            absl::FromCivil(absl::CivilDay(2020, 1, 1), absl::UTCTimeZone()));
  EXPECT_EQ((*parsed)[0].not_after,
            absl::FromCivil(absl::CivilDay(2120, 1, 1), absl::UTCTimeZone()));

  // One DER certificate.
  Parsed root("ec_root.pem");
  const std::string der(reinterpret_cast<const char*>(root.crt().raw.p), root.crt().raw.len);
  absl::StatusOr<std::vector<CaCertificate>> from_der = ParseCaCertificates(der, now);
  ASSERT_TRUE(from_der.ok()) << from_der.status();
  EXPECT_EQ((*from_der)[0].thumbprint, (*parsed)[0].thumbprint);
  EXPECT_EQ((*from_der)[0].der, der);

  EXPECT_EQ(
      Message(ParseCaCertificates(ReadTestData("ec_root.pem") + ReadTestData("ec_server.pem"), now)
                  .status()),
      "certificate 2 (O=lwm2md test, CN=lwm2md.test): not a CA certificate (no "
      "basicConstraints CA:TRUE)");
  EXPECT_EQ(Message(ParseCaCertificates(ReadTestData("cert_expired_root.pem"), now).status()),
            "certificate 1 (O=lwm2md test, CN=expired root): expired on 2001-01-01 00:00:00 UTC");
  EXPECT_THAT(Message(ParseCaCertificates("hello", now).status()),
              StartsWith("no certificate: expected PEM"));
  std::string broken = ReadTestData("ec_root.pem");
  broken[100] = broken[100] == 'A' ? 'B' : 'A';
  EXPECT_THAT(Message(ParseCaCertificates(broken, now).status()),
              StartsWith("certificate 1 does not parse: "));
}

class CaStoreTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    OpenAll();
  }
  void TearDown() override {
    cas_.reset();
    store_.reset();
    TempDirTest::TearDown();
  }
  void OpenAll() {
    store::Options options;
    options.path = dir_;
    options.map_size_bytes = uint64_t{16} << 20;
    options.durability = store::Durability::kAsync;
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<std::unique_ptr<CaStore>> cas = CaStore::Open(*store_);
    ASSERT_TRUE(cas.ok()) << cas.status();
    cas_ = *std::move(cas);
  }
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<CaStore> cas_;
};

TEST_F(CaStoreTest, AddListRemoveAndReopen) {
  EXPECT_TRUE(cas_->Current()->certificates().empty());
  const uint64_t empty_version = cas_->version();

  absl::StatusOr<std::vector<CaStore::Added>> added =
      cas_->Add(ReadTestData("ec_root.pem") + ReadTestData("ec_intermediate.pem"));
  ASSERT_TRUE(added.ok()) << added.status();
  ASSERT_EQ(added->size(), 2u);
  EXPECT_TRUE((*added)[0].added);
  EXPECT_TRUE((*added)[1].added);
  EXPECT_EQ(cas_->Current()->certificates().size(), 2u);
  const uint64_t version = cas_->version();
  EXPECT_GT(version, empty_version);

  // Adding what is there changes nothing, not even the version.
  added = cas_->Add(ReadTestData("ec_root.pem"));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_FALSE((*added)[0].added);
  EXPECT_EQ(cas_->version(), version);

  // A refused upload stores nothing, even its good certificates.
  absl::StatusOr<std::vector<CaStore::Added>> refused =
      cas_->Add(ReadTestData("cert_foreign_root.pem") + ReadTestData("ec_client.pem"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cas_->Current()->certificates().size(), 2u);

  // Removal by thumbprint, also in openssl's colon form; a snapshot taken before keeps its
  // certificates (a shard may be verifying with it).
  const std::shared_ptr<const CaSet> before = cas_->Current();
  const std::string root =
      (*ParseCaCertificates(ReadTestData("ec_root.pem"), absl::Now()))[0].thumbprint;
  std::string colons;
  for (size_t i = 0; i < root.size(); i += 2) {
    if (i > 0) colons += ':';
    colons += static_cast<char>(std::toupper(root[i]));
    colons += static_cast<char>(std::toupper(root[i + 1]));
  }
  ASSERT_TRUE(cas_->Remove(colons).ok());
  EXPECT_EQ(cas_->Remove(root).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cas_->Current()->certificates().size(), 1u);
  EXPECT_EQ(cas_->Current()->Find(root), nullptr);
  EXPECT_NE(before->Find(root), nullptr);

  cas_.reset();
  store_.reset();
  OpenAll();
  ASSERT_EQ(cas_->Current()->certificates().size(), 1u);
  EXPECT_EQ(cas_->Current()->certificates()[0].subject,
            "O=lwm2md test, CN=lwm2md test intermediate (ec)");
}

TEST_F(CaStoreTest, CorruptRecordStopsTheOpen) {
  store::WriteBatch batch;
  batch.Put(store::Table::kSettings, "ca/" + std::string(64, 'a'), "not a certificate");
  ASSERT_TRUE(store_->Write(std::move(batch)).ok());
  cas_.reset();
  absl::StatusOr<std::unique_ptr<CaStore>> reopened = CaStore::Open(*store_);
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(reopened.status()), HasSubstr("\"ca/aaaa"));
}

// ---------------------------------------------------------------------------------------------
// Handshakes: an mbedTLS client with a certificate against a server set up by
// ShardCertificates, in memory.

// A device's certificate chain and key, as its client configuration uses them.
class Device {
 public:
  Device(Random* random, std::vector<std::string> chain_files, const std::string& key_file) {
    mbedtls_x509_crt_init(&chain_);
    mbedtls_pk_init(&key_);
    for (const std::string& file : chain_files) {
      const std::string pem = ReadTestData(file);
      if (mbedtls_x509_crt_parse(&chain_, reinterpret_cast<const unsigned char*>(pem.c_str()),
                                 pem.size() + 1) != 0) {
        error_ = file;
      }
    }
    const std::string key = ReadTestData(key_file);
    if (mbedtls_pk_parse_key(&key_, reinterpret_cast<const unsigned char*>(key.c_str()),
                             key.size() + 1, nullptr, 0, Random::Generate, random) != 0) {
      error_ = key_file;
    }
  }
  ~Device() {
    mbedtls_pk_free(&key_);
    mbedtls_x509_crt_free(&chain_);
  }
  const std::string& error() const { return error_; }
  int Use(mbedtls_ssl_config* conf) { return mbedtls_ssl_conf_own_cert(conf, &chain_, &key_); }

 private:
  mbedtls_x509_crt chain_;
  mbedtls_pk_context key_;
  std::string error_;
};

constexpr int kEcdheEcdsaCcm8[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, 0};

class CertificateHandshakeTest : public CaStoreTest {
 protected:
  void SetUp() override {
    CaStoreTest::SetUp();
    ASSERT_TRUE(random_.ok());
    absl::StatusOr<ServerCertificate> server =
        ParseServerCertificate(ReadTestData("ec_server.pem") + ReadTestData("ec_intermediate.pem"),
                               ReadTestData("ec_server.key"), "cert", "key");
    ASSERT_TRUE(server.ok()) << server.status();
    server_certificate_ = std::make_shared<const ServerCertificate>(*std::move(server));
  }

  // The shard's side, as DtlsServer sets it up: thumbprints from `thumbprints` (thumbprint →
  // endpoint), CA refusals for the names in `own_credentials`.
  void MakeShard() {
    CertificateOptions options;
    options.server = server_certificate_;
    options.ca_store = cas_.get();
    options.thumbprint_lookup = [this](std::string_view thumbprint) -> std::optional<std::string> {
      auto it = thumbprints_.find(std::string(thumbprint));
      if (it == thumbprints_.end()) return std::nullopt;
      return it->second;
    };
    options.ca_refusal = [this](std::string_view endpoint) -> std::optional<std::string> {
      if (own_credentials_.count(std::string(endpoint)) == 0) return std::nullopt;
      return "endpoint \"" + std::string(endpoint) + "\" has a credential of its own";
    };
    absl::StatusOr<std::unique_ptr<ShardCertificates>> shard =
        ShardCertificates::Create(std::move(options), Random::Generate, &random_);
    ASSERT_TRUE(shard.ok()) << shard.status();
    shard_ = *std::move(shard);
    server_config_ = std::make_unique<ServerConfig>(&random_);
    ASSERT_EQ(server_config_->result(), 0);
    ASSERT_TRUE(shard_->Configure(*server_config_->conf()).ok());
  }

  // One handshake of `device` in ECDHE-ECDSA-CCM-8 (the client does not check the server:
  // only the server's decision is under test).
  HandshakeResult Connect(Device& device, const int* suites = kEcdheEcdsaCcm8) {
    link_ = std::make_unique<Link>();
    client_config_ = std::make_unique<ClientConfig>(&random_, suites);
    EXPECT_EQ(client_config_->result(), 0);
    mbedtls_ssl_conf_authmode(client_config_->conf(), MBEDTLS_SSL_VERIFY_NONE);
    EXPECT_EQ(device.Use(client_config_->conf()), 0);
    client_ = std::make_unique<Endpoint>(client_config_->conf(), &link_->to_client,
                                         &link_->to_server, &link_->clock);
    server_ = std::make_unique<Endpoint>(server_config_->conf(), &link_->to_server,
                                         &link_->to_client, &link_->clock);
    verification_.Reset();
    shard_->Attach(*server_->ssl(), verification_);
    return DriveHandshake(*client_, *server_, *link_);
  }

  void Upload(const std::string& pem) {
    absl::StatusOr<std::vector<CaStore::Added>> added = cas_->Add(pem);
    ASSERT_TRUE(added.ok()) << added.status();
  }

  Random random_;
  std::shared_ptr<const ServerCertificate> server_certificate_;
  std::map<std::string, std::string> thumbprints_;
  std::set<std::string> own_credentials_;
  std::unique_ptr<ShardCertificates> shard_;
  std::unique_ptr<ServerConfig> server_config_;
  std::unique_ptr<ClientConfig> client_config_;
  std::unique_ptr<Link> link_;
  std::unique_ptr<Endpoint> client_;
  std::unique_ptr<Endpoint> server_;
  ShardCertificates::Verification verification_;
};

TEST_F(CertificateHandshakeTest, SelfSignedCertificateWithAKnownThumbprintIsAccepted) {
  thumbprints_[FixtureThumbprint("cert_selfsigned")] = "thumb-dev";
  MakeShard();
  Device device(&random_, {"cert_selfsigned.pem"}, "cert_selfsigned.key");
  ASSERT_EQ(device.error(), "");

  HandshakeResult r = Connect(device);
  ASSERT_TRUE(r.ok()) << Describe(r) << " / " << verification_.refusal();
  EXPECT_EQ(mbedtls_ssl_get_ciphersuite_id_from_ssl(server_->ssl()),
            MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8);
  ASSERT_TRUE(verification_.identity().has_value());
  EXPECT_EQ(verification_.identity()->endpoint, "thumb-dev");
  EXPECT_EQ(verification_.identity()->thumbprint, FixtureThumbprint("cert_selfsigned"));
  EXPECT_EQ(verification_.identity()->name, "selfsigned-dev");
  EXPECT_FALSE(verification_.identity()->via_ca);
  EXPECT_EQ(verification_.refusal(), "");
}

TEST_F(CertificateHandshakeTest, UnknownThumbprintIsRefused) {
  MakeShard();
  Device device(&random_, {"cert_selfsigned.pem"}, "cert_selfsigned.key");
  HandshakeResult r = Connect(device);
  EXPECT_EQ(r.server, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) << Describe(r);
  EXPECT_EQ(r.client, MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) << Describe(r);
  EXPECT_FALSE(verification_.identity().has_value());
  EXPECT_THAT(verification_.refusal(),
              HasSubstr("(selfsigned-dev): unknown thumbprint, and not signed by an uploaded CA"));
  EXPECT_NE(mbedtls_ssl_get_verify_result(server_->ssl()) & MBEDTLS_X509_BADCERT_NOT_TRUSTED, 0u);
}

TEST_F(CertificateHandshakeTest, ExpiredCertificateIsRefusedInBothModes) {
  Upload(ReadTestData("ec_root.pem"));
  thumbprints_[FixtureThumbprint("cert_expired")] = "expired-dev";
  MakeShard();
  // By thumbprint, and as a certificate under an uploaded CA.
  Device device(&random_, {"cert_expired.pem", "ec_intermediate.pem"}, "cert_expired.key");
  HandshakeResult r = Connect(device);
  EXPECT_EQ(r.server, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) << Describe(r);
  EXPECT_THAT(verification_.refusal(), HasSubstr("expired on 2001-01-01"));
  EXPECT_NE(mbedtls_ssl_get_verify_result(server_->ssl()) & MBEDTLS_X509_BADCERT_EXPIRED, 0u);

  thumbprints_.clear();
  r = Connect(device);
  EXPECT_EQ(r.server, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) << Describe(r);
  EXPECT_THAT(verification_.refusal(), HasSubstr("expired on 2001-01-01"));
  EXPECT_FALSE(verification_.identity().has_value());
}

TEST_F(CertificateHandshakeTest, CertificateSignedByAnUploadedCaIsAcceptedUnderItsName) {
  Upload(ReadTestData("ec_root.pem"));
  MakeShard();
  // The device sends its certificate and the intermediate; the root is uploaded.
  Device device(&random_, {"ec_client.pem", "ec_intermediate.pem"}, "ec_client.key");
  HandshakeResult r = Connect(device);
  ASSERT_TRUE(r.ok()) << Describe(r) << " / " << verification_.refusal();
  ASSERT_TRUE(verification_.identity().has_value());
  EXPECT_TRUE(verification_.identity()->via_ca);
  EXPECT_EQ(verification_.identity()->endpoint, "urn:imei:351234567890123");
  EXPECT_EQ(verification_.identity()->name, "urn:imei:351234567890123");
  EXPECT_EQ(verification_.identity()->thumbprint, FixtureThumbprint("ec_client"));
}

TEST_F(CertificateHandshakeTest, CaUploadsAndRemovalsReachAShardWithoutARestart) {
  MakeShard();
  // The device sends its certificate alone: the intermediate must be the uploaded CA.
  Device device(&random_, {"cert_san.pem"}, "cert_san.key");
  HandshakeResult r = Connect(device);
  EXPECT_EQ(r.server, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) << Describe(r);
  const int reloads = shard_->ca_reloads_for_test();

  Upload(ReadTestData("ec_intermediate.pem"));
  r = Connect(device);
  ASSERT_TRUE(r.ok()) << Describe(r) << " / " << verification_.refusal();
  EXPECT_EQ(verification_.identity()->endpoint, "urn:dev:san-first");
  EXPECT_EQ(shard_->ca_reloads_for_test(), reloads + 1);
  r = Connect(device);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(shard_->ca_reloads_for_test(), reloads + 1);  // re-read only on a change

  const std::string thumbprint =
      (*ParseCaCertificates(ReadTestData("ec_intermediate.pem"), absl::Now()))[0].thumbprint;
  ASSERT_TRUE(cas_->Remove(thumbprint).ok());
  r = Connect(device);
  EXPECT_EQ(r.server, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) << Describe(r);
}

// A CA of the same name as the uploaded root, but another key: its devices stay out.
TEST_F(CertificateHandshakeTest, CertificateOfAForeignCaIsRefused) {
  Upload(ReadTestData("ec_root.pem"));
  MakeShard();
  Device device(&random_, {"cert_foreign_client.pem"}, "cert_foreign_client.key");
  HandshakeResult r = Connect(device);
  EXPECT_EQ(r.server, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) << Describe(r);
  EXPECT_THAT(verification_.refusal(), HasSubstr("(foreign-dev): unknown thumbprint"));
  // Sending the foreign root along does not help.
  Device with_root(&random_, {"cert_foreign_client.pem", "cert_foreign_root.pem"},
                   "cert_foreign_client.key");
  r = Connect(with_root);
  EXPECT_EQ(r.server, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) << Describe(r);
  EXPECT_FALSE(verification_.identity().has_value());
}

TEST_F(CertificateHandshakeTest, CaCertificateCannotEnterAnEndpointWithItsOwnCredential) {
  Upload(ReadTestData("ec_root.pem"));
  own_credentials_.insert("urn:imei:351234567890123");
  MakeShard();
  Device device(&random_, {"ec_client.pem", "ec_intermediate.pem"}, "ec_client.key");
  HandshakeResult r = Connect(device);
  EXPECT_EQ(r.server, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) << Describe(r);
  EXPECT_THAT(verification_.refusal(),
              HasSubstr("signed by an uploaded CA, but endpoint \"urn:imei:351234567890123\" has "
                        "a credential of its own"));
  // Its thumbprint configured for that endpoint lets it in (thumbprint mode).
  thumbprints_[FixtureThumbprint("ec_client")] = "urn:imei:351234567890123";
  r = Connect(device);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_FALSE(verification_.identity()->via_ca);
}

TEST_F(CertificateHandshakeTest, CertificateSignedWithAnotherKeyIsRefused) {
  thumbprints_[FixtureThumbprint("cert_selfsigned")] = "thumb-dev";
  MakeShard();
  // The right certificate, and a key that is not its own: CertificateVerify does not verify.
  Device device(&random_, {"cert_selfsigned.pem"}, "cert_san.key");
  HandshakeResult r = Connect(device);
  EXPECT_EQ(r.server, MBEDTLS_ERR_ECP_VERIFY_FAILED) << Describe(r);
}

TEST_F(CertificateHandshakeTest, NoClientCertificateIsRefused) {
  MakeShard();
  link_ = std::make_unique<Link>();
  ClientConfig client_config(&random_, kEcdheEcdsaCcm8);
  mbedtls_ssl_conf_authmode(client_config.conf(), MBEDTLS_SSL_VERIFY_NONE);
  Endpoint client(client_config.conf(), &link_->to_client, &link_->to_server, &link_->clock);
  Endpoint server(server_config_->conf(), &link_->to_server, &link_->to_client, &link_->clock);
  verification_.Reset();
  shard_->Attach(*server.ssl(), verification_);
  HandshakeResult r = DriveHandshake(client, server, *link_);
  EXPECT_EQ(r.server, MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE) << Describe(r);
}

// Requiring client certificates concerns certificate suites only: PSK devices are never
// asked for one.
TEST_F(CertificateHandshakeTest, PskHandshakesAreUnaffected) {
  MakeShard();
  server_config_->SetPsk("psk-id", "0123456789abcdef");
  link_ = std::make_unique<Link>();
  const int suites[] = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, 0};
  ClientConfig client_config(&random_, suites);
  ASSERT_EQ(client_config.SetPsk("psk-id", "0123456789abcdef"), 0);
  Endpoint client(client_config.conf(), &link_->to_client, &link_->to_server, &link_->clock);
  Endpoint server(server_config_->conf(), &link_->to_server, &link_->to_client, &link_->clock);
  verification_.Reset();
  shard_->Attach(*server.ssl(), verification_);
  HandshakeResult r = DriveHandshake(client, server, *link_);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_FALSE(verification_.identity().has_value());
}

// The generated server certificate serves the LwM2M certificate suite as it is.
TEST_F(CertificateHandshakeTest, GeneratedServerCertificateServesEcdheEcdsa) {
  absl::StatusOr<ServerCertificate> generated = GenerateServerCertificate("lwm2md");
  ASSERT_TRUE(generated.ok()) << generated.status();
  server_certificate_ = std::make_shared<const ServerCertificate>(*std::move(generated));
  thumbprints_[FixtureThumbprint("cert_selfsigned")] = "thumb-dev";
  MakeShard();
  Device device(&random_, {"cert_selfsigned.pem"}, "cert_selfsigned.key");
  HandshakeResult r = Connect(device);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(mbedtls_ssl_get_ciphersuite_id_from_ssl(server_->ssl()),
            MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8);
}

// ---------------------------------------------------------------------------------------------
// The same through DtlsServer, as a shard runs it: what the session's identity says and how
// refusals are counted.

// A shard as the server sees it: sends are captured, time stands still.
class FakeIo : public net::ShardIo {
 public:
  FakeIo() : timers_(net::TimePoint()) {}
  int shard_id() const override { return 0; }
  net::TimePoint Now() const override { return net::TimePoint(); }
  bool Send(int, const net::PeerAddress&, std::span<const uint8_t> bytes) override {
    sent_.emplace_back(bytes.begin(), bytes.end());
    return true;
  }
  net::TimerWheel& timers() override { return timers_; }
  std::vector<std::vector<uint8_t>> TakeSent() { return std::exchange(sent_, {}); }

 private:
  net::TimerWheel timers_;
  std::vector<std::vector<uint8_t>> sent_;
};

class DtlsServerCertificateTest : public CertificateHandshakeTest {
 protected:
  void StartServer() {
    options_.psk_lookup = [](std::string_view) { return std::optional<PskCredential>(); };
    options_.certificates.server = server_certificate_;
    options_.certificates.ca_store = cas_.get();
    options_.certificates.thumbprint_lookup =
        [this](std::string_view thumbprint) -> std::optional<std::string> {
      auto it = thumbprints_.find(std::string(thumbprint));
      if (it == thumbprints_.end()) return std::nullopt;
      return it->second;
    };
    absl::StatusOr<std::unique_ptr<DtlsServer>> server =
        DtlsServer::Create(io_, options_, metrics_, [](const net::ReceivedDatagram&) {});
    ASSERT_TRUE(server.ok()) << server.status();
    dtls_ = *std::move(server);
  }

  // A handshake of `device` from kPeer: 0 or the client's error.
  int DtlsHandshake(Device& device) {
    link_ = std::make_unique<Link>();
    client_config_ = std::make_unique<ClientConfig>(&random_, kEcdheEcdsaCcm8);
    mbedtls_ssl_conf_authmode(client_config_->conf(), MBEDTLS_SSL_VERIFY_NONE);
    EXPECT_EQ(device.Use(client_config_->conf()), 0);
    client_ = std::make_unique<Endpoint>(client_config_->conf(), &link_->to_client,
                                         &link_->to_server, &link_->clock);
    for (int round = 0; round < 16; ++round) {
      const int result = mbedtls_ssl_handshake(client_->ssl());
      for (; !link_->to_server.empty(); link_->to_server.Pop()) {
        dtls_->OnDatagram(net::ReceivedDatagram{0, peer_, link_->to_server.Front()});
      }
      for (const std::vector<uint8_t>& datagram : io_.TakeSent()) link_->to_client.Push(datagram);
      if (result == 0) return 0;
      if (result != MBEDTLS_ERR_SSL_WANT_READ && result != MBEDTLS_ERR_SSL_WANT_WRITE) {
        return result;
      }
    }
    return MBEDTLS_ERR_SSL_TIMEOUT;
  }

  uint64_t Failures(DtlsMetrics::Failure failure) const {
    return metrics_.handshake_failures[static_cast<int>(failure)].Value();
  }

  const net::PeerAddress peer_ = *net::PeerAddress::Parse("192.0.2.7:40001");
  FakeIo io_;
  DtlsOptions options_;
  DtlsMetrics metrics_;
  std::unique_ptr<DtlsServer> dtls_;
};

TEST_F(DtlsServerCertificateTest, IdentityTellsHowTheEndpointWasFound) {
  thumbprints_[FixtureThumbprint("cert_selfsigned")] = "thumb-dev";
  Upload(ReadTestData("ec_root.pem"));
  StartServer();

  Device self_signed(&random_, {"cert_selfsigned.pem"}, "cert_selfsigned.key");
  ASSERT_EQ(DtlsHandshake(self_signed), 0);
  const PeerIdentity* identity = dtls_->FindIdentity(peer_);
  ASSERT_NE(identity, nullptr);
  EXPECT_EQ(identity->authentication, Authentication::kCertificateThumbprint);
  EXPECT_EQ(identity->endpoint, "thumb-dev");
  EXPECT_EQ(identity->certificate_thumbprint, FixtureThumbprint("cert_selfsigned"));
  EXPECT_EQ(identity->certificate_name, "selfsigned-dev");
  EXPECT_EQ(identity->ciphersuite, "TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8");

  // The same address, a new handshake: the device now shows a CA-signed certificate.
  Device ca_signed(&random_, {"ec_client.pem", "ec_intermediate.pem"}, "ec_client.key");
  ASSERT_EQ(DtlsHandshake(ca_signed), 0);
  identity = dtls_->FindIdentity(peer_);
  ASSERT_NE(identity, nullptr);
  EXPECT_EQ(identity->authentication, Authentication::kCertificateCa);
  EXPECT_EQ(identity->endpoint, "urn:imei:351234567890123");
  EXPECT_EQ(identity->certificate_thumbprint, FixtureThumbprint("ec_client"));
  EXPECT_EQ(metrics_.handshakes_completed.Value(), 2u);
}

TEST_F(DtlsServerCertificateTest, RefusedCertificatesAreCountedAsBadCertificate) {
  thumbprints_[FixtureThumbprint("cert_expired")] = "expired-dev";
  Upload(ReadTestData("ec_root.pem"));
  StartServer();
  Device stranger(&random_, {"cert_selfsigned.pem"}, "cert_selfsigned.key");
  Device expired(&random_, {"cert_expired.pem", "ec_intermediate.pem"}, "cert_expired.key");
  Device foreign(&random_, {"cert_foreign_client.pem"}, "cert_foreign_client.key");
  EXPECT_EQ(DtlsHandshake(stranger), MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE);
  EXPECT_EQ(DtlsHandshake(expired), MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE);
  EXPECT_EQ(DtlsHandshake(foreign), MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE);
  EXPECT_EQ(Failures(DtlsMetrics::Failure::kBadCertificate), 3u);
  EXPECT_EQ(metrics_.handshakes_completed.Value(), 0u);
  EXPECT_EQ(dtls_->session_count(), 0u);
  EXPECT_EQ(dtls_->FindIdentity(peer_), nullptr);
  EXPECT_EQ(DtlsMetrics::FailureName(DtlsMetrics::Failure::kBadCertificate), "bad_certificate");

  // The right certificate with a key that is not its own: a wrong key, as with PSK.
  thumbprints_[FixtureThumbprint("cert_selfsigned")] = "thumb-dev";
  Device wrong_key(&random_, {"cert_selfsigned.pem"}, "cert_san.key");
  EXPECT_NE(DtlsHandshake(wrong_key), 0);
  EXPECT_EQ(Failures(DtlsMetrics::Failure::kBadCredentials), 1u);
  EXPECT_EQ(Failures(DtlsMetrics::Failure::kBadCertificate), 3u);
}

// A session saved while idle or at shutdown keeps what its certificate proved: restored, it
// still stands for its endpoint by the same means (a CA-vouched endpoint needs no
// configuration to register).
TEST(CertificatesTest, CertificateIdentitySurvivesASavedSession) {
  SavedSession session;
  session.connection_id = 0x0300000000000042;
  session.peer = *net::PeerAddress::Parse("127.0.0.1:5684");
  session.identity.authentication = Authentication::kCertificateCa;
  session.identity.certificate_thumbprint = std::string(64, 'e');
  session.identity.certificate_name = "urn:imei:351234567890123";
  session.identity.endpoint = "urn:imei:351234567890123";
  session.identity.ciphersuite = "TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8";
  session.saved_at = absl::FromUnixSeconds(1700000000);
  session.context = "context";
  absl::StatusOr<SavedSession> decoded = DecodeSavedSession(EncodeSavedSession(session));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->identity.authentication, Authentication::kCertificateCa);
  EXPECT_EQ(decoded->identity.certificate_thumbprint, std::string(64, 'e'));
  EXPECT_EQ(decoded->identity.certificate_name, "urn:imei:351234567890123");
  EXPECT_EQ(decoded->identity.endpoint, "urn:imei:351234567890123");

  // A PSK session is written as before (no certificate fields) and reads back as PSK.
  session.identity = PeerIdentity();
  session.identity.psk_identity = "id";
  session.identity.endpoint = "dev";
  decoded = DecodeSavedSession(EncodeSavedSession(session));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->identity.authentication, Authentication::kPsk);
  EXPECT_EQ(decoded->identity.psk_identity, "id");
  EXPECT_TRUE(decoded->identity.certificate_thumbprint.empty());
}

}  // namespace
}  // namespace lwm2md::dtls
