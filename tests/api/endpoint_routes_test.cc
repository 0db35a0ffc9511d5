// The REST routes for endpoints and settings, and the SSE event stream, over a real socket,
// a real store in a temporary directory, a directory and an event bus.

#include <httplib.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "api/http_server.h"
#include "api/routes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lwm2m/endpoint_config.h"
#include "lwm2m/endpoint_directory.h"
#include "lwm2m/event_bus.h"
#include "store/store.h"

namespace lwm2md::api {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kJson[] = "application/json";
constexpr char kToken[] = "endpoint-routes-test-token-0123456789";

// The value of a top-level string or number member, read naively: enough for asserting on
// our own compact output.
std::string Member(const std::string& json, const std::string& key) {
  const std::string needle = "\"" + key + "\":";
  size_t at = json.find(needle);
  if (at == std::string::npos) return "<absent>";
  at += needle.size();
  if (json[at] == '"') {
    size_t end = json.find('"', at + 1);
    return json.substr(at + 1, end - at - 1);
  }
  size_t end = json.find_first_of(",}", at);
  return json.substr(at, end - at);
}

// Reads a server-sent event stream on its own thread.
class SseClient {
 public:
  SseClient(uint16_t port, std::string path) : client_("127.0.0.1", port) {
    client_.set_bearer_token_auth(kToken);
    client_.set_read_timeout(10);
    thread_ = std::thread([this, path = std::move(path)] {
      httplib::Result result = client_.Get(
          path,
          [this](const httplib::Response& response) {
            status_ = response.status;
            content_type_ = response.get_header_value("Content-Type");
            content_encoding_ = response.get_header_value("Content-Encoding");
            headers_.Notify();
            return true;
          },
          [this](const char* data, size_t size) {
            absl::MutexLock lock(&mutex_);
            data_.append(data, size);
            return true;
          });
      clean_end_ = static_cast<bool>(result);
      if (!headers_.HasBeenNotified()) headers_.Notify();  // no response at all
      ended_.Notify();
    });
  }
  ~SseClient() {
    client_.stop();
    thread_.join();
  }

  bool WaitForHeaders() { return headers_.WaitForNotificationWithTimeout(absl::Seconds(5)); }
  bool WaitForEnd(absl::Duration timeout) { return ended_.WaitForNotificationWithTimeout(timeout); }
  // Waits until the stream holds at least `frames` complete frames; returns what it holds.
  std::string WaitForFrames(int frames, absl::Duration timeout = absl::Seconds(5)) {
    absl::MutexLock lock(&mutex_);
    auto enough = [this, frames]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      int count = 0;
      for (size_t at = data_.find("\n\n"); at != std::string::npos;
           at = data_.find("\n\n", at + 2)) {
        ++count;
      }
      return count >= frames;
    };
    mutex_.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return data_;
  }
  std::string data() {
    absl::MutexLock lock(&mutex_);
    return data_;
  }
  int status() const { return status_; }
  // Whether the response ended properly (the last chunk), rather than being cut off.
  bool clean_end() const { return clean_end_; }
  const std::string& content_type() const { return content_type_; }
  const std::string& content_encoding() const { return content_encoding_; }

