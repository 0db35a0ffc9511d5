// Billable-event counters over a real store in a temporary directory: what is counted and
// billed, what the counters table holds after a flush, restarts, day boundaries, failed
// writes, and exactness while shards count and the flusher writes at the same time.

#include "lwm2m/billing.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lwm2m/event_bus.h"
#include "lwm2m/registration_params.h"
#include "store/store.h"

namespace lwm2md::lwm2m {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::CivilDay kDay(2026, 11, 24);

absl::Time At(absl::CivilSecond when) { return absl::FromCivil(when, absl::UTCTimeZone()); }

// Noon of kDay: the default event time of these tests.
const absl::Time kNoon = At(absl::CivilSecond(2026, 11, 24, 12, 0, 0));

Event MakeEvent(std::string_view type, std::string_view endpoint, absl::Time time = kNoon) {
  Event event;
  event.type = std::string(type);
  event.endpoint = std::string(endpoint);
  event.time = time;
  return event;
}

KindCounts Counts(std::initializer_list<std::pair<EventKind, uint64_t>> values) {
  KindCounts counts{};
  for (const auto& [kind, n] : values) counts[static_cast<int>(kind)] = n;
  return counts;
}

// A clock the test moves by hand.
class FakeClock {
 public:
  explicit FakeClock(absl::Time now) : now_(now) {}
  absl::Time Now() const {
    absl::MutexLock lock(&mutex_);
    return now_;
  }
  void Set(absl::Time now) {
    absl::MutexLock lock(&mutex_);
    now_ = now;
  }

 private:
  mutable absl::Mutex mutex_;
  absl::Time now_;
};

class BillingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "billing_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    OpenStore();
  }
  void TearDown() override {
    counters_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void OpenStore(size_t max_queued_bytes = size_t{256} << 20) {
    store::Options options;
    options.path = dir_;
    options.map_size_bytes = uint64_t{64} << 20;
    options.durability = store::Durability::kAsync;
    options.max_queued_bytes = max_queued_bytes;
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  std::unique_ptr<BillingCounters> MakeCounters(bool endpoint_metrics = true,
                                                absl::Duration flush_interval = absl::Seconds(5)) {
    return std::make_unique<BillingCounters>(
        BillingOptions{.store = store_.get(),
                       .flush_interval = flush_interval,
                       .endpoint_metrics = endpoint_metrics,
                       .clock = [this] { return clock_.Now(); }});
  }

  // The stored value of a row, or "" when absent.
  std::string Stored(absl::CivilDay day, std::string_view endpoint) {
    absl::StatusOr<std::optional<std::string>> value =
        store_->Get(store::Table::kCounters, CounterKey(day, endpoint));
    EXPECT_TRUE(value.ok()) << value.status();
    return value.ok() && value->has_value() ? **value : "";
  }

  // One day's counts through Read (zeros when the day has none).
  KindCounts ReadDay(const BillingCounters& counters, std::string_view endpoint,
                     absl::CivilDay day = kDay) {
    absl::StatusOr<std::vector<DayCounts>> days = counters.Read(endpoint, day, day);
    EXPECT_TRUE(days.ok()) << days.status();
    if (!days.ok() || days->empty()) return KindCounts{};
    EXPECT_EQ(days->size(), 1u);
    EXPECT_EQ(days->front().day, day);
    return days->front().counts;
  }

  std::string dir_;
  FakeClock clock_{kNoon};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<BillingCounters> counters_;
};

TEST(EventKindTest, BillableKindsAreTheReferencesList) {
  // Billable: register, update, bootstrap, data, FOTA complete. Not billable: async result,
  // error, deregister, missing; and lwm2md's back.
  std::vector<std::string> billable, not_billable;
  for (const EventKindInfo& info : kEventKinds) {
    (info.billable ? billable : not_billable).emplace_back(info.name);
    ASSERT_EQ(EventKindOf(info.event_type), info.kind) << info.event_type;
    EXPECT_EQ(&KindInfo(info.kind), &info);
  }
  EXPECT_THAT(billable, ElementsAre("register", "update", "bootstrap", "data", "fotaComplete"));
  EXPECT_THAT(not_billable, ElementsAre("asyncResult", "error", "deregister", "missing", "back"));
  EXPECT_EQ(EventKindOf("lwm2m.registered"), std::nullopt);
  EXPECT_EQ(EventKindOf(""), std::nullopt);
}

TEST(CountsJsonTest, CompactRoundTripAndDamagedValuesRefused) {
  const KindCounts counts =
      Counts({{EventKind::kRegister, 3}, {EventKind::kData, 10}, {EventKind::kBack, 1}});
  EXPECT_EQ(CountsToJson(counts), R"({"register":3,"data":10,"back":1})");
  EXPECT_EQ(CountsToJson(KindCounts{}), "{}");
  absl::StatusOr<KindCounts> parsed = CountsFromJson(CountsToJson(counts));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, counts);
  EXPECT_EQ(BillableSum(counts), 13u);
  for (const char* bad : {"", "[]", "{\"register\":-1}", "{\"register\":\"3\"}",
                          "{\"registered\":3}", "{\"register\":1.5}"}) {
    EXPECT_TRUE(absl::IsDataLoss(CountsFromJson(bad).status())) << bad;
  }
  EXPECT_EQ(CounterKey(kDay, "dev1"), "day/2026-11-24/dev1");
  EXPECT_EQ(CounterKey(kDay, ""), "day/2026-11-24/");
}

