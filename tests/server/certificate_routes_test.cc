// /api/v1/certificates/ca over a real socket, with the CA store (through the server's
// adapter, server/ca_certificates.h) over a real store in a temporary directory, and
// certificates from tests/dtls/testdata (openssl-made).

#include <httplib.h>
#include <simdjson.h>
#include <stdlib.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "api/http_server.h"
#include "dtls/certificates.h"
#include "server/ca_certificates.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/store.h"

namespace lwm2md::api {
namespace {

using ::testing::HasSubstr;

constexpr char kPem[] = "application/x-pem-file";
constexpr char kToken[] = "certificate-routes-test-token-0123";
constexpr char kReadOnlyToken[] = "certificate-routes-read-only-token";

std::string ReadTestData(const std::string& name) {
  std::ifstream in(std::string(LWM2MD_SOURCE_DIR) + "/tests/dtls/testdata/" + name,
                   std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// What `openssl x509 -noout -fingerprint -sha256` prints for the certificate, as the API
// shows thumbprints: lowercase, no colons.
std::string Thumbprint(const std::string& pem_file) {
  absl::StatusOr<std::vector<dtls::CaCertificate>> parsed =
      dtls::ParseCaCertificates(ReadTestData(pem_file), absl::InfinitePast());
  return parsed.ok() && !parsed->empty() ? (*parsed)[0].thumbprint : std::string();
}

class CertificateRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "certificate-routes-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    Start();
  }

  void TearDown() override {
    Stop();
    std::filesystem::remove_all(dir_);
  }

  void Start() {
    store::Options options;
    options.path = dir_;
    options.map_size_bytes = uint64_t{16} << 20;
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<std::unique_ptr<dtls::CaStore>> cas = dtls::CaStore::Open(*store_);
    ASSERT_TRUE(cas.ok()) << cas.status();
    cas_ = *std::move(cas);
    api_cas_ = std::make_unique<lwm2md::server::ApiCaCertificates>(*cas_);
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
        {.address = "127.0.0.1",
         .port = 0,
         .tokens = {MakeApiToken("test", kToken),
                    MakeApiToken("reader", kReadOnlyToken, TokenAccess::kReadOnly)}},
        {.ca_certificates = api_cas_.get()});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  void Stop() {
    server_.reset();
    api_cas_.reset();
    cas_.reset();
    store_.reset();
  }

  httplib::Client Client(const char* token = kToken) {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_bearer_token_auth(token);
    return client;
  }

  httplib::Result Upload(const std::string& body, const char* type = kPem) {
    return Client().Post("/api/v1/certificates/ca", body, type);
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<dtls::CaStore> cas_;
  std::unique_ptr<lwm2md::server::ApiCaCertificates> api_cas_;
  std::unique_ptr<HttpServer> server_;
  simdjson::dom::parser parser_;
};

TEST_F(CertificateRoutesTest, UploadListGetDelete) {
  httplib::Result result = Client().Get("/api/v1/certificates/ca");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, R"({"certificates":[]})");

  // A bundle: the root and the intermediate, in one body.
  result = Upload(ReadTestData("ec_root.pem") + ReadTestData("ec_intermediate.pem"));
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 201) << result->body;
  EXPECT_FALSE(result->has_header("Location"));  // two certificates: no one place
  simdjson::dom::element doc;
  ASSERT_EQ(parser_.parse(result->body).get(doc), simdjson::SUCCESS) << result->body;
  simdjson::dom::array added = doc["certificates"];
  ASSERT_EQ(added.size(), 2u);
  EXPECT_EQ(std::string_view(added.at(0)["thumbprint"]), Thumbprint("ec_root.pem"));
  EXPECT_EQ(std::string_view(added.at(0)["subject"]), "O=lwm2md test, CN=lwm2md test root (ec)");
  EXPECT_EQ(std::string_view(added.at(0)["notBefore"]), "2020-01-01T00:00:00.000Z");
  EXPECT_EQ(std::string_view(added.at(0)["notAfter"]), "2120-01-01T00:00:00.000Z");
  EXPECT_TRUE(bool(added.at(0)["added"]));
  EXPECT_EQ(std::string_view(added.at(1)["issuer"]), "O=lwm2md test, CN=lwm2md test root (ec)");

  // The same again: nothing new, 200.
  result = Upload(ReadTestData("ec_root.pem"));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200) << result->body;
  EXPECT_THAT(result->body, HasSubstr(R"("added":false)"));
  EXPECT_EQ(result->get_header_value("Location"),
            "/api/v1/certificates/ca/" + Thumbprint("ec_root.pem"));

