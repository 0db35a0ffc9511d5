#include "metrics/registry.h"

#include <atomic>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/process_metrics.h"
#include "prometheus/counter.h"

namespace lwm2md::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

TEST(RegistryTest, CallbackCounterAppearsWithLabelsAndType) {
  Registry registry;
  registry.AddCallbackFamily({
      .name = "lwm2md_test_messages_total",
      .help = "Messages.",
      .type = Type::kCounter,
      .collect =
          [](SampleWriter& out) {
            out.Add({{"shard", "0"}, {"type", "CON"}, {"code", "0.01"}}, 17);
            out.Add({{"shard", "1"}, {"type", "ACK"}, {"code", "2.05"}}, 3);
          },
  });
  std::string text = registry.CollectText();
  EXPECT_THAT(text, HasSubstr("# HELP lwm2md_test_messages_total Messages.\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE lwm2md_test_messages_total counter\n"));
  EXPECT_THAT(text,
              HasSubstr("lwm2md_test_messages_total{shard=\"0\",type=\"CON\",code=\"0.01\"} 17\n"));
  EXPECT_THAT(text,
              HasSubstr("lwm2md_test_messages_total{shard=\"1\",type=\"ACK\",code=\"2.05\"} 3\n"));
}

TEST(RegistryTest, CallbackGaugeHasGaugeType) {
  Registry registry;
  registry.AddCallbackFamily({
      .name = "lwm2md_test_depth",
      .help = "Depth.",
      .type = Type::kGauge,
      .collect = [](SampleWriter& out) { out.Add({}, 4); },
  });
  std::string text = registry.CollectText();
  EXPECT_THAT(text, HasSubstr("# TYPE lwm2md_test_depth gauge\n"));
  EXPECT_THAT(text, HasSubstr("\nlwm2md_test_depth 4\n"));
}

TEST(RegistryTest, PerShardFamilyIsReadAtScrapeTime) {
  Registry registry;
  std::atomic<uint64_t> values[3] = {1, 2, 3};
  registry.AddCallbackFamily(PerShardFamily("lwm2md_test_packets_total", "Packets.", Type::kCounter,
                                            3,
                                            [&values](int shard) { return values[shard].load(); }));
  std::string text = registry.CollectText();
  EXPECT_THAT(text, HasSubstr("# TYPE lwm2md_test_packets_total counter\n"));
  EXPECT_THAT(text, HasSubstr("lwm2md_test_packets_total{shard=\"0\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("lwm2md_test_packets_total{shard=\"2\"} 3\n"));

  values[2] = 123456789012;
  text = registry.CollectText();
  EXPECT_THAT(text, HasSubstr("lwm2md_test_packets_total{shard=\"2\"} 123456789012\n"));
}

TEST(RegistryTest, CoreAndCallbackFamiliesAreServedTogether) {
  Registry registry;
  prometheus::BuildCounter()
      .Name("lwm2md_test_core_total")
      .Help("Core.")
      .Register(registry.core())
      .Add({{"kind", "a"}})
      .Increment(2);
  registry.AddCallbackFamily({.name = "lwm2md_test_callback_total",
                              .help = "Callback.",
                              .collect = [](SampleWriter& out) { out.Add({}, 1); }});
  std::vector<prometheus::MetricFamily> families = registry.Collect();
  ASSERT_EQ(families.size(), 2u);
  EXPECT_EQ(families[0].name, "lwm2md_test_core_total");
  EXPECT_EQ(families[1].name, "lwm2md_test_callback_total");
  EXPECT_EQ(families[1].type, prometheus::MetricType::Counter);
  EXPECT_THAT(registry.CollectText(), HasSubstr("lwm2md_test_core_total{kind=\"a\"} 2\n"));
}

TEST(RegistryTest, EmptyCallbackFamilyHasNoSamples) {
  Registry registry;
  registry.AddCallbackFamily(
      {.name = "lwm2md_test_nothing_total", .help = "Nothing.", .collect = [](SampleWriter&) {}});
  EXPECT_THAT(registry.CollectText(), Not(HasSubstr("\nlwm2md_test_nothing_total")));
}

TEST(RegistryDeathTest, DuplicateOrInvalidNamesAreWiringBugs) {
  Registry registry;
  CallbackFamily family{.name = "lwm2md_test_total", .help = "x", .collect = [](SampleWriter&) {}};
  registry.AddCallbackFamily(family);
  EXPECT_DEATH(registry.AddCallbackFamily(family), "CHECK failed");
  family.name = "not a name";
  EXPECT_DEATH(registry.AddCallbackFamily(family), "CHECK failed");
}

TEST(ProcessMetricsTest, ResidentMemoryStartTimeAndBuildInfo) {
  Registry registry;
  AddProcessMetrics(registry, "1.2.3");
  std::string text = registry.CollectText();
  EXPECT_THAT(text, HasSubstr("# TYPE lwm2md_process_resident_memory_bytes gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE lwm2md_process_start_time_seconds gauge\n"));
  EXPECT_THAT(text, HasSubstr("lwm2md_build_info{version=\"1.2.3\"} 1\n"));

  for (const prometheus::MetricFamily& family : registry.Collect()) {
    ASSERT_EQ(family.metric.size(), 1u) << family.name;
    if (family.name == "lwm2md_process_resident_memory_bytes") {
      EXPECT_GT(family.metric[0].gauge.value, 1 << 20);  // a gtest binary is over 1 MiB
    } else if (family.name == "lwm2md_process_start_time_seconds") {
      double now = static_cast<double>(time(nullptr));
      EXPECT_LE(family.metric[0].gauge.value, now + 1);
      EXPECT_GT(family.metric[0].gauge.value, now - 3600);
    }
  }
}

}  // namespace
}  // namespace lwm2md::metrics