 private:
  httplib::Client client_;
  absl::Notification headers_;
  absl::Notification ended_;
  std::atomic<int> status_{0};
  std::atomic<bool> clean_end_{false};
  std::string content_type_;
  std::string content_encoding_;
  absl::Mutex mutex_;
  std::string data_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

lwm2m::Event MakeEvent(std::string_view type, std::string_view endpoint, std::string payload) {
  lwm2m::Event event;
  event.type = std::string(type);
  event.endpoint = std::string(endpoint);
  event.time = absl::FromUnixMillis(1700000000123);  // 2023-11-14T22:13:20.123Z
  event.payload_json = std::move(payload);
  return event;
}

std::string Frame(uint64_t id, const std::string& type, const std::string& endpoint,
                  const std::string& payload) {
  return absl::StrCat("id: ", id, "\nevent: ", type, "\ndata: {\"type\":\"", type,
                      "\",\"endpoint\":\"", endpoint,
                      "\",\"time\":\"2023-11-14T22:13:20.123Z\",\"data\":", payload, "}\n\n");
}

class EndpointRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "endpoint_routes_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
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
    StartServer(32);
  }

  void StartServer(int workers) {
    absl::StatusOr<std::unique_ptr<HttpServer>> server =
        HttpServer::Start({.address = "127.0.0.1",
                           .port = 0,
                           .worker_threads = workers,
                           .tokens = {MakeApiToken("test", kToken)}},
                          {.endpoints = configs_.get(), .directory = &directory_, .events = &bus_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Stop();
    server_.reset();
    configs_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  httplib::Client Client() {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_bearer_token_auth(kToken);
    client.set_read_timeout(10);
    return client;
  }

  httplib::Result Post(const std::string& path, const std::string& body, const char* type = kJson) {
    return Client().Post(path.c_str(), body, type);
  }

  void CreateOrDie(const std::string& body) {
    httplib::Result result = Post("/api/v1/endpoints", body);
    ASSERT_TRUE(result);
    ASSERT_EQ(result->status, 201) << result->body;
  }

  std::string dir_;
  lwm2m::EndpointDirectory directory_;
  lwm2m::EventBus bus_;  // outlives the server, whose streams subscribe to it
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<lwm2m::EndpointConfigStore> configs_;
  std::unique_ptr<HttpServer> server_;
};

// ---------------------------------------------------------------------------------------------
// Endpoints.

TEST_F(EndpointRoutesTest, CreateGetDelete) {
  httplib::Result result = Post("/api/v1/endpoints", R"({"name":"dev1","securityMode":"psk",
      "pskIdentity":"dev1-id","pskKey":"00112233445566778899aabbccddeeff","tags":["a"]})");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 201) << result->body;
  EXPECT_EQ(result->get_header_value("Content-Type"), kJson);
  EXPECT_EQ(result->get_header_value("Location"), "/api/v1/endpoints/dev1");
  EXPECT_EQ(Member(result->body, "name"), "dev1");
  EXPECT_EQ(Member(result->body, "securityMode"), "psk");
  EXPECT_EQ(Member(result->body, "pskIdentity"), "dev1-id");
  EXPECT_EQ(Member(result->body, "pskKeySet"), "true");
  EXPECT_EQ(Member(result->body, "status"), "offline");
  EXPECT_THAT(result->body, Not(HasSubstr("00112233")));
  EXPECT_THAT(result->body, Not(HasSubstr("\"pskKey\"")));

  result = Client().Get("/api/v1/endpoints/dev1");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(Member(result->body, "pskIdentity"), "dev1-id");
  EXPECT_THAT(result->body, HasSubstr(R"("tags":["a"])"));
  EXPECT_THAT(result->body, Not(HasSubstr("00112233")));
  EXPECT_THAT(result->body, Not(HasSubstr("\"pskKey\"")));
  result = Client().Get("/api/v1/endpoints");
  ASSERT_TRUE(result);
  EXPECT_EQ(Member(result->body, "pskKeySet"), "true");
  EXPECT_THAT(result->body, Not(HasSubstr("00112233")));
  EXPECT_THAT(result->body, Not(HasSubstr("\"pskKey\"")));
  // The key is stored, though: DTLS needs it.
  EXPECT_EQ((*configs_->Get("dev1"))->psk_key.size(), 16u);

  result = Client().Delete("/api/v1/endpoints/dev1");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 204);
  EXPECT_EQ(result->body, "");

  result = Client().Get("/api/v1/endpoints/dev1");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
  EXPECT_EQ(result->body, R"({"error":"endpoint \"dev1\" not found"})");
  result = Client().Delete("/api/v1/endpoints/dev1");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
  EXPECT_EQ(result->body, R"({"error":"endpoint \"dev1\" not found"})");
}