TEST_F(BillingTest, TapCountsEveryEventWithoutSubscribers) {
  counters_ = MakeCounters();
  EventBus bus;
  bus.SetTap(counters_->Tap());
  ASSERT_FALSE(bus.HasSubscribers());
  for (int i = 0; i < 3; ++i) bus.Publish(MakeEvent(event_type::kRegister, "dev1"));
  bus.Publish(MakeEvent(event_type::kUpdate, "dev1"));
  bus.Publish(MakeEvent(event_type::kData, "dev2"));
  bus.Publish(MakeEvent(event_type::kDeregister, "dev2"));
  bus.Publish(MakeEvent(event_type::kBack, "dev2"));
  bus.Publish(MakeEvent("lwm2m.unknown", "dev2"));  // not a counted kind
  // A subscriber does not change what is counted, and still gets the event.
  std::unique_ptr<EventSubscription> subscription = bus.Subscribe({});
  bus.Publish(MakeEvent(event_type::kError, "dev1"));
  std::optional<Event> seen = subscription->Next(absl::Seconds(1));
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->type, event_type::kError);

  EXPECT_EQ(ReadDay(*counters_, "dev1"),
            Counts({{EventKind::kRegister, 3}, {EventKind::kUpdate, 1}, {EventKind::kError, 1}}));
  EXPECT_EQ(ReadDay(*counters_, "dev2"),
            Counts({{EventKind::kData, 1}, {EventKind::kDeregister, 1}, {EventKind::kBack, 1}}));
  const KindCounts totals = ReadDay(*counters_, "");
  EXPECT_EQ(totals, Counts({{EventKind::kRegister, 3},
                            {EventKind::kUpdate, 1},
                            {EventKind::kData, 1},
                            {EventKind::kError, 1},
                            {EventKind::kDeregister, 1},
                            {EventKind::kBack, 1}}));
  EXPECT_EQ(BillableSum(totals), 5u);
  EXPECT_EQ(counters_->CountedSinceStart(), totals);

  // Per-endpoint metrics hold the billable kinds only.
  std::vector<std::string> series;
  counters_->VisitEndpointCounts([&](std::string_view endpoint, const KindCounts& counts) {
    for (const EventKindInfo& info : kEventKinds) {
      if (counts[static_cast<int>(info.kind)] != 0) {
        series.push_back(absl::StrCat(base::Absl(endpoint), " ", base::Absl(info.name), " ",
                                      counts[static_cast<int>(info.kind)]));
      }
    }
  });
  EXPECT_THAT(series,
              ::testing::UnorderedElementsAre("dev1 register 3", "dev1 update 1", "dev2 data 1"));
  // Nothing is in the store before a flush.
  EXPECT_EQ(Stored(kDay, "dev1"), "");
}

