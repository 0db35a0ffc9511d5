// Bearer tokens and HTTPS on the HTTP listener, over real sockets: what a client without a
// token, with a wrong one, with a read-only one sees; the generated token file; HTTPS with a
// certificate made here and a client that verifies it.

#include "api/auth.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "api/http_server.h"
#include "base/log.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lwm2m/endpoint_config.h"
#include "lwm2m/endpoint_directory.h"
#include "lwm2m/event_bus.h"
#include "metrics/registry.h"
#include "store/store.h"

namespace lwm2md::api {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kJson[] = "application/json";
constexpr char kReadWrite[] = "rw-secret-0123456789abcdef";
constexpr char kReadOnly[] = "ro-secret-0123456789abcdef";
constexpr char kUnauthorizedBody[] = R"({"error":"missing or invalid bearer token"})";
constexpr char kForbiddenBody[] = R"({"error":"token is read-only"})";

std::string MakeTempDir(const std::string& prefix) {
  std::string pattern = ::testing::TempDir() + prefix + "_XXXXXX";
  EXPECT_NE(mkdtemp(pattern.data()), nullptr);
  return pattern;
}

// Sends one request on a fresh connection and returns every byte until the server closes (at
// most 5 s; the request asks it to close at once).
std::string RawRequest(uint16_t port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{.tv_sec = 5, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buffer[4096];
    for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) reply.append(buffer, n);
  }
  close(fd);
  return reply;
}

std::string Request(const std::string& method, const std::string& path,
                    const std::string& authorization, const std::string& body = "") {
  std::string request =
      method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!authorization.empty()) request += "Authorization: " + authorization + "\r\n";
  if (!body.empty()) {
    request +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return request + "\r\n" + body;
}

// ---------------------------------------------------------------------------------------------
// The decision alone.

TEST(AuthenticatorTest, ChecksSchemeTokenAndMethod) {
  Authenticator auth({MakeApiToken("ops", kReadWrite, TokenAccess::kReadWrite),
                      MakeApiToken("viewer", kReadOnly, TokenAccess::kReadOnly)},
                     /*public_metrics=*/false);
  using Decision = Authenticator::Decision;
  const std::string rw = std::string("Bearer ") + kReadWrite;
  const std::string ro = std::string("Bearer ") + kReadOnly;

  Authenticator::Result result = auth.Check("DELETE", "/api/v1/endpoints/x", {rw});
  EXPECT_EQ(result.decision, Decision::kAllow);
  ASSERT_NE(result.token, nullptr);
  EXPECT_EQ(result.token->name, "ops");
  // RFC 7235 §2.1: the scheme is case-insensitive.
  EXPECT_EQ(auth.Check("POST", "/api/v1/x", {std::string("bearer ") + kReadWrite}).decision,
            Decision::kAllow);

  EXPECT_EQ(auth.Check("GET", "/api/v1/x", {ro}).decision, Decision::kAllow);
  EXPECT_EQ(auth.Check("HEAD", "/metrics", {ro}).decision, Decision::kAllow);
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    result = auth.Check(method, "/api/v1/x", {ro});
    EXPECT_EQ(result.decision, Decision::kForbidden) << method;
    ASSERT_NE(result.token, nullptr);
    EXPECT_EQ(result.token->name, "viewer");
  }

  for (const std::vector<std::string>& headers : std::vector<std::vector<std::string>>{
           {},
           {"Bearer"},
           {"Bearer "},
           {std::string("Basic ") + kReadWrite},
           {std::string("Bearer") + kReadWrite},
           {std::string("Bearer ") + kReadWrite + "x"},
           {std::string("Bearer ") + std::string(kReadWrite).substr(1)},
           {rw, rw},  // two Authorization headers
       }) {
    EXPECT_EQ(auth.Check("GET", "/api/v1/x", headers).decision, Decision::kUnauthorized)
        << (headers.empty() ? "<none>" : headers[0]);
  }
  // Open paths.
  EXPECT_EQ(auth.Check("GET", "/healthz", {}).decision, Decision::kAllow);
  EXPECT_EQ(auth.Check("GET", "/metrics", {}).decision, Decision::kUnauthorized);
  EXPECT_EQ(auth.Check("GET", "/healthz/", {}).decision, Decision::kUnauthorized);
  Authenticator open_metrics({MakeApiToken("ops", kReadWrite)}, /*public_metrics=*/true);
  EXPECT_EQ(open_metrics.Check("GET", "/metrics", {}).decision, Decision::kAllow);
  EXPECT_EQ(open_metrics.Check("GET", "/api/v1/endpoints", {}).decision, Decision::kUnauthorized);
}