TEST_F(EndpointRoutesTest, ErrorCodes) {
  // 400, naming the field.
  struct Case {
    std::string body;
    std::string error;
  };
  const Case cases[] = {
      {R"({"name":"a","colour":"red"})", R"({"error":"colour: unknown field"})"},
      {R"({"name":"a b"})", "name: byte 0x20 at offset 1"},
      {R"({"name":"a","securityMode":"psk","pskKey":"00"})",
       R"({"error":"pskIdentity: required with securityMode psk"})"},
      {R"({"name":"a","securityMode":"x509","certificateThumbprint":"abc"})",
       "certificateThumbprint: expected 64 hex digits"},
      {R"({"name":"a","missingTimeoutSeconds":31536001})",
       "missingTimeoutSeconds: must be between 0 and 31536000"},
      {"{", "body: invalid JSON"},
  };
  for (const Case& c : cases) {
    httplib::Result result = Post("/api/v1/endpoints", c.body);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, 400) << c.body;
    EXPECT_THAT(result->body, HasSubstr(c.error)) << c.body;
    EXPECT_EQ(result->get_header_value("Content-Type"), kJson);
  }

  // 415: a body that does not say it is JSON.
  httplib::Result result = Post("/api/v1/endpoints", R"({"name":"a"})", "text/plain");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 415);
  EXPECT_THAT(result->body, HasSubstr("Content-Type must be application/json"));
  // Parameters and case do not matter.
  result = Post("/api/v1/endpoints", R"({"name":"a"})", "Application/JSON; charset=utf-8");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 201) << result->body;

  // 409: the name, then the PSK identity.
  result = Post("/api/v1/endpoints", R"({"name":"a"})");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 409);
  EXPECT_EQ(result->body, R"({"error":"name: endpoint \"a\" already exists"})");
  CreateOrDie(R"({"name":"p1","securityMode":"psk","pskIdentity":"id","pskKey":"01"})");
  result = Post("/api/v1/endpoints",
                R"({"name":"p2","securityMode":"psk","pskIdentity":"id","pskKey":"01"})");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 409);
  EXPECT_EQ(result->body, R"({"error":"pskIdentity: \"id\" is already used by endpoint \"p1\""})");

  // 413: more than 64 KiB, refused from its Content-Length.
  std::string big = R"({"name":"big","tags":[")" + std::string(70000, 'x') + "\"]}";
  result = Post("/api/v1/endpoints", big);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 413);
  EXPECT_EQ(result->body, R"({"error":"body: larger than 65536 bytes"})");

  // 413 for a chunked body too, counted as it arrives.
  httplib::Client client = Client();
  result = client.Post(
      "/api/v1/endpoints",
      [&big](size_t offset, httplib::DataSink& sink) {
        if (offset < big.size()) {
          sink.write(big.data() + offset, std::min<size_t>(4096, big.size() - offset));
        } else {
          sink.done();
        }
        return true;
      },
      kJson);
  if (result) {  // the server may close before the client finished sending
    EXPECT_EQ(result->status, 413);
  }

  // The server still works after all that.
  result = Client().Get("/api/v1/endpoints/a");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(configs_->Count(), 2u);
}

TEST_F(EndpointRoutesTest, NamesInThePathArePercentDecoded) {
  CreateOrDie(R"({"name":"urn:imei:490154203237518"})");
  httplib::Result result = Client().Get("/api/v1/endpoints/urn%3Aimei%3A490154203237518");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(Member(result->body, "name"), "urn:imei:490154203237518");
  result = Client().Get("/api/v1/endpoints/urn:imei:490154203237518");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);

  CreateOrDie(R"({"name":"a%b+c"})");
  result = Client().Get("/api/v1/endpoints/a%25b+c");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200) << result->body;
  EXPECT_EQ(Member(result->body, "name"), "a%b+c");

  // An encoded slash cannot name an endpoint.
  result = Client().Get("/api/v1/endpoints/a%2Fb");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
}