TEST_F(BillingTest, EndpointCountsStayExactPast32Bits) {
  counters_ = MakeCounters();
  const std::string long_name(kMaxEndpointNameLength, 'e');
  counters_->AddSinceStartForTest(long_name, EventKind::kData, 0xFFFFFFFEu);
  counters_->Count(MakeEvent(event_type::kData, long_name));  // reaches 2^32 - 1
  counters_->Count(MakeEvent(event_type::kRegister, long_name));
  counters_->Count(MakeEvent(event_type::kData, "other"));
  auto visit = [&] {
    std::map<std::string, KindCounts> seen;
    counters_->VisitEndpointCounts([&](std::string_view endpoint, const KindCounts& counts) {
      EXPECT_TRUE(seen.emplace(std::string(endpoint), counts).second) << endpoint;
    });
    return seen;
  };
  auto seen = visit();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[long_name][static_cast<int>(EventKind::kData)], 0xFFFFFFFFu);
  EXPECT_EQ(seen[long_name][static_cast<int>(EventKind::kRegister)], 1u);
  // Past 32 bits: the endpoint's counts move to 64-bit ones, every kind kept.
  counters_->Count(MakeEvent(event_type::kData, long_name));
  counters_->AddSinceStartForTest(long_name, EventKind::kData, uint64_t{1} << 40);
  counters_->Count(MakeEvent(event_type::kRegister, long_name));
  seen = visit();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[long_name][static_cast<int>(EventKind::kData)],
            (uint64_t{1} << 32) + (uint64_t{1} << 40));
  EXPECT_EQ(seen[long_name][static_cast<int>(EventKind::kRegister)], 2u);
  EXPECT_EQ(seen["other"][static_cast<int>(EventKind::kData)], 1u);
}

TEST_F(BillingTest, EndpointMetricsOffKeepsNoPerEndpointSeries) {
  counters_ = MakeCounters(/*endpoint_metrics=*/false);
  counters_->Count(MakeEvent(event_type::kRegister, "dev1"));
  int visited = 0;
  counters_->VisitEndpointCounts([&](std::string_view, const KindCounts&) { ++visited; });
  EXPECT_EQ(visited, 0);
  // Daily rows are kept all the same.
  EXPECT_EQ(ReadDay(*counters_, "dev1"), Counts({{EventKind::kRegister, 1}}));
}

TEST_F(BillingTest, FlushWritesDayRowsAndTotals) {
  counters_ = MakeCounters();
  for (int i = 0; i < 3; ++i) counters_->Count(MakeEvent(event_type::kRegister, "dev1"));
  for (int i = 0; i < 10; ++i) counters_->Count(MakeEvent(event_type::kData, "dev1"));
  counters_->Count(MakeEvent(event_type::kMissing, "urn:imei:490154203237518"));
  EXPECT_EQ(counters_->pending_rows(), 3u);  // two endpoints and the day's totals
  ASSERT_TRUE(counters_->Flush().ok());
  EXPECT_EQ(counters_->pending_rows(), 0u);
  EXPECT_EQ(Stored(kDay, "dev1"), R"({"register":3,"data":10})");
  EXPECT_EQ(Stored(kDay, "urn:imei:490154203237518"), R"({"missing":1})");
  EXPECT_EQ(Stored(kDay, ""), R"({"register":3,"data":10,"missing":1})");
  // Reads are the same before and after: stored plus nothing pending.
  EXPECT_EQ(ReadDay(*counters_, "dev1"),
            Counts({{EventKind::kRegister, 3}, {EventKind::kData, 10}}));

  // A second flush adds to what is stored (read, add, put).
  counters_->Count(MakeEvent(event_type::kRegister, "dev1"));
  counters_->Count(MakeEvent(event_type::kFotaComplete, "dev1"));
  EXPECT_EQ(
      ReadDay(*counters_, "dev1"),
      Counts({{EventKind::kRegister, 4}, {EventKind::kData, 10}, {EventKind::kFotaComplete, 1}}));
  ASSERT_TRUE(counters_->Flush().ok());
  EXPECT_EQ(Stored(kDay, "dev1"), R"({"register":4,"data":10,"fotaComplete":1})");
  EXPECT_EQ(Stored(kDay, ""), R"({"register":4,"data":10,"fotaComplete":1,"missing":1})");
  // Nothing pending: a flush writes nothing.
  ASSERT_TRUE(counters_->Flush().ok());
  EXPECT_EQ(Stored(kDay, "dev1"), R"({"register":4,"data":10,"fotaComplete":1})");
}