  result = Client().Get("/api/v1/certificates/ca");
  ASSERT_TRUE(result);
  ASSERT_EQ(parser_.parse(result->body).get(doc), simdjson::SUCCESS);
  EXPECT_EQ(simdjson::dom::array(doc["certificates"]).size(), 2u);

  // One, with its PEM: the very certificate uploaded.
  const std::string root = Thumbprint("ec_root.pem");
  result = Client().Get("/api/v1/certificates/ca/" + root);
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  ASSERT_EQ(parser_.parse(result->body).get(doc), simdjson::SUCCESS);
  absl::StatusOr<std::vector<dtls::CaCertificate>> again =
      dtls::ParseCaCertificates(std::string(std::string_view(doc["pem"])), absl::Now());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)[0].thumbprint, root);

  // Deleted by thumbprint (openssl's colon form in upper case works too).
  std::string colons;
  for (size_t i = 0; i < root.size(); i += 2) {
    if (i > 0) colons += "%3A";
    colons += static_cast<char>(std::toupper(root[i]));
    colons += static_cast<char>(std::toupper(root[i + 1]));
  }
  result = Client().Delete("/api/v1/certificates/ca/" + colons);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 204) << result->body;
  result = Client().Delete("/api/v1/certificates/ca/" + root);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
  EXPECT_THAT(result->body, HasSubstr("not found"));
  result = Client().Get("/api/v1/certificates/ca/" + root);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);

  // Kept across a restart.
  Stop();
  Start();
  result = Client().Get("/api/v1/certificates/ca");
  ASSERT_TRUE(result);
  ASSERT_EQ(parser_.parse(result->body).get(doc), simdjson::SUCCESS);
  simdjson::dom::array kept = doc["certificates"];
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(std::string_view(kept.at(0)["thumbprint"]), Thumbprint("ec_intermediate.pem"));
}

TEST_F(CertificateRoutesTest, RefusalsSayWhyAndStoreNothing) {
  struct Case {
    std::string body;
    std::string error;
  };
  const Case cases[] = {
      {ReadTestData("ec_client.pem"),
       "certificate 1 (O=lwm2md test, CN=urn:imei:351234567890123): not a CA certificate (no "
       "basicConstraints CA:TRUE)"},
      {ReadTestData("ec_root.pem") + ReadTestData("cert_expired_root.pem"),
       "certificate 2 (O=lwm2md test, CN=expired root): expired on 2001-01-01 00:00:00 UTC"},
      {"hello",
       "no certificate: expected PEM (\"-----BEGIN CERTIFICATE-----\" blocks) or one DER "
       "certificate"},
  };
  for (const Case& test : cases) {
    httplib::Result result = Upload(test.body);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, 400) << result->body;
    simdjson::dom::element doc;
    ASSERT_EQ(parser_.parse(result->body).get(doc), simdjson::SUCCESS) << result->body;
    EXPECT_EQ(std::string_view(doc["error"]), test.error);
  }
  EXPECT_TRUE(cas_->Current()->certificates().empty());

  httplib::Result result = Upload(ReadTestData("ec_root.pem"), "application/json");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 415);
  EXPECT_THAT(result->body, HasSubstr("Content-Type must be application/pem-certificate-chain"));

  // Uploads and deletes need a read-write token; a read-only one may list.
  result =
      Client(kReadOnlyToken).Post("/api/v1/certificates/ca", ReadTestData("ec_root.pem"), kPem);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 403);
  result = Client(kReadOnlyToken).Get("/api/v1/certificates/ca");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  httplib::Client anonymous("127.0.0.1", server_->port());
  result = anonymous.Get("/api/v1/certificates/ca");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 401);
}

// One DER certificate (application/pkix-cert, RFC 2585) is taken as well.
TEST_F(CertificateRoutesTest, TakesOneDerCertificate) {
  absl::StatusOr<std::vector<dtls::CaCertificate>> root =
      dtls::ParseCaCertificates(ReadTestData("ec_root.pem"), absl::Now());
  ASSERT_TRUE(root.ok());
  httplib::Result result = Upload((*root)[0].der, "application/pkix-cert");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 201) << result->body;
  EXPECT_NE(cas_->Current()->Find(Thumbprint("ec_root.pem")), nullptr);
}

}  // namespace
}  // namespace lwm2md::api