TEST_F(EndpointRoutesTest, PresenceFromTheDirectory) {
  CreateOrDie(R"({"name":"dev1"})");
  lwm2m::DirectoryEntry entry;
  entry.address = *net::PeerAddress::Parse("1.2.3.4:5683");
  entry.location = "/rd/1";
  entry.presence = lwm2m::Presence::kConnected;
  entry.registered_at = absl::FromUnixMillis(1700000000000);
  entry.last_seen = absl::FromUnixMillis(1700000060500);
  entry.lifetime_seconds = 86400;
  entry.version = "1.1";
  entry.binding = "UQ";
  directory_.Put("dev1", entry);

  httplib::Result result = Client().Get("/api/v1/endpoints/dev1");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(Member(result->body, "status"), "connected");
  EXPECT_EQ(Member(result->body, "lastSeen"), "2023-11-14T22:14:20.500Z");
  EXPECT_EQ(Member(result->body, "address"), "1.2.3.4:5683");
  EXPECT_THAT(result->body,
              HasSubstr(R"("registration":{"lifetime":86400,"version":"1.1","binding":"UQ",)"
                        R"("registeredAt":"2023-11-14T22:13:20.000Z"})"));

  directory_.Modify("dev1",
                    [](lwm2m::DirectoryEntry& e) { e.presence = lwm2m::Presence::kMissing; });
  result = Client().Get("/api/v1/endpoints/dev1");
  ASSERT_TRUE(result);
  EXPECT_EQ(Member(result->body, "status"), "missing");

  directory_.Remove("dev1", "/rd/1");
  result = Client().Get("/api/v1/endpoints/dev1");
  ASSERT_TRUE(result);
  EXPECT_EQ(Member(result->body, "status"), "offline");
  EXPECT_EQ(Member(result->body, "lastSeen"), "<absent>");
  EXPECT_EQ(Member(result->body, "registration"), "<absent>");

  // The list shows presence too.
  directory_.Put("dev1", entry);
  result = Client().Get("/api/v1/endpoints");
  ASSERT_TRUE(result);
  EXPECT_EQ(Member(result->body, "status"), "connected");
}

TEST_F(EndpointRoutesTest, PagingReturnsEveryEndpointOnce) {
  for (int i = 0; i < 250; ++i) {
    lwm2m::EndpointConfig config;
    config.name = absl::StrCat("dev", i);
    ASSERT_TRUE(configs_->Create(config).ok());
  }
  std::multiset<std::string> seen;
  std::string after;
  int pages = 0;
  while (true) {
    std::string path = "/api/v1/endpoints?limit=100";
    if (!after.empty()) path += "&after=" + after;
    httplib::Result result = Client().Get(path);
    ASSERT_TRUE(result);
    ASSERT_EQ(result->status, 200) << result->body;
    ++pages;
    EXPECT_EQ(Member(result->body, "total"), "250");
    for (size_t at = result->body.find("{\"name\":\""); at != std::string::npos;
         at = result->body.find("{\"name\":\"", at + 1)) {
      seen.insert(Member(result->body.substr(at), "name"));
    }
    after = Member(result->body, "next");
    if (after == "<absent>") break;
  }
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 250u);
  for (int i = 0; i < 250; ++i) EXPECT_EQ(seen.count(absl::StrCat("dev", i)), 1u) << i;

  // Default page size is 100.
  httplib::Result result = Client().Get("/api/v1/endpoints");
  ASSERT_TRUE(result);
  EXPECT_EQ(Member(result->body, "next"), "dev188");  // the 100th name in byte order

  for (const char* bad : {"limit=0", "limit=1001", "limit=ten", "limit=-1", "after=a%20b"}) {
    result = Client().Get(absl::StrCat("/api/v1/endpoints?", bad));
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, 400) << bad;
    EXPECT_THAT(result->body, HasSubstr(std::string(bad).substr(0, std::string(bad).find('='))))
        << bad;
  }
}

TEST_F(EndpointRoutesTest, EmptyList) {
  httplib::Result result = Client().Get("/api/v1/endpoints");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, R"({"endpoints":[],"total":0})");
}