TEST_F(BillingTest, StopFlushesAndARestartAddsToTheStoredDay) {
  counters_ = MakeCounters();
  for (int i = 0; i < 5; ++i) counters_->Count(MakeEvent(event_type::kUpdate, "dev1"));
  counters_->Stop();  // the final flush
  counters_.reset();
  store_.reset();
  OpenStore();

  counters_ = MakeCounters();
  EXPECT_EQ(ReadDay(*counters_, "dev1"), Counts({{EventKind::kUpdate, 5}}));
  counters_->Count(MakeEvent(event_type::kUpdate, "dev1"));
  counters_->Count(MakeEvent(event_type::kRegister, "dev1"));
  // Stored and unflushed counts merge in reads...
  EXPECT_EQ(ReadDay(*counters_, "dev1"),
            Counts({{EventKind::kRegister, 1}, {EventKind::kUpdate, 6}}));
  EXPECT_EQ(ReadDay(*counters_, ""), Counts({{EventKind::kRegister, 1}, {EventKind::kUpdate, 6}}));
  // ...and in the store. Metrics start again from zero with the process.
  EXPECT_EQ(counters_->CountedSinceStart(),
            Counts({{EventKind::kRegister, 1}, {EventKind::kUpdate, 1}}));
  ASSERT_TRUE(counters_->Flush().ok());
  EXPECT_EQ(Stored(kDay, "dev1"), R"({"register":1,"update":6})");
  EXPECT_EQ(Stored(kDay, ""), R"({"register":1,"update":6})");
}

TEST_F(BillingTest, DaysAreUtcDaysOfTheEventTime) {
  counters_ = MakeCounters();
  const absl::CivilDay next = kDay + 1;
  counters_->Count(
      MakeEvent(event_type::kRegister, "dev1",
                At(absl::CivilSecond(kDay)) + absl::Hours(24) - absl::Milliseconds(1)));
  counters_->Count(MakeEvent(event_type::kUpdate, "dev1", At(absl::CivilSecond(next))));
  counters_->Count(MakeEvent(event_type::kUpdate, "dev1", At(absl::CivilSecond(next))));
  ASSERT_TRUE(counters_->Flush().ok());
  EXPECT_EQ(Stored(kDay, "dev1"), R"({"register":1})");
  EXPECT_EQ(Stored(next, "dev1"), R"({"update":2})");
  EXPECT_EQ(Stored(next, ""), R"({"update":2})");

  // A range reads both days in order; a day without events is left out.
  absl::StatusOr<std::vector<DayCounts>> days = counters_->Read("dev1", kDay - 3, next + 3);
  ASSERT_TRUE(days.ok()) << days.status();
  ASSERT_EQ(days->size(), 2u);
  EXPECT_EQ((*days)[0].day, kDay);
  EXPECT_EQ((*days)[1].day, next);
  EXPECT_EQ((*days)[1].counts, Counts({{EventKind::kUpdate, 2}}));
}

TEST_F(BillingTest, ClockDecidesTodayAndEventsWithoutATime) {
  counters_ = MakeCounters();
  EXPECT_EQ(counters_->Today(), kDay);
  // Through the bus, an event without a time is stamped with the real time; a direct Count
  // of such an event takes the counters' clock.
  counters_->Count(MakeEvent(event_type::kRegister, "dev1", absl::Time()));
  clock_.Set(At(absl::CivilSecond(kDay + 1)) + absl::Seconds(1));  // past midnight
  EXPECT_EQ(counters_->Today(), kDay + 1);
  counters_->Count(MakeEvent(event_type::kRegister, "dev1", absl::Time()));
  counters_->Count(MakeEvent(event_type::kRegister, "dev1", absl::Time()));
  EXPECT_EQ(ReadDay(*counters_, "dev1", kDay), Counts({{EventKind::kRegister, 1}}));
  EXPECT_EQ(ReadDay(*counters_, "dev1", kDay + 1), Counts({{EventKind::kRegister, 2}}));
  EXPECT_EQ(counters_->pending_rows(), 4u);  // dev1 and totals, on two days
  ASSERT_TRUE(counters_->Flush().ok());
  EXPECT_EQ(Stored(kDay, "dev1"), R"({"register":1})");
  EXPECT_EQ(Stored(kDay + 1, "dev1"), R"({"register":2})");
}