TEST(AuthenticatorTest, KeepsDigestsNotSecrets) {
  const ApiToken token = MakeApiToken("ops", kReadWrite);
  EXPECT_EQ(token.digest, DigestToken(kReadWrite));
  EXPECT_NE(token.digest, DigestToken(kReadOnly));
  // SHA-256("abc"), FIPS 180-2 appendix B.1.
  const TokenDigest abc = DigestToken("abc");
  EXPECT_EQ(abc[0], 0xba);
  EXPECT_EQ(abc[1], 0x78);
  EXPECT_EQ(abc[31], 0xad);
}

TEST(AuthenticatorTest, ValidatesSecretsWithoutQuotingThem) {
  EXPECT_TRUE(ValidateTokenSecret("abcdefghijklmnop").ok());
  EXPECT_TRUE(ValidateTokenSecret("AZaz09-._~+/abcdef==").ok());
  for (const char* bad : {"", "short-secret", "has space inside0123", "quote\"d-0123456789",
                          "=====================", "padding=in-the-middle-0123"}) {
    absl::Status status = ValidateTokenSecret(bad);
    EXPECT_FALSE(status.ok()) << bad;
    if (*bad != '\0') {
      EXPECT_THAT(status.message(), Not(HasSubstr(bad)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The token file.

class TokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("token_file"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(TokenFileTest, GeneratedWithMode0600AndReused) {
  const std::string path = dir_ + "/api-token";
  absl::StatusOr<std::string> first = LoadOrCreateTokenFile(path);
  ASSERT_TRUE(first.ok()) << first.status();
  // 32 random bytes in hex.
  ASSERT_EQ(first->size(), 64u);
  EXPECT_EQ(first->find_first_not_of("0123456789abcdef"), std::string::npos);
  struct stat info {};
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0600);
  std::ifstream file(path);
  std::string content((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, *first + "\n");
  // Nothing left behind but the file itself.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_),
                          std::filesystem::directory_iterator()),
            1);

  absl::StatusOr<std::string> again = LoadOrCreateTokenFile(path);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *first);

  // A different directory gets a different token.
  absl::StatusOr<std::string> other = LoadOrCreateTokenFile(dir_ + "/other-token");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(*other, *first);
}

TEST_F(TokenFileTest, AnExistingFileIsReadNotReplaced) {
  const std::string path = dir_ + "/api-token";
  std::ofstream(path) << "  my-own-token-0123456789  \n\n";
  absl::StatusOr<std::string> token = LoadOrCreateTokenFile(path);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "my-own-token-0123456789");

  std::ofstream(path) << "short\n";
  token = LoadOrCreateTokenFile(path);
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.status().message(), HasSubstr(path));
  EXPECT_THAT(token.status().message(), HasSubstr("at least 16 characters"));
  EXPECT_THAT(token.status().message(), Not(HasSubstr("short")));
}

TEST_F(TokenFileTest, UnwritableDirectoryFailsWithThePath) {
  const std::string path = dir_ + "/missing/api-token";
  absl::StatusOr<std::string> token = LoadOrCreateTokenFile(path);
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.status().message(), HasSubstr(path));
}