TEST_F(EndpointRoutesTest, PatchAndPut) {
  CreateOrDie(R"({"name":"dev1","securityMode":"psk","pskIdentity":"id1","pskKey":"0102",
                  "missingTimeoutSeconds":60,"tags":["a"]})");
  httplib::Client client = Client();
  httplib::Result result =
      client.Patch("/api/v1/endpoints/dev1", R"({"tags":["b"],"missingTimeoutSeconds":null})",
                   "application/merge-patch+json");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200) << result->body;
  EXPECT_THAT(result->body, HasSubstr(R"("tags":["b"])"));
  EXPECT_EQ(Member(result->body, "missingTimeoutSeconds"), "null");
  EXPECT_EQ(Member(result->body, "pskKeySet"), "true");
  EXPECT_EQ((*configs_->Get("dev1"))->psk_key, "\x01\x02");

  result = client.Patch("/api/v1/endpoints/dev1", R"({"name":"dev2"})", kJson);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 400);
  EXPECT_EQ(result->body, R"({"error":"name: cannot be changed"})");
  result = client.Patch("/api/v1/endpoints/dev1", R"({"pskKeySet":false})", kJson);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 400);
  EXPECT_EQ(result->body, R"({"error":"pskKeySet: read-only field"})");
  result = client.Patch("/api/v1/endpoints/nope", R"({"tags":[]})", kJson);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
  result = client.Patch("/api/v1/endpoints/dev1", R"({"tags":[]})", "text/plain");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 415);

  // PUT replaces everything but the name and the creation time...
  const std::string created_at = Member(client.Get("/api/v1/endpoints/dev1")->body, "createdAt");
  result = client.Put("/api/v1/endpoints/dev1", R"({"securityMode":"none"})", kJson);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200) << result->body;
  EXPECT_EQ(Member(result->body, "securityMode"), "none");
  EXPECT_EQ(Member(result->body, "pskKeySet"), "false");
  EXPECT_THAT(result->body, HasSubstr(R"("tags":[])"));
  EXPECT_EQ(Member(result->body, "createdAt"), created_at);
  EXPECT_FALSE(configs_->FindNameByPskIdentity("id1")->has_value());
  // ...creates when absent...
  result = client.Put("/api/v1/endpoints/dev3", R"({"name":"dev3"})", kJson);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 201) << result->body;
  EXPECT_EQ(result->get_header_value("Location"), "/api/v1/endpoints/dev3");
  // ...and insists on the path's name.
  result = client.Put("/api/v1/endpoints/dev3", R"({"name":"dev4"})", kJson);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 400);
  EXPECT_EQ(result->body, R"({"error":"name: differs from the name in the path"})");
}

// ---------------------------------------------------------------------------------------------
// Settings.

