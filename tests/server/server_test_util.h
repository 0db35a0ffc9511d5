// What the server tests share: a real server in the test process with a scratch store,
// waiting for a submitted device call, and reading a metric the way a Prometheus scrape
// would.

#pragma once

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lwm2m/action.h"
#include "lwm2m/device_management.h"
#include "lwm2m/event_bus.h"
#include "server/config.h"
#include "server/server.h"

namespace lwm2md::server {

// A real server on loopback (2 shards, free ports, threads not pinned) whose store lives in
// a scratch directory of the test's own, with an event subscription from its start.
class InProcessServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           (std::string(::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name()) +
            "_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override {
    StopServer();
    std::filesystem::remove_all(dir_);
  }

  // overrides: "key=value" settings over the defaults above (unknown endpoints allowed, a
  // 64 MiB map).
  void StartServer(const std::vector<std::string>& overrides = {},
                   Server::FatalHandler on_fatal = nullptr) {
    std::vector<std::string> settings = {
        "shards=2", "coap.port=0", "coap.secure_port=0", "http.port=0",
        "coap.listen=[\"127.0.0.1\"]", "net.pin_threads=false",
        "store.path=" + (dir_ / "data").string(), "store.map_size_mb=64",
        "lwm2m.objects_dir=" + std::string(LWM2MD_SOURCE_DIR) + "/config/objects",
        "lwm2m.allow_unknown_endpoints=true"};
    settings.insert(settings.end(), overrides.begin(), overrides.end());
    absl::StatusOr<Config> config = ParseConfig("", "test", settings);
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(*config, std::move(on_fatal));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    events_ = server_->events().Subscribe({});
  }
  void StopServer() {
    events_.reset();
    server_.reset();
  }

  uint16_t port() const { return server_->coap_listeners()[0].local.port(); }
  uint16_t secure_port() const {
    for (const net::BoundListener& listener : server_->coap_listeners()) {
      if (listener.spec.dtls) return listener.local.port();
    }
    ADD_FAILURE() << "no coaps listener";
    return 0;
  }

  // The next event of the given type within wait.
  std::optional<lwm2m::Event> NextEvent(std::string_view type,
                                        absl::Duration wait = absl::Seconds(5)) {
    const absl::Time deadline = absl::Now() + wait;
    while (absl::Now() < deadline) {
      std::optional<lwm2m::Event> event = events_->Next(deadline - absl::Now());
      if (event && event->type == type) return event;
    }
    return std::nullopt;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<lwm2m::EventSubscription> events_;
};

// The outcome of one submitted call, waited for by the test thread.
struct CallResult {
  absl::Mutex mutex;
  std::optional<lwm2m::Submission> submission;
  std::optional<lwm2m::ActionOutcome> outcome;

  std::optional<lwm2m::ActionOutcome> Wait(absl::Duration wait) {
    absl::MutexLock lock(&mutex);
    auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mutex) { return outcome.has_value(); };
    mutex.AwaitWithTimeout(absl::Condition(&done), wait);
    return outcome;
  }
  std::optional<lwm2m::Submission> WaitAccepted(absl::Duration wait) {
    absl::MutexLock lock(&mutex);
    auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mutex) { return submission.has_value(); };
    mutex.AwaitWithTimeout(absl::Condition(&done), wait);
    return submission;
  }
};

// Submits a call as the REST API does (body: the API's JSON body).
inline std::shared_ptr<CallResult> SubmitAction(Server& server, lwm2m::ActionKind kind,
                                                const std::string& endpoint,
                                                const std::string& body) {
  absl::StatusOr<lwm2m::ActionRequest> request = lwm2m::ParseActionRequest(kind, endpoint, body);
  EXPECT_TRUE(request.ok()) << request.status();
  auto result = std::make_shared<CallResult>();
  if (!request.ok()) return result;
  server.management().Submit(
      *std::move(request),
      [result](lwm2m::Submission submission) {
        absl::MutexLock lock(&result->mutex);
        result->submission = std::move(submission);
      },
      [result](lwm2m::ActionOutcome outcome) {
        absl::MutexLock lock(&result->mutex);
        result->outcome = std::move(outcome);
      });
  return result;
}

// The sum over every series of a family (e.g. all shards) whose labels contain `labels`
// ("reason=\"idle\""; empty: all), from the /metrics text.
inline double MetricSum(Server& server, std::string_view family, std::string_view labels = "") {
  std::istringstream text(server.metrics().CollectText());
  double sum = 0;
  for (std::string line; std::getline(text, line);) {
    if (line.rfind(family, 0) != 0 || line.size() <= family.size()) continue;
    const char next = line[family.size()];
    if (next != '{' && next != ' ') continue;
    if (!labels.empty() && line.find(labels) == std::string::npos) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

}  // namespace lwm2md::server