// ---------------------------------------------------------------------------------------------
// The listener.

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("auth");
    store::Options options;
    options.path = dir_;
    options.map_size_bytes = uint64_t{64} << 20;
    options.durability = store::Durability::kAsync;
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<std::unique_ptr<lwm2m::EndpointConfigStore>> configs =
        lwm2m::EndpointConfigStore::Open(*store_);
    ASSERT_TRUE(configs.ok()) << configs.status();
    configs_ = *std::move(configs);
    registry_.AddCallbackFamily({
        .name = "lwm2md_test_total",
        .help = "Test.",
        .type = metrics::Type::kCounter,
        .collect =
            [](metrics::SampleWriter& out) {
              out.Add({{"shard", "0"}}, 1);
            },
    });
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Stop();
    server_.reset();
    configs_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartServer(bool public_metrics = false) {
    absl::StatusOr<std::unique_ptr<HttpServer>> server =
        HttpServer::Start({.address = "127.0.0.1",
                           .port = 0,
                           .tokens = {MakeApiToken("ops", kReadWrite, TokenAccess::kReadWrite),
                                      MakeApiToken("viewer", kReadOnly, TokenAccess::kReadOnly)},
                           .public_metrics = public_metrics},
                          {.metrics = &registry_,
                           .endpoints = configs_.get(),
                           .directory = &directory_,
                           .events = &bus_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    server_->SetReady(true);
  }

  httplib::Client Client(const char* token) {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(5);
    if (token != nullptr) client.set_bearer_token_auth(token);
    return client;
  }

  std::string Raw(const std::string& method, const std::string& path,
                  const std::string& authorization, const std::string& body = "") {
    return RawRequest(server_->port(), Request(method, path, authorization, body));
  }

  std::string dir_;
  metrics::Registry registry_;
  lwm2m::EndpointDirectory directory_;
  lwm2m::EventBus bus_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<lwm2m::EndpointConfigStore> configs_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(AuthTest, WithoutAValidTokenEveryApiRouteIs401) {
  StartServer();
  for (const char* token : {static_cast<const char*>(nullptr), "wrong-secret-0123456789"}) {
    for (const char* path : {"/api/v1/endpoints", "/api/v1/endpoints/dev1", "/api/v1/settings",
                             "/api/v1/events", "/metrics", "/api/v1/nothing", "/elsewhere"}) {
      httplib::Result result = Client(token).Get(path);
      ASSERT_TRUE(result) << path;
      EXPECT_EQ(result->status, 401) << path;
      EXPECT_EQ(result->body, kUnauthorizedBody) << path;
      EXPECT_EQ(result->get_header_value("WWW-Authenticate"), "Bearer realm=\"lwm2md\"");
      EXPECT_EQ(result->get_header_value("Content-Type"), kJson);
    }
    httplib::Result result =
        Client(token).Post("/api/v1/endpoints", R"({"name":"dev1","securityMode":"none"})", kJson);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, 401);
  }
  // Nothing was created by the refused POSTs.
  httplib::Result result = Client(kReadWrite).Get("/api/v1/endpoints/dev1");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
}

// A refusal is decided before routing, from the method and the token only: the same bytes
// whether the endpoint, or the route, exists or not.
TEST_F(AuthTest, RefusalsRevealNothingAboutWhatExists) {
  StartServer();
  httplib::Result created =
      Client(kReadWrite)
          .Post("/api/v1/endpoints", R"({"name":"dev1","securityMode":"none"})", kJson);
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string wrong = "Bearer wrong-secret-0123456789";
  const std::string read_only = std::string("Bearer ") + kReadOnly;

  for (const std::string& authorization : {std::string(), wrong}) {
    const std::string known = Raw("GET", "/api/v1/endpoints/dev1", authorization);
    EXPECT_THAT(known, StartsWith("HTTP/1.1 401 "));
    EXPECT_THAT(known, HasSubstr(kUnauthorizedBody));
    EXPECT_EQ(Raw("GET", "/api/v1/endpoints/unknown", authorization), known);
    EXPECT_EQ(Raw("GET", "/api/v1/no/such/route", authorization), known);
    const std::string known_delete = Raw("DELETE", "/api/v1/endpoints/dev1", authorization);
    EXPECT_THAT(known_delete, StartsWith("HTTP/1.1 401 "));
    EXPECT_EQ(Raw("DELETE", "/api/v1/endpoints/unknown", authorization), known_delete);
  }

  for (const char* method : {"POST", "PUT", "PATCH", "DELETE"}) {
    const std::string body = std::string(method) == "DELETE" ? "" : "{}";
    const std::string known = Raw(method, "/api/v1/endpoints/dev1", read_only, body);
    EXPECT_THAT(known, StartsWith("HTTP/1.1 403 ")) << method;
    EXPECT_THAT(known, HasSubstr(kForbiddenBody)) << method;
    EXPECT_EQ(Raw(method, "/api/v1/endpoints/unknown", read_only, body), known) << method;
    EXPECT_EQ(Raw(method, "/api/v1/no/such/route", read_only, body), known) << method;
  }
  // With a valid token the difference shows, as it should.
  EXPECT_THAT(Raw("GET", "/api/v1/endpoints/unknown", read_only), StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(Raw("GET", "/api/v1/endpoints/dev1", read_only), StartsWith("HTTP/1.1 200 "));
}

TEST_F(AuthTest, ReadOnlyTokensReadButNeverWrite) {
  StartServer();
  httplib::Result created =
      Client(kReadWrite)
          .Post("/api/v1/endpoints", R"({"name":"dev1","securityMode":"none"})", kJson);
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201) << created->body;

  httplib::Client viewer = Client(kReadOnly);
  std::vector<std::pair<std::string, httplib::Result>> writes;
  writes.emplace_back(
      "POST", viewer.Post("/api/v1/endpoints", R"({"name":"dev2","securityMode":"none"})", kJson));
  writes.emplace_back(
      "PUT", viewer.Put("/api/v1/endpoints/dev1", R"({"name":"dev1","tags":["x"]})", kJson));
  writes.emplace_back("PATCH", viewer.Patch("/api/v1/endpoints/dev1", R"({"tags":["x"]})", kJson));
  writes.emplace_back("DELETE", viewer.Delete("/api/v1/endpoints/dev1"));
  writes.emplace_back("PATCH settings",
                      viewer.Patch("/api/v1/settings", R"({"coapMaxRetransmit":2})", kJson));
  for (auto& [what, result] : writes) {
    ASSERT_TRUE(result) << what;
    EXPECT_EQ(result->status, 403) << what;
    EXPECT_EQ(result->body, kForbiddenBody) << what;
  }

  // The reads work, and show that none of the writes happened.
  httplib::Result result = viewer.Get("/api/v1/endpoints/dev1");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_THAT(result->body, HasSubstr(R"("tags":[])"));
  result = viewer.Get("/api/v1/endpoints/dev2");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
  result = viewer.Get("/api/v1/settings");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_THAT(result->body, HasSubstr(R"("coapMaxRetransmit":4)"));
  result = viewer.Head("/api/v1/endpoints");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  result = viewer.Get("/metrics");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_THAT(result->body, HasSubstr("lwm2md_test_total{shard=\"0\"} 1"));

  // The event stream: its headers arrive, then the client goes.
  int stream_status = 0;
  std::string stream_type;
  viewer.Get(
      "/api/v1/events",
      [&](const httplib::Response& response) {
        stream_status = response.status;
        stream_type = response.get_header_value("Content-Type");
        return false;
      },
      [](const char*, size_t) { return false; });
  EXPECT_EQ(stream_status, 200);
  EXPECT_THAT(stream_type, StartsWith("text/event-stream"));

  // The read-write token writes.
  result = Client(kReadWrite).Delete("/api/v1/endpoints/dev1");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 204);
}