TEST_F(EndpointRoutesTest, Settings) {
  std::vector<lwm2m::ServiceSettings> pushed;
  configs_->OnSettingsChanged(
      [&pushed](const lwm2m::ServiceSettings& settings) { pushed.push_back(settings); });

  httplib::Client client = Client();
  httplib::Result result = client.Get("/api/v1/settings");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body,
            R"({"coapAckTimeoutMs":2000,"coapAckRandomFactor":1.5,"coapMaxRetransmit":4,)"
            R"("bootstrapEnabled":true,"defaultMissingTimeoutSeconds":0,)"
            R"("allowUnknownEndpoints":false})");

  result = client.Patch("/api/v1/settings", R"({"coapAckTimeoutMs":3000})", kJson);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200) << result->body;
  EXPECT_EQ(Member(result->body, "coapAckTimeoutMs"), "3000");
  EXPECT_EQ(Member(result->body, "coapMaxRetransmit"), "4");
  ASSERT_EQ(pushed.size(), 1u);
  EXPECT_EQ(pushed[0].coap_ack_timeout_ms, 3000u);

  // PUT needs every setting.
  result = client.Put("/api/v1/settings", R"({"coapAckTimeoutMs":3000})", kJson);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 400);
  EXPECT_THAT(result->body, HasSubstr("coapAckRandomFactor: required"));
  result = client.Put("/api/v1/settings",
                      R"({"coapAckTimeoutMs":1000,"coapAckRandomFactor":2,"coapMaxRetransmit":2,)"
                      R"("bootstrapEnabled":false,"defaultMissingTimeoutSeconds":600,)"
                      R"("allowUnknownEndpoints":true})",
                      kJson);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200) << result->body;
  EXPECT_EQ(configs_->settings().default_missing_timeout_seconds, 600u);
  EXPECT_TRUE(configs_->settings().allow_unknown_endpoints);
  EXPECT_EQ(pushed.size(), 2u);

  for (const char* bad : {R"({"coapAckTimeoutMs":99})", R"({"coapAckRandomFactor":0.5})",
                          R"({"coapMaxRetransmit":21})", R"({"speed":1})"}) {
    result = client.Patch("/api/v1/settings", bad, kJson);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, 400) << bad;
  }
  result = client.Patch("/api/v1/settings", R"({"speed":1})", kJson);
  EXPECT_EQ(result->body, R"({"error":"speed: unknown field"})");
  result = client.Patch("/api/v1/settings", "{}", "text/plain");
  EXPECT_EQ(result->status, 415);
  EXPECT_EQ(pushed.size(), 2u);
  EXPECT_EQ(configs_->settings().coap_ack_timeout_ms, 1000u);
}

// ---------------------------------------------------------------------------------------------
// Events.

TEST_F(EndpointRoutesTest, EventStreamFiltersByEndpointAndType) {
  SseClient by_endpoint(server_->port(), "/api/v1/events?endpoint=dev1");
  SseClient by_type(server_->port(), "/api/v1/events?type=lwm2m.register,lwm2m.deregister");
  SseClient both(server_->port(), "/api/v1/events?endpoint=dev2&type=lwm2m.update");
  ASSERT_TRUE(by_endpoint.WaitForHeaders());
  ASSERT_TRUE(by_type.WaitForHeaders());
  ASSERT_TRUE(both.WaitForHeaders());
  EXPECT_EQ(by_endpoint.status(), 200);
  EXPECT_EQ(by_endpoint.content_type(), "text/event-stream");
  // httplib's client asks for gzip; a compressed stream would be buffered, so it must not be.
  EXPECT_EQ(by_endpoint.content_encoding(), "");

  std::thread publisher([this] {
    bus_.Publish(MakeEvent(lwm2m::event_type::kRegister, "dev1", R"({"binding":"U"})"));  // 1
    bus_.Publish(MakeEvent(lwm2m::event_type::kUpdate, "dev2", R"({"binding":"UQ"})"));   // 2
    bus_.Publish(MakeEvent(lwm2m::event_type::kUpdate, "dev1", ""));                      // 3
    bus_.Publish(MakeEvent(lwm2m::event_type::kDeregister, "dev2", "{\n}"));              // 4
  });
  publisher.join();

  EXPECT_EQ(by_endpoint.WaitForFrames(2), Frame(1, "lwm2m.register", "dev1", R"({"binding":"U"})") +
                                              Frame(3, "lwm2m.update", "dev1", "null"));
  EXPECT_EQ(by_type.WaitForFrames(2), Frame(1, "lwm2m.register", "dev1", R"({"binding":"U"})") +
                                          Frame(4, "lwm2m.deregister", "dev2", "{ }"));
  EXPECT_EQ(both.WaitForFrames(1), Frame(2, "lwm2m.update", "dev2", R"({"binding":"UQ"})"));
}

TEST_F(EndpointRoutesTest, EventStreamRejectsBadFilters) {
  httplib::Result result = Client().Get("/api/v1/events?type=lwm2m.register,lwm2m.nope");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 400);
  EXPECT_EQ(result->body, R"({"error":"type: unknown event type \"lwm2m.nope\""})");
  result = Client().Get("/api/v1/events?endpoint=a%2Fb");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 400);
  EXPECT_THAT(result->body, HasSubstr("endpoint: not an endpoint name"));
}

