#include "metrics/registry.h"

#include <limits>

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "prometheus/check_names.h"
#include "prometheus/text_serializer.h"

namespace lwm2md::metrics {

void SampleWriter::Add(absl::Span<const Label> labels, double value) {
  prometheus::ClientMetric& metric = family_.metric.emplace_back();
  metric.label.reserve(labels.size());
  for (const Label& label : labels) {
    metric.label.push_back({std::string(label.name), std::string(label.value)});
  }
  if (family_.type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
}

void SampleWriter::AddHistogram(std::initializer_list<Label> labels,
                                absl::Span<const Bucket> buckets, uint64_t count, double sum) {
  prometheus::ClientMetric& metric = family_.metric.emplace_back();
  for (const Label& label : labels) {
    metric.label.push_back({std::string(label.name), std::string(label.value)});
  }
  for (const Bucket& bucket : buckets) {
    metric.histogram.bucket.push_back({bucket.cumulative_count, bucket.upper_bound});
  }
  metric.histogram.bucket.push_back({count, std::numeric_limits<double>::infinity()});
  metric.histogram.sample_count = count;
  metric.histogram.sample_sum = sum;
}

CallbackFamily PerShardFamily(std::string name, std::string help, Type type, int shards,
                              std::function<double(int shard)> value) {
  // Label values made once, not on every scrape.
  std::vector<std::string> shard_labels;
  for (int i = 0; i < shards; ++i) shard_labels.push_back(absl::StrCat(i));
  return CallbackFamily{
      .name = std::move(name),
      .help = std::move(help),
      .type = type,
      .collect =
          [shard_labels = std::move(shard_labels), value = std::move(value)](SampleWriter& out) {
            for (size_t i = 0; i < shard_labels.size(); ++i) {
              out.Add({{"shard", shard_labels[i]}}, value(static_cast<int>(i)));
            }
          },
  };
}

class Registry::CallbackCollectable : public prometheus::Collectable {
 public:
  explicit CallbackCollectable(CallbackFamily family) : family_(std::move(family)) {}

  const std::string& name() const { return family_.name; }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> result(1);
    prometheus::MetricFamily& family = result.front();
    family.name = family_.name;
    family.help = family_.help;
    switch (family_.type) {
      case Type::kCounter: family.type = prometheus::MetricType::Counter; break;
      case Type::kGauge: family.type = prometheus::MetricType::Gauge; break;
      case Type::kHistogram: family.type = prometheus::MetricType::Histogram; break;
    }
    SampleWriter writer(family);
    family_.collect(writer);
    return result;
  }

 private:
  const CallbackFamily family_;
};

Registry::Registry() : core_(std::make_shared<prometheus::Registry>()) {}

void Registry::AddCallbackFamily(CallbackFamily family) {
  LWM2MD_CHECK(prometheus::CheckMetricName(family.name));
  LWM2MD_CHECK(family.collect != nullptr);
  auto collectable = std::make_shared<const CallbackCollectable>(std::move(family));
  absl::MutexLock lock(&mutex_);
  for (const auto& existing : callbacks_) {
    LWM2MD_CHECK(existing->name() != collectable->name());
  }
  callbacks_.push_back(std::move(collectable));
}

std::vector<prometheus::MetricFamily> Registry::Collect() const {
  std::vector<std::shared_ptr<const CallbackCollectable>> callbacks;
  {
    // Callbacks run outside the lock: a slow one must not hold up registration.
    absl::MutexLock lock(&mutex_);
    callbacks = callbacks_;
  }
  std::vector<prometheus::MetricFamily> families = core_->Collect();
  for (const auto& callback : callbacks) {
    for (prometheus::MetricFamily& family : callback->Collect()) {
      families.push_back(std::move(family));
    }
  }
  return families;
}

std::string Registry::CollectText() const {
  return prometheus::TextSerializer().Serialize(Collect());
}

}  // namespace lwm2md::metrics