TEST_F(AuthTest, HealthzNeedsNoToken) {
  StartServer();
  httplib::Result result = Client(nullptr).Get("/healthz");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, "ok\n");
  // Nor does a wrong one stand in the way.
  result = Client("wrong-secret-0123456789").Get("/healthz");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
}

TEST_F(AuthTest, PublicMetricsOpensMetricsOnly) {
  StartServer(/*public_metrics=*/true);
  httplib::Result result = Client(nullptr).Get("/metrics");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_THAT(result->body, HasSubstr("lwm2md_test_total{shard=\"0\"} 1"));
  result = Client(nullptr).Get("/api/v1/endpoints");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 401);
  result = Client(nullptr).Get("/api/v1/events");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 401);
}

// The access log names the token, never its secret.
TEST_F(AuthTest, LogsNameTheTokenNotTheSecret) {
  StartServer();
  SetLogLevel(LogLevel::kDebug);
  ::testing::internal::CaptureStderr();
  httplib::Result result = Client(kReadOnly).Get("/api/v1/settings");
  result = Client("wrong-secret-0123456789").Get("/api/v1/settings");
  server_->Stop();  // the logger runs after the response is sent: wait for it
  std::string log = ::testing::internal::GetCapturedStderr();
  SetLogLevel(LogLevel::kInfo);
  EXPECT_THAT(log, HasSubstr("http GET /api/v1/settings 200 viewer"));
  EXPECT_THAT(log, HasSubstr("http GET /api/v1/settings 401 -"));
  EXPECT_THAT(log, Not(HasSubstr(kReadOnly)));
  EXPECT_THAT(log, Not(HasSubstr("wrong-secret")));
}

// ---------------------------------------------------------------------------------------------
// HTTPS.

struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

KeyPtr NewKey() { return KeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

bool AddExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  if (extension == nullptr) return false;
  const bool added = X509_add_ext(cert, extension, -1) == 1;
  X509_EXTENSION_free(extension);
  return added;
}