TEST_F(BillingTest, FailedWriteKeepsTheDeltaForTheNextFlush) {
  // A store whose queue holds 4 KiB: with the writer paused and the queue filled by another
  // batch, the counters' batch is refused (kResourceExhausted) at once.
  store_.reset();
  OpenStore(/*max_queued_bytes=*/4096);
  counters_ = MakeCounters();
  for (int i = 0; i < 7; ++i) counters_->Count(MakeEvent(event_type::kData, "dev1"));
  counters_->Count(MakeEvent(event_type::kRegister, "dev2"));

  store_->PauseWriterForTest(true);
  store::WriteBatch filler;
  filler.Put(store::Table::kSettings, "filler", std::string(4000, 'x'));
  std::atomic<bool> filler_done{false};
  store_->Submit(std::move(filler), [&](absl::Status) { filler_done = true; });

  const absl::Status failed = counters_->Flush();
  EXPECT_TRUE(absl::IsResourceExhausted(failed)) << failed;
  EXPECT_EQ(counters_->pending_rows(), 3u);
  // Reads stay exact meanwhile, and counting goes on.
  counters_->Count(MakeEvent(event_type::kData, "dev1"));
  EXPECT_EQ(ReadDay(*counters_, "dev1"), Counts({{EventKind::kData, 8}}));

  store_->PauseWriterForTest(false);
  ASSERT_TRUE(store_->Flush().ok());
  EXPECT_TRUE(filler_done);
  ASSERT_TRUE(counters_->Flush().ok());
  EXPECT_EQ(counters_->pending_rows(), 0u);
  EXPECT_EQ(Stored(kDay, "dev1"), R"({"data":8})");
  EXPECT_EQ(Stored(kDay, "dev2"), R"({"register":1})");
  EXPECT_EQ(Stored(kDay, ""), R"({"register":1,"data":8})");
}

TEST_F(BillingTest, DamagedRowFailsAloneAndIsKept) {
  store::WriteBatch damage;
  damage.Put(store::Table::kCounters, CounterKey(kDay, "dev1"), "not json");
  ASSERT_TRUE(store_->Write(std::move(damage)).ok());
  counters_ = MakeCounters();
  counters_->Count(MakeEvent(event_type::kRegister, "dev1"));
  counters_->Count(MakeEvent(event_type::kRegister, "dev2"));

  const absl::Status failed = counters_->Flush();
  EXPECT_TRUE(absl::IsDataLoss(failed)) << failed;
  EXPECT_THAT(failed.message(), HasSubstr("not json"));
  // dev2 and the totals are written; dev1's count waits, and reading dev1 says why.
  EXPECT_EQ(Stored(kDay, "dev2"), R"({"register":1})");
  EXPECT_EQ(Stored(kDay, ""), R"({"register":2})");
  EXPECT_EQ(counters_->pending_rows(), 1u);
  EXPECT_TRUE(absl::IsDataLoss(counters_->Read("dev1", kDay, kDay).status()));
}

TEST_F(BillingTest, ManyEndpointsAreWrittenInSeveralBatches) {
  counters_ = MakeCounters();
  constexpr int kEndpoints = 5000;  // more than one batch's worth of puts
  for (int i = 0; i < kEndpoints; ++i) {
    counters_->Count(MakeEvent(event_type::kRegister, absl::StrCat("dev", i)));
  }
  EXPECT_EQ(counters_->pending_rows(), kEndpoints + 1u);
  ASSERT_TRUE(counters_->Flush().ok());
  EXPECT_EQ(counters_->pending_rows(), 0u);
  absl::StatusOr<uint64_t> rows = store_->Count(store::Table::kCounters);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(*rows, kEndpoints + 1u);
  EXPECT_EQ(Stored(kDay, ""), absl::StrCat(R"({"register":)", kEndpoints, "}"));
  EXPECT_EQ(Stored(kDay, "dev0"), R"({"register":1})");
  EXPECT_EQ(Stored(kDay, absl::StrCat("dev", kEndpoints - 1)), R"({"register":1})");
}

