#include "server/server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config.h"

namespace lwm2md::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A scratch store.path per test, removed afterwards.
class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::filesystem::path(::testing::TempDir()) /
             ("server_test_" + std::to_string(getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(store_);
  }
  void TearDown() override { std::filesystem::remove_all(store_); }

  Config TestConfig() {
    absl::StatusOr<Config> config =
        ParseConfig("", "test",
                    {"shards=2", "coap.port=0", "coap.secure_port=0", "http.port=0", "coap.listen=[\"127.0.0.1\"]",
                     "net.pin_threads=false", "store.path=" + (store_ / "data").string(),
                     "lwm2m.objects_dir=" + std::string(LWM2MD_SOURCE_DIR) + "/config/objects"});
    EXPECT_TRUE(config.ok()) << config.status();
    return *config;
  }

  std::filesystem::path store_;
};

void SendDatagram(uint16_t port, const std::string& bytes) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)),
            static_cast<ssize_t>(bytes.size()));
  close(fd);
}

// Sum over shards of one family's samples in a /metrics body.
double SumOf(const std::string& body, const std::string& family) {
  std::regex sample("^" + family + "\\{[^}]*\\} ([0-9.e+]+)$", std::regex::multiline);
  double sum = 0;
  for (std::sregex_iterator it(body.begin(), body.end(), sample), end; it != end; ++it) {
    sum += std::stod((*it)[1]);
  }
  return sum;
}

TEST_F(ServerTest, StartsServesMetricsAndStops) {
  ::testing::internal::CaptureStderr();
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(TestConfig());
  std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE(std::filesystem::is_directory(store_ / "data"));

  // CoAP, then CoAP over DTLS.
  ASSERT_EQ((*server)->coap_listeners().size(), 2u);
  EXPECT_EQ((*server)->coap_listeners()[1].spec.purpose, "coaps");
  const uint16_t coap_port = (*server)->coap_listeners()[0].local.port();
  const uint16_t http_port = (*server)->http_port();
  ASSERT_NE(coap_port, 0);
  ASSERT_NE(http_port, 0);
  EXPECT_THAT(log, HasSubstr("listening coap 127.0.0.1:" + std::to_string(coap_port) + "\n"));
  EXPECT_THAT(log, HasSubstr("listening http 127.0.0.1:" + std::to_string(http_port) + "\n"));
  EXPECT_THAT(log, HasSubstr("lwm2md ready: 2 shards, backend "));

  // No token configured: one was generated into the data directory, logged by path only.
  const std::string token_path = (store_ / "data" / "api-token").string();
  std::ifstream token_file(token_path);
  std::string token;
  std::getline(token_file, token);
  ASSERT_EQ(token.size(), 64u);
  EXPECT_THAT(log, HasSubstr("API token in " + token_path + "\n"));
  EXPECT_THAT(log, Not(HasSubstr(token)));

  httplib::Client client("127.0.0.1", http_port);
  httplib::Result health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  httplib::Result refused = client.Get("/metrics");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  client.set_bearer_token_auth(token);

  constexpr int kDatagrams = 20;
  for (int i = 0; i < kDatagrams; ++i) SendDatagram(coap_port, std::string("\x40\x00\x12\x34", 4));
  std::string body;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    httplib::Result metrics = client.Get("/metrics");
    ASSERT_TRUE(metrics);
    body = metrics->body;
    if (SumOf(body, "lwm2md_net_received_packets_total") >= kDatagrams &&
        SumOf(body, "lwm2md_net_received_bytes_total") >= 4 * kDatagrams) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(SumOf(body, "lwm2md_net_received_packets_total"), kDatagrams) << body;
  EXPECT_EQ(SumOf(body, "lwm2md_net_received_bytes_total"), 4 * kDatagrams) << body;

  for (const char* family :
       {"lwm2md_net_received_packets_total", "lwm2md_net_received_bytes_total",
        "lwm2md_net_sent_packets_total", "lwm2md_net_sent_bytes_total",
        "lwm2md_net_send_errors_total", "lwm2md_net_receive_truncated_total",
        "lwm2md_net_receive_buffers_exhausted_total", "lwm2md_shard_inbox_posted_total",
        "lwm2md_shard_loop_iterations_total"}) {
    EXPECT_THAT(body, HasSubstr(std::string("# TYPE ") + family + " counter\n"));
    EXPECT_THAT(body, HasSubstr(std::string(family) + "{shard=\"0\"} "));
    EXPECT_THAT(body, HasSubstr(std::string(family) + "{shard=\"1\"} "));
  }
  EXPECT_THAT(body, HasSubstr("# TYPE lwm2md_shard_inbox_depth gauge\n"));
  EXPECT_THAT(body, HasSubstr("lwm2md_shard_inbox_depth{shard=\"1\"} "));
  EXPECT_THAT(body, HasSubstr("lwm2md_build_info{version=\"" LWM2MD_VERSION "\"} 1\n"));
  EXPECT_THAT(body, HasSubstr("lwm2md_process_resident_memory_bytes "));
  EXPECT_THAT(body, HasSubstr("lwm2md_process_start_time_seconds "));

  (*server)->Stop();
  (*server)->Stop();
  httplib::Client after("127.0.0.1", http_port);
  after.set_connection_timeout(1);
  EXPECT_FALSE(after.Get("/healthz"));
}

TEST_F(ServerTest, ConfiguredTokensReplaceTheGeneratedOne) {
  Config config = TestConfig();
  config.http.tokens = {
      api::MakeApiToken("viewer", "viewer-secret-0123456789", api::TokenAccess::kReadOnly)};
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(config);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_FALSE(std::filesystem::exists(store_ / "data" / "api-token"));
  httplib::Client client("127.0.0.1", (*server)->http_port());
  client.set_bearer_token_auth("viewer-secret-0123456789");
  httplib::Result result = client.Get("/metrics");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  result = client.Post("/api/v1/endpoints", R"({"name":"dev1"})", "application/json");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 403);
}

TEST_F(ServerTest, BusyHttpPortFailsStart) {
  absl::StatusOr<std::unique_ptr<Server>> first = Server::Start(TestConfig());
  ASSERT_TRUE(first.ok()) << first.status();
  Config config = TestConfig();
  config.http.port = (*first)->http_port();
  config.store.path = (store_ / "other").string();
  absl::StatusOr<std::unique_ptr<Server>> second = Server::Start(config);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("HTTP"));
  EXPECT_THAT(second.status().message(), HasSubstr(std::to_string(config.http.port)));
}

TEST_F(ServerTest, SecondServerOnTheSameDataDirectoryIsRefused) {
  absl::StatusOr<std::unique_ptr<Server>> first = Server::Start(TestConfig());
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<Server>> second = Server::Start(TestConfig());
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
}

TEST_F(ServerTest, UncreatableStorePathFailsStart) {
  std::filesystem::create_directories(store_);
  std::ofstream(store_ / "file") << "not a directory";
  Config config = TestConfig();
  config.store.path = (store_ / "file" / "data").string();
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("store.path"));
}

}  // namespace
}  // namespace lwm2md::server
