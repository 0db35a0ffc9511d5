#pragma once
// The process's metrics, as served on /metrics. Two kinds of families live side by side:
//  - families owned by the registry (prometheus-cpp counters, gauges, histograms, built
//    on core() with prometheus::BuildCounter() and friends), for control-plane values;
//  - callback families, whose samples are read at scrape time. Shard-owned probes
//    (net::NetMetrics, coap::CoapMetrics) are written by their shard thread only, so the
//    scraper reads them instead of the shards pushing into shared, locked counters.
// This layer knows no other layer: a callback family is a name, a help text, a type and a
// function that writes (labels, value) samples.
//
// Thread-safety: every method may be called from any thread. Callbacks run on the scraping
// thread (an HTTP worker) while their sources keep changing.

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace lwm2md::metrics {

// The Prometheus text exposition format that Collect() produces.
inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class Type { kCounter, kGauge, kHistogram };

struct Label {
  std::string_view name;
  std::string_view value;
};

// Receives the samples of one callback family during a scrape.
class SampleWriter {
 public:
  explicit SampleWriter(prometheus::MetricFamily& family) : family_(family) {}
  // One sample; labels in the order given. Each label set should be written once.
  void Add(std::initializer_list<Label> labels, double value) {
    Add(absl::MakeConstSpan(labels.begin(), labels.size()), value);
  }
  void Add(absl::Span<const Label> labels, double value);
  // A histogram sample (Type::kHistogram families): cumulative counts per upper bound in
  // increasing order (the +Inf bucket is added from count), the observation count and sum.
  struct Bucket {
    double upper_bound;
    uint64_t cumulative_count;
  };
  void AddHistogram(std::initializer_list<Label> labels, absl::Span<const Bucket> buckets,
                    uint64_t count, double sum);

 private:
  prometheus::MetricFamily& family_;
};

struct CallbackFamily {
  std::string name;  // with the _total suffix for counters, as Prometheus names them
  std::string help;
  Type type = Type::kCounter;
  // Called once per scrape on the scraping thread: it must only read what is safe to
  // read from another thread (atomics, immutable data) and must not block.
  std::function<void(SampleWriter&)> collect;
};

// A family with one sample per shard, labelled shard="0", shard="1"…; value(shard) is
// called at scrape time. The common shape of shard probes:
//   registry.AddCallbackFamily(metrics::PerShardFamily(
//       "lwm2md_coap_retransmissions_total", "CON messages retransmitted.",
//       metrics::Type::kCounter, shards,
//       [probes](int s) { return probes[s]->retransmissions.Value(); }));
CallbackFamily PerShardFamily(std::string name, std::string help, Type type, int shards,
                              std::function<double(int shard)> value);

class Registry {
 public:
  Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // For families whose values are set where they happen (prometheus::BuildGauge().
  // Name(…).Register(registry.core())).
  prometheus::Registry& core() { return *core_; }

  // Adds a family read at scrape time. Names must be valid and unique among callback
  // families; anything else is a wiring bug and fails a CHECK.
  void AddCallbackFamily(CallbackFamily family);

  // Every family, the core ones first, then callback families in the order they were added.
  std::vector<prometheus::MetricFamily> Collect() const;
  // Collect() in the text format (kTextContentType).
  std::string CollectText() const;

 private:
  class CallbackCollectable;

  std::shared_ptr<prometheus::Registry> core_;
  mutable absl::Mutex mutex_;
  std::vector<std::shared_ptr<const CallbackCollectable>> callbacks_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace lwm2md::metrics