TEST_F(BillingTest, EventsWithoutAStorableEndpointCountInTheTotalsOnly) {
  counters_ = MakeCounters();
  counters_->Count(MakeEvent(event_type::kData, ""));
  counters_->Count(MakeEvent(event_type::kData, std::string(300, 'e')));
  counters_->Count(MakeEvent(event_type::kData, "*"));  // a legal name, not the totals
  ASSERT_TRUE(counters_->Flush().ok());
  EXPECT_EQ(Stored(kDay, ""), R"({"data":3})");
  EXPECT_EQ(Stored(kDay, "*"), R"({"data":1})");
  absl::StatusOr<uint64_t> rows = store_->Count(store::Table::kCounters);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(*rows, 2u);
}

// Shard threads count while the flusher writes every millisecond and a reader polls: every
// event is counted exactly once, reads never go backwards nor see more than was counted, and
// after Stop the store holds everything.
TEST_F(BillingTest, ExactUnderConcurrentCountingFlushingAndReading) {
  counters_ = MakeCounters(/*endpoint_metrics=*/true, absl::Milliseconds(1));
  EventBus bus;
  bus.SetTap(counters_->Tap());
  counters_->Start();
  constexpr int kThreads = 4;
  constexpr int kEventsPerThread = 3000;
  std::atomic<uint64_t> published{0};
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    uint64_t last = 0;
    // Bounded: stops when the publishers are done, or after 60 s at most.
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (!done.load() && absl::Now() < deadline) {
      absl::StatusOr<std::vector<DayCounts>> days = counters_->Read("", kDay, kDay);
      ASSERT_TRUE(days.ok()) << days.status();
      const uint64_t seen =
          days->empty() ? 0 : days->front().counts[static_cast<int>(EventKind::kUpdate)];
      // Publishers bump `published` before publishing: a count read twice (in the store and
      // still in memory) would exceed it, a count lost in flight would make reads go back.
      EXPECT_LE(seen, published.load());
      EXPECT_GE(seen, last);
      last = seen;
      reads.fetch_add(1);
    }
  });
  std::vector<std::thread> shards;
  for (int t = 0; t < kThreads; ++t) {
    shards.emplace_back([&, t] {
      for (int i = 0; i < kEventsPerThread; ++i) {
        published.fetch_add(1);
        bus.Publish(MakeEvent(event_type::kUpdate, absl::StrCat("dev", t, "-", i % 50)));
      }
    });
  }
  for (std::thread& shard : shards) shard.join();
  done = true;
  reader.join();
  counters_->Stop();
  EXPECT_GT(reads.load(), 0);

  constexpr uint64_t kTotal = uint64_t{kThreads} * kEventsPerThread;
  EXPECT_EQ(counters_->pending_rows(), 0u);
  EXPECT_EQ(Stored(kDay, ""), absl::StrCat(R"({"update":)", kTotal, "}"));
  uint64_t per_endpoint = 0;
  ASSERT_TRUE(store_
                  ->Scan(store::Table::kCounters, "day/2026-11-24/dev", "",
                         [&](std::string_view, std::string_view value) {
                           absl::StatusOr<KindCounts> counts = CountsFromJson(value);
                           EXPECT_TRUE(counts.ok());
                           if (counts.ok()) per_endpoint += BillableSum(*counts);
                           return true;
                         })
                  .ok());
  EXPECT_EQ(per_endpoint, kTotal);
  EXPECT_EQ(Stored(kDay, "dev3-49"), absl::StrCat(R"({"update":)", kEventsPerThread / 50, "}"));
}

}  // namespace
}  // namespace lwm2md::lwm2m