TEST_F(EndpointRoutesTest, StopEndsOpenStreamsPromptly) {
  SseClient stream(server_->port(), "/api/v1/events");
  ASSERT_TRUE(stream.WaitForHeaders());
  const absl::Time start = absl::Now();
  server_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_TRUE(stream.WaitForEnd(absl::Seconds(3)));
  EXPECT_TRUE(stream.clean_end());
}

TEST_F(EndpointRoutesTest, BusCloseEndsStreams) {
  SseClient stream(server_->port(), "/api/v1/events");
  ASSERT_TRUE(stream.WaitForHeaders());
  bus_.Publish(MakeEvent(lwm2m::event_type::kData, "d", "{}"));
  bus_.Close();
  EXPECT_TRUE(stream.WaitForEnd(absl::Seconds(3)));
  EXPECT_TRUE(stream.clean_end());
  EXPECT_EQ(stream.data(), Frame(1, "lwm2m.data", "d", "{}"));
}

TEST_F(EndpointRoutesTest, StreamsAreBoundedBelowTheWorkerCount) {
  server_->Stop();
  StartServer(6);  // at most two streams
  SseClient first(server_->port(), "/api/v1/events");
  SseClient second(server_->port(), "/api/v1/events");
  ASSERT_TRUE(first.WaitForHeaders());
  ASSERT_TRUE(second.WaitForHeaders());
  SseClient third(server_->port(), "/api/v1/events");
  ASSERT_TRUE(third.WaitForHeaders());
  EXPECT_EQ(third.status(), 503);
  ASSERT_TRUE(third.WaitForEnd(absl::Seconds(5)));
  EXPECT_EQ(third.data(), R"({"error":"too many open event streams"})");
  // REST requests still have workers.
  httplib::Result result = Client().Get("/api/v1/settings");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
}

// The stream body without HTTP: overflow and keepalive.
TEST(EventStreamTest, DroppedEventsAreReportedAfterTheQueuedOnes) {
  lwm2m::EventBus bus;
  EventStream stream(bus.Subscribe({}, /*capacity=*/2), absl::Hours(1));
  for (int i = 0; i < 5; ++i) bus.Publish(MakeEvent(lwm2m::event_type::kData, "d", "{}"));
  std::optional<std::string> chunk = stream.Poll(absl::Milliseconds(100));
  ASSERT_TRUE(chunk.has_value());
  EXPECT_EQ(*chunk, Frame(1, "lwm2m.data", "d", "{}") + Frame(2, "lwm2m.data", "d", "{}") +
                        "event: dropped\ndata: {\"count\":3}\n\n");
  bus.Publish(MakeEvent(lwm2m::event_type::kData, "d", "{}"));
  EXPECT_EQ(stream.Poll(absl::Milliseconds(100)), Frame(6, "lwm2m.data", "d", "{}"));
}

TEST(EventStreamTest, KeepaliveAfterSilence) {
  lwm2m::EventBus bus;
  EventStream stream(bus.Subscribe({}), absl::Milliseconds(50));
  EXPECT_EQ(stream.Poll(absl::Milliseconds(10)), "");
  absl::SleepFor(absl::Milliseconds(60));
  EXPECT_EQ(stream.Poll(absl::Milliseconds(10)), ": keepalive\n\n");
  EXPECT_EQ(stream.Poll(absl::Milliseconds(10)), "");
}

TEST(EventStreamTest, EndsWhenTheBusCloses) {
  lwm2m::EventBus bus;
  EventStream stream(bus.Subscribe({}), absl::Hours(1));
  bus.Publish(MakeEvent(lwm2m::event_type::kData, "d", "{}"));
  bus.Close();
  EXPECT_EQ(stream.Poll(absl::Seconds(1)), Frame(1, "lwm2m.data", "d", "{}"));
  const absl::Time start = absl::Now();
  EXPECT_EQ(stream.Poll(absl::Seconds(1)), std::nullopt);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
}

}  // namespace
}  // namespace lwm2md::api
