// What several server tests share: waiting for a submitted device call, and reading a metric
// the way a Prometheus scrape would.

#pragma once

#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lwm2m/action.h"
#include "lwm2m/device_management.h"
#include "server/server.h"

namespace lwm2md::server {

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