// A self-signed certificate for 127.0.0.1 (subjectAltName, which is what clients check).
X509Ptr SelfSigned(EVP_PKEY* key) {
  X509Ptr cert(X509_new());
  if (cert == nullptr) return nullptr;
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("lwm2md test"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  if (!AddExtension(cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !AddExtension(cert.get(), NID_subject_alt_name, "IP:127.0.0.1") ||
      X509_sign(cert.get(), key, EVP_sha256()) == 0) {
    return nullptr;
  }
  return cert;
}

bool WritePem(const std::string& path, X509* cert, EVP_PKEY* key) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return false;
  const bool ok = cert != nullptr
                      ? PEM_write_X509(file, cert) == 1
                      : PEM_write_PrivateKey(file, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  return std::fclose(file) == 0 && ok;
}

class HttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("https");
    cert_ = dir_ + "/cert.pem";
    key_ = dir_ + "/key.pem";
    other_key_ = dir_ + "/other-key.pem";
    KeyPtr key = NewKey();
    KeyPtr other = NewKey();
    ASSERT_NE(key, nullptr);
    ASSERT_NE(other, nullptr);
    X509Ptr cert = SelfSigned(key.get());
    ASSERT_NE(cert, nullptr);
    ASSERT_TRUE(WritePem(cert_, cert.get(), nullptr));
    ASSERT_TRUE(WritePem(key_, nullptr, key.get()));
    ASSERT_TRUE(WritePem(other_key_, nullptr, other.get()));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& cert,
                                                    const std::string& key) {
    return HttpServer::Start({.address = "127.0.0.1",
                              .port = 0,
                              .tokens = {MakeApiToken("ops", kReadWrite)},
                              .tls_cert = cert,
                              .tls_key = key},
                             {.metrics = &registry_});
  }

  std::string dir_, cert_, key_, other_key_;
  metrics::Registry registry_;
};

TEST_F(HttpsTest, ServesHttpsToAClientThatVerifiesTheCertificate) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server = Start(cert_, key_);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE((*server)->tls());
  (*server)->SetReady(true);
  const uint16_t port = (*server)->port();

  httplib::SSLClient client("127.0.0.1", port);
  client.set_ca_cert_path(cert_.c_str());
  client.enable_server_certificate_verification(true);
  client.set_read_timeout(5);
  client.set_connection_timeout(5);
  httplib::Result result = client.Get("/healthz");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  result = client.Get("/metrics");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 401);
  EXPECT_EQ(result->body, kUnauthorizedBody);
  client.set_bearer_token_auth(kReadWrite);
  result = client.Get("/metrics");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);

  // A client that does not trust the certificate refuses the server.
  httplib::SSLClient untrusting("127.0.0.1", port);
  untrusting.set_ca_cert_path((dir_ + "/no-such-ca.pem").c_str());
  untrusting.enable_server_certificate_verification(true);
  untrusting.set_connection_timeout(5);
  untrusting.set_read_timeout(5);
  result = untrusting.Get("/healthz");
  EXPECT_FALSE(result);

  // Plain HTTP to the HTTPS port gets no HTTP answer.
  httplib::Client plain("127.0.0.1", port);
  plain.set_connection_timeout(5);
  plain.set_read_timeout(5);
  result = plain.Get("/healthz");
  EXPECT_FALSE(result) << result->status;
}

TEST_F(HttpsTest, BadFilesFailStartNamingTheKey) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server = Start(cert_, other_key_);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("http.tls_key"));
  EXPECT_THAT(server.status().message(), HasSubstr("does not match the certificate"));

  server = Start(dir_ + "/missing.pem", key_);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("http.tls_cert: cannot read \"" + dir_));
  EXPECT_THAT(server.status().message(), HasSubstr("No such file"));

  server = Start(cert_, dir_ + "/missing.pem");
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("http.tls_key: cannot read"));

  server = Start(key_, key_);  // a key where the certificate belongs
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("http.tls_cert"));
  EXPECT_THAT(server.status().message(), HasSubstr("holds no PEM certificate"));

  server = Start(cert_, cert_);  // and the other way round
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("http.tls_key"));
  EXPECT_THAT(server.status().message(), HasSubstr("holds no unencrypted PEM private key"));

  server = Start(cert_, "");
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("http.tls_key: required with http.tls_cert"));
}

}  // namespace
}  // namespace lwm2md::api
