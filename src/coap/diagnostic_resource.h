#pragma once
// /diag: a resource for exercising the CoAP stack with real peers (enabled by
// coap.diagnostic_resource). GET returns the body (8 KiB of numbered text at start, so that a
// Block2 GET of more than 4 KiB works at once), PUT replaces it (Block1 up to
// max_body_size), and GET /diag?delay=N answers with a separate response N seconds later
// (RFC 7252 §5.2.2), which also gives a peer time to ping.

#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "coap/resource_tree.h"
#include "net/shard.h"

namespace lwm2md::coap {

// The body /diag serves, one for the whole process: a client's requests come from different
// source ports and so land on different shards, and a PUT on one must be what a GET on
// another returns. The lock is acceptable because /diag is a diagnostic, never on a
// device's path.
class DiagnosticBody {
 public:
  static constexpr size_t kInitialSize = 8192;
  static constexpr int kMaxDelaySeconds = 60;

  DiagnosticBody() : body_(Initial()) {}
  std::string Get() const {
    absl::MutexLock lock(&mutex_);
    return body_;
  }
  void Set(std::string_view body) {
    absl::MutexLock lock(&mutex_);
    body_.assign(body);
  }
  // 128 numbered lines of 64 bytes, so that a client can tell which block it holds.
  static std::string Initial();

 private:
  mutable absl::Mutex mutex_;
  std::string body_ ABSL_GUARDED_BY(mutex_);
};

inline constexpr std::string_view kDiagnosticPath = "/diag";

// Registers /diag in a shard's tree; io supplies the shard's timers for delayed answers.
absl::Status RegisterDiagnosticResource(ResourceTree& tree, net::ShardIo& io,
                                        std::shared_ptr<DiagnosticBody> body);

}  // namespace lwm2md::coap
