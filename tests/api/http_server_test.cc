#include "api/http_server.h"

#include <httplib.h>

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/registry.h"

namespace lwm2md::api {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kToken[] = "http-server-test-token-0123456789";

HttpServerOptions Options(std::string address = "127.0.0.1", uint16_t port = 0) {
  return {.address = std::move(address), .port = port, .tokens = {MakeApiToken("test", kToken)}};
}

httplib::Client ClientWithToken(const std::string& host, uint16_t port) {
  httplib::Client client(host, port);
  client.set_bearer_token_auth(kToken);
  return client;
}

std::unique_ptr<HttpServer> StartOrDie(const HttpServerOptions& options,
                                       const HttpServices& services) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, services);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.AddCallbackFamily({
        .name = "lwm2md_test_received_total",
        .help = "Test datagrams.",
        .type = metrics::Type::kCounter,
        .collect =
            [this](metrics::SampleWriter& out) {
              out.Add({{"shard", "0"}}, ++scrapes_);
            },
    });
    server_ = StartOrDie(Options(), {.metrics = &registry_});
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(server_->port(), 0);
  }

  httplib::Client Client() { return ClientWithToken("127.0.0.1", server_->port()); }

  metrics::Registry registry_;
  std::atomic<int> scrapes_{0};
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, MetricsOverARealSocket) {
  httplib::Result result = Client().Get("/metrics");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(result->body, HasSubstr("# TYPE lwm2md_test_received_total counter\n"));
  EXPECT_THAT(result->body, HasSubstr("lwm2md_test_received_total{shard=\"0\"} 1\n"));

  // Each scrape reads the callback afresh.
  result = Client().Get("/metrics");
  ASSERT_TRUE(result);
  EXPECT_THAT(result->body, HasSubstr("lwm2md_test_received_total{shard=\"0\"} 2\n"));
}

TEST_F(HttpServerTest, HealthzFollowsReadiness) {
  httplib::Result result = Client().Get("/healthz");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 503);
  server_->SetReady(true);
  result = Client().Get("/healthz");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, "ok\n");
}

TEST_F(HttpServerTest, UnknownPathIsNotFound) {
  httplib::Result result = Client().Get("/api/v1/nothing");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
}

TEST_F(HttpServerTest, ListenAddressNamesTheBoundPort) {
  EXPECT_EQ(server_->ListenAddress(), "127.0.0.1:" + std::to_string(server_->port()));
}

TEST_F(HttpServerTest, BusyPortFailsWithAStatus) {
  absl::StatusOr<std::unique_ptr<HttpServer>> second =
      HttpServer::Start(Options("127.0.0.1", server_->port()), {});
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("cannot listen for HTTP on 127.0.0.1 port " +
                                                   std::to_string(server_->port())));
}

TEST_F(HttpServerTest, StopClosesTheListenerAndIsIdempotent) {
  const uint16_t port = server_->port();
  // A keep-alive connection open across Stop must not hold it up for long.
  httplib::Client keep_alive = ClientWithToken("127.0.0.1", port);
  keep_alive.set_keep_alive(true);
  ASSERT_TRUE(keep_alive.Get("/metrics"));
  server_->Stop();
  server_->Stop();
  httplib::Client client = ClientWithToken("127.0.0.1", port);
  client.set_connection_timeout(1);
  EXPECT_FALSE(client.Get("/metrics"));
}

TEST(HttpServerStandaloneTest, StopRightAfterStart) {
  for (int i = 0; i < 20; ++i) {
    std::unique_ptr<HttpServer> server = StartOrDie(Options(), {});
    ASSERT_NE(server, nullptr);
    server->Stop();
  }
}

TEST(HttpServerStandaloneTest, WithoutRegistryMetricsIsNotFound) {
  std::unique_ptr<HttpServer> server = StartOrDie(Options(), {});
  ASSERT_NE(server, nullptr);
  httplib::Result result = ClientWithToken("127.0.0.1", server->port()).Get("/metrics");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
}

TEST(HttpServerStandaloneTest, Ipv6Loopback) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(Options("::1"), {});
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback: " << server.status();
  EXPECT_THAT((*server)->ListenAddress(), StartsWith("[::1]:"));
  httplib::Result result = httplib::Client("::1", (*server)->port()).Get("/healthz");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 503);
}

// The API is never served to everyone by mistake: a listener needs at least one token.
TEST(HttpServerStandaloneTest, StartWithoutTokensFails) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start({.address = "127.0.0.1", .port = 0}, {});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("without API tokens"));
}

}  // namespace
}  // namespace lwm2md::api
