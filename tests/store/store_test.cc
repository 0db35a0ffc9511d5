#include "store/store.h"

#include <lmdb.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lwm2md::store {
namespace {

using ::testing::HasSubstr;

// A fresh directory under the build tree per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::string name = testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    path_ = std::filesystem::path(LWM2MD_BINARY_DIR) / "store-test-tmp" /
            absl::StrFormat("%s-%d-%d", name, getpid(), counter.fetch_add(1));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string Sub(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Collects callback statuses in submission slots and waits for all of them.
class Completions {
 public:
  explicit Completions(size_t n) : statuses_(n) {}
  WriteCallback Slot(size_t i) {
    return [this, i](absl::Status status) {
      absl::MutexLock lock(&mu_);
      EXPECT_FALSE(statuses_[i].has_value()) << "callback " << i << " ran twice";
      statuses_[i] = std::move(status);
      order_.push_back(i);
    };
  }
  void WaitAll() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Completions* self) { return self->order_.size() == self->statuses_.size(); }, this));
  }
  absl::Status status(size_t i) {
    absl::MutexLock lock(&mu_);
    return statuses_[i].value_or(absl::UnknownError("callback not called"));
  }
  bool called(size_t i) {
    absl::MutexLock lock(&mu_);
    return statuses_[i].has_value();
  }
  std::vector<size_t> order() {
    absl::MutexLock lock(&mu_);
    return order_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::optional<absl::Status>> statuses_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> order_ ABSL_GUARDED_BY(mu_);
};

Options MakeOptions(const std::string& path, Durability durability = Durability::kSync) {
  Options options;
  options.path = path;
  options.durability = durability;
  options.map_size_bytes = uint64_t{64} << 20;
  return options;
}

std::unique_ptr<Store> OpenOrDie(const Options& options) {
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

WriteBatch PutBatch(Table table, std::string_view key, std::string_view value) {
  WriteBatch batch;
  batch.Put(table, key, value);
  return batch;
}

std::optional<std::string> GetOrDie(const Store& store, Table table, std::string_view key) {
  absl::StatusOr<std::optional<std::string>> value = store.Get(table, key);
  EXPECT_TRUE(value.ok()) << value.status();
  return value.ok() ? *value : std::nullopt;
}

uint64_t CountOrDie(const Store& store, Table table) {
  absl::StatusOr<uint64_t> count = store.Count(table);
  EXPECT_TRUE(count.ok()) << count.status();
  return count.ok() ? *count : 0;
}

std::vector<std::string> ScanKeys(const Store& store, Table table, std::string_view prefix,
                                  std::string_view start_after, size_t limit = SIZE_MAX) {
  std::vector<std::string> keys;
  absl::Status status =
      store.Scan(table, prefix, start_after, [&](std::string_view key, std::string_view) {
        keys.emplace_back(key);
        return keys.size() < limit;
      });
  EXPECT_TRUE(status.ok()) << status;
  return keys;
}

// Waits (bounded) for a condition set from the writer thread after a callback returned.
template <typename Predicate>
bool Eventually(Predicate predicate) {
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!predicate()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

TEST(StoreTest, PutGetDeleteCount) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenOrDie(MakeOptions(dir.Sub("data")));
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(std::filesystem::is_directory(dir.Sub("data")));

  WriteBatch batch;
  batch.Put(Table::kEndpoints, "ep1", "config-1");
  batch.Put(Table::kEndpoints, "ep2", "config-2");
  batch.Put(Table::kRegistrations, "ep1", "reg-1");
  ASSERT_TRUE(store->Write(std::move(batch)).ok());

  EXPECT_EQ(GetOrDie(*store, Table::kEndpoints, "ep1"), "config-1");
  EXPECT_EQ(GetOrDie(*store, Table::kEndpoints, "ep2"), "config-2");
  EXPECT_EQ(GetOrDie(*store, Table::kRegistrations, "ep1"), "reg-1");
  EXPECT_EQ(GetOrDie(*store, Table::kRegistrations, "ep2"), std::nullopt);  // tables are apart
  EXPECT_EQ(CountOrDie(*store, Table::kEndpoints), 2u);
  EXPECT_EQ(CountOrDie(*store, Table::kMeta), 1u);  // the schema marker

  ASSERT_TRUE(store->Write(PutBatch(Table::kEndpoints, "ep1", "config-1b")).ok());
  EXPECT_EQ(GetOrDie(*store, Table::kEndpoints, "ep1"), "config-1b");

  WriteBatch deletes;
  deletes.Delete(Table::kEndpoints, "ep1");
  deletes.Delete(Table::kEndpoints, "absent");  // not an error
  ASSERT_TRUE(store->Write(std::move(deletes)).ok());
  EXPECT_EQ(GetOrDie(*store, Table::kEndpoints, "ep1"), std::nullopt);
  EXPECT_EQ(CountOrDie(*store, Table::kEndpoints), 1u);

  // Values are bytes: empty and binary values round-trip.
  const std::string binary("\0\x01\xff", 3);
  WriteBatch bytes;
  bytes.Put(Table::kCounters, "empty", "");
  bytes.Put(Table::kCounters, binary, binary);
  ASSERT_TRUE(store->Write(std::move(bytes)).ok());
  EXPECT_EQ(GetOrDie(*store, Table::kCounters, "empty"), "");
  EXPECT_EQ(GetOrDie(*store, Table::kCounters, binary), binary);
  EXPECT_TRUE(store->health().ok());
}

TEST(StoreTest, OperationsInABatchApplyInOrder) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenOrDie(MakeOptions(dir.path()));
  ASSERT_NE(store, nullptr);
  WriteBatch batch;
  batch.Put(Table::kSettings, "a", "1");
  batch.Delete(Table::kSettings, "a");
  batch.Delete(Table::kSettings, "b");
  batch.Put(Table::kSettings, "b", "2");
  batch.Put(Table::kSettings, "c", "3");
  batch.Put(Table::kSettings, "c", "4");
  ASSERT_TRUE(store->Write(std::move(batch)).ok());
  EXPECT_EQ(GetOrDie(*store, Table::kSettings, "a"), std::nullopt);
  EXPECT_EQ(GetOrDie(*store, Table::kSettings, "b"), "2");
  EXPECT_EQ(GetOrDie(*store, Table::kSettings, "c"), "4");
}

TEST(StoreTest, EmptyBatchCompletes) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenOrDie(MakeOptions(dir.path()));
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Write(WriteBatch()).ok());
}

TEST(StoreTest, DeletePrefixRemovesOnlyThatPrefix) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenOrDie(MakeOptions(dir.path()));
  ASSERT_NE(store, nullptr);
  // lastKnown keys: endpoint \0 path. "ep1\0" must not match "ep10\0...".
  const std::string ep1(std::string_view("ep1\0", 4));
  const std::string ep10(std::string_view("ep10\0", 5));
  WriteBatch batch;
  for (int i = 0; i < 300; ++i) {
    batch.Put(Table::kLastKnown, ep1 + absl::StrFormat("/3/0/%d", i), "v");
    batch.Put(Table::kLastKnown, ep10 + absl::StrFormat("/3/0/%d", i), "v");
  }
  batch.Put(Table::kLastKnown, "ep0", "v");
  batch.Put(Table::kLastKnown, "ep1", "v");  // the bare name is not under "ep1\0"
  batch.Put(Table::kLastKnown, "ep2", "v");
  ASSERT_TRUE(store->Write(std::move(batch)).ok());
  ASSERT_EQ(CountOrDie(*store, Table::kLastKnown), 603u);

  WriteBatch del;
  del.DeletePrefix(Table::kLastKnown, ep1);
  del.DeletePrefix(Table::kLastKnown, "nothing-here");
  ASSERT_TRUE(store->Write(std::move(del)).ok());
  EXPECT_EQ(CountOrDie(*store, Table::kLastKnown), 303u);
  EXPECT_TRUE(ScanKeys(*store, Table::kLastKnown, ep1, "").empty());
  EXPECT_EQ(ScanKeys(*store, Table::kLastKnown, ep10, "").size(), 300u);
  EXPECT_EQ(GetOrDie(*store, Table::kLastKnown, "ep1"), "v");

  // A prefix delete followed by a put of the same prefix in one batch keeps the new key.
  WriteBatch replace;
  replace.DeletePrefix(Table::kLastKnown, ep10);
  replace.Put(Table::kLastKnown, ep10 + "/1/0/1", "new");
  ASSERT_TRUE(store->Write(std::move(replace)).ok());
  EXPECT_EQ(ScanKeys(*store, Table::kLastKnown, ep10, ""),
            std::vector<std::string>{ep10 + "/1/0/1"});

  // The empty prefix clears the table.
  WriteBatch all;
  all.DeletePrefix(Table::kLastKnown, "");
  ASSERT_TRUE(store->Write(std::move(all)).ok());
  EXPECT_EQ(CountOrDie(*store, Table::kLastKnown), 0u);
}

TEST(StoreTest, ScanPrefixAndPaging) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenOrDie(MakeOptions(dir.path()));
  ASSERT_NE(store, nullptr);
  WriteBatch batch;
  std::vector<std::string> expected;
  for (int i = 0; i < 25; ++i) {
    expected.push_back(absl::StrFormat("b/%03d", i));
    batch.Put(Table::kObjects, expected.back(), absl::StrFormat("value-%d", i));
  }
  batch.Put(Table::kObjects, "a/999", "before");
  batch.Put(Table::kObjects, "b", "the prefix itself is a key");
  batch.Put(Table::kObjects, "c/000", "after");
  ASSERT_TRUE(store->Write(std::move(batch)).ok());

  // Pages of 10, each starting after the last key of the previous page.
  std::vector<std::string> paged;
  std::string start_after;
  for (int page = 0; page < 10; ++page) {
    std::vector<std::string> keys = ScanKeys(*store, Table::kObjects, "b/", start_after, 10);
    if (keys.empty()) break;
    EXPECT_LE(keys.size(), 10u);
    paged.insert(paged.end(), keys.begin(), keys.end());
    start_after = keys.back();
  }
  EXPECT_EQ(paged, expected);

  // Values come with their keys.
  std::string value;
  ASSERT_TRUE(store
                  ->Scan(Table::kObjects, "b/007", "",
                         [&](std::string_view, std::string_view v) {
                           value = std::string(v);
                           return true;
                         })
                  .ok());
  EXPECT_EQ(value, "value-7");

  // start_after that is not itself a key, before the prefix, or past everything.
  EXPECT_EQ(ScanKeys(*store, Table::kObjects, "b/", "b/0105"),
            std::vector<std::string>(expected.begin() + 11, expected.end()));
  EXPECT_EQ(ScanKeys(*store, Table::kObjects, "b/", "a"), expected);
  EXPECT_TRUE(ScanKeys(*store, Table::kObjects, "b/", "b/024").empty());
  EXPECT_TRUE(ScanKeys(*store, Table::kObjects, "b/", "zzz").empty());
  // The empty prefix visits the whole table in key order.
  std::vector<std::string> all = ScanKeys(*store, Table::kObjects, "", "");
  ASSERT_EQ(all.size(), 28u);
  EXPECT_EQ(all.front(), "a/999");
  EXPECT_EQ(all[1], "b");
  EXPECT_EQ(all.back(), "c/000");
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_TRUE(ScanKeys(*store, Table::kInventory, "", "").empty());
}

TEST(StoreTest, BatchesApplyAndCompleteInSubmissionOrder) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenOrDie(MakeOptions(dir.path(), Durability::kAsync));
  ASSERT_NE(store, nullptr);
  constexpr size_t kBatches = 500;
  Completions done(kBatches);
  for (size_t i = 0; i < kBatches; ++i) {
    WriteBatch batch;
    batch.Put(Table::kRegistrations, "ep", absl::StrFormat("%d", i));
    if (i % 2 == 0) batch.Put(Table::kRegistrations, absl::StrFormat("even-%03d", i), "x");
    if (i % 10 == 5) batch.DeletePrefix(Table::kRegistrations, "even-");
    store->Submit(std::move(batch), done.Slot(i));
  }
  done.WaitAll();
  std::vector<size_t> order = done.order();
  for (size_t i = 0; i < kBatches; ++i) {
    ASSERT_EQ(order[i], i);
    EXPECT_TRUE(done.status(i).ok()) << done.status(i);
  }
  EXPECT_EQ(GetOrDie(*store, Table::kRegistrations, "ep"), absl::StrFormat("%d", kBatches - 1));
  // The last prefix delete was batch 495; 496 and 498 came after it.
  EXPECT_EQ(ScanKeys(*store, Table::kRegistrations, "even-", ""),
            (std::vector<std::string>{"even-496", "even-498"}));
}

TEST(StoreTest, ConcurrentSubmittersAreGroupCommitted) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenOrDie(MakeOptions(dir.path(), Durability::kSync));
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  Completions done(kThreads * kPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const size_t slot = static_cast<size_t>(t * kPerThread + i);
        store->Submit(PutBatch(Table::kRegistrations, absl::StrFormat("ep-%d-%04d", t, i),
                               std::string(200, 'r')),
                      done.Slot(slot));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  done.WaitAll();
  for (size_t i = 0; i < kThreads * kPerThread; ++i) {
    ASSERT_TRUE(done.status(i).ok()) << i << ": " << done.status(i);
  }
  EXPECT_EQ(CountOrDie(*store, Table::kRegistrations), uint64_t{kThreads * kPerThread});
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(GetOrDie(*store, Table::kRegistrations, absl::StrFormat("ep-%d-%04d", t, 123)),
              std::string(200, 'r'));
  }

  const StoreMetrics& m = store->metrics();
  EXPECT_EQ(m.batches.load(), uint64_t{kThreads * kPerThread});
  EXPECT_EQ(m.operations.load(), uint64_t{kThreads * kPerThread});
  EXPECT_GT(m.batches.load(), m.commits.load()) << "group commit did not group";
  EXPECT_EQ(m.failed_batches.load(), 0u);
  uint64_t bucketed = 0;
  for (const auto& bucket : m.commit_buckets) bucketed += bucket.load();
  EXPECT_EQ(bucketed, m.commits.load());
  EXPECT_GT(m.commit_nanos_total.load(), 0u);
  EXPECT_EQ(m.queued_bytes.load(), 0u);
  EXPECT_EQ(m.queued_batches.load(), 0u);
}

TEST(StoreTest, ReadersRunConcurrentlyWithTheWriter) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenOrDie(MakeOptions(dir.path(), Durability::kAsync));
  ASSERT_NE(store, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<int> read_errors{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      uint64_t last = 0;
      while (!stop.load()) {
        absl::StatusOr<uint64_t> count = store->Count(Table::kCounters);
        // Each commit is visible atomically and never goes back.
        if (!count.ok() || *count < last) read_errors.fetch_add(1);
        if (count.ok()) last = *count;
        if (!store->Get(Table::kCounters, "k-0001").ok()) read_errors.fetch_add(1);
        if (!store->Scan(Table::kCounters, "k-", "", [](auto, auto) { return true; }).ok()) {
          read_errors.fetch_add(1);
        }
      }
    });
  }
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(store->Write(PutBatch(Table::kCounters, absl::StrFormat("k-%04d", i), "v")).ok());
  }
  stop.store(true);
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(read_errors.load(), 0);
}

class ReopenTest : public testing::TestWithParam<Durability> {};

TEST_P(ReopenTest, ReopenSeesData) {
  TempDir dir;
  const Options options = MakeOptions(dir.path(), GetParam());
  {
    std::unique_ptr<Store> store = OpenOrDie(options);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 50; ++i) {
      store->Submit(PutBatch(Table::kEndpoints, absl::StrFormat("ep-%02d", i), "cfg"),
                    [](absl::Status status) { EXPECT_TRUE(status.ok()) << status; });
    }
    const uint64_t syncs_before = store->metrics().syncs.load();
    ASSERT_TRUE(store->Flush().ok());
    EXPECT_GT(store->metrics().syncs.load(), syncs_before);
    EXPECT_EQ(store->metrics().batches.load(), 50u);  // Flush waited for all of them
    EXPECT_GT(store->used_bytes(), 0u);
    EXPECT_GE(store->map_size_bytes(), options.map_size_bytes);
  }
  std::unique_ptr<Store> store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(CountOrDie(*store, Table::kEndpoints), 50u);
  EXPECT_EQ(GetOrDie(*store, Table::kEndpoints, "ep-49"), "cfg");
  EXPECT_EQ(GetOrDie(*store, Table::kMeta, "schema"), "1");
}

INSTANTIATE_TEST_SUITE_P(Durabilities, ReopenTest,
                         testing::Values(Durability::kSync, Durability::kAsync),
                         [](const testing::TestParamInfo<Durability>& info) {
                           return info.param == Durability::kSync ? "Sync" : "Async";
                         });

TEST(StoreTest, AsyncModeSyncsPeriodically) {
  TempDir dir;
  Options options = MakeOptions(dir.path(), Durability::kAsync);
  options.async_flush_interval = absl::Milliseconds(20);
  std::unique_ptr<Store> store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->metrics().syncs.load(), 0u);
  ASSERT_TRUE(store->Write(PutBatch(Table::kCounters, "k", "v")).ok());
  EXPECT_TRUE(Eventually([&] { return store->metrics().syncs.load() >= 1; }));
  // Nothing new committed: no further syncs while idle.
  const uint64_t syncs = store->metrics().syncs.load();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(store->metrics().syncs.load(), syncs);
}

TEST(StoreTest, MaxBatchDelayCollectsMoreWork) {
  TempDir dir;
  Options options = MakeOptions(dir.path());
  options.max_batch_delay = absl::Milliseconds(200);
  std::unique_ptr<Store> store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  Completions done(20);
  for (size_t i = 0; i < 20; ++i) {
    store->Submit(PutBatch(Table::kCounters, absl::StrFormat("k%d", i), "v"), done.Slot(i));
  }
  done.WaitAll();
  EXPECT_EQ(store->metrics().batches.load(), 20u);
  EXPECT_LT(store->metrics().commits.load(), 20u);
}

TEST(StoreTest, BatchLimitsSplitGroups) {
  TempDir dir;
  Options options = MakeOptions(dir.path());
  options.max_batch_operations = 10;
  std::unique_ptr<Store> store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  store->PauseWriterForTest(true);
  Completions done(31);
  for (size_t i = 0; i < 30; ++i) {
    WriteBatch batch;
    batch.Put(Table::kCounters, absl::StrFormat("a%d", i), "v");
    batch.Put(Table::kCounters, absl::StrFormat("b%d", i), "v");
    store->Submit(std::move(batch), done.Slot(i));
  }
  // One batch above the limit still goes through, alone.
  WriteBatch big;
  for (int i = 0; i < 25; ++i) big.Put(Table::kCounters, absl::StrFormat("c%d", i), "v");
  store->Submit(std::move(big), done.Slot(30));
  EXPECT_EQ(store->metrics().queued_batches.load(), 31u);
  store->PauseWriterForTest(false);
  done.WaitAll();
  for (size_t i = 0; i < 31; ++i) EXPECT_TRUE(done.status(i).ok());
  // 60 operations in groups of 5 batches (10 operations), then the big one.
  EXPECT_EQ(store->metrics().commits.load(), 7u);
  EXPECT_EQ(CountOrDie(*store, Table::kCounters), 85u);
}

TEST(StoreTest, OversizedKeyFailsOnlyItsOwnBatch) {
  TempDir dir;
  std::unique_ptr<Store> store = OpenOrDie(MakeOptions(dir.path()));
  ASSERT_NE(store, nullptr);
  // The pause puts all four batches into one group, so the bad ones are met mid-transaction.
  store->PauseWriterForTest(true);
  Completions done(4);
  store->Submit(PutBatch(Table::kLastKnown, "good-1", "v1"), done.Slot(0));
  WriteBatch bad;
  bad.Put(Table::kLastKnown, "part-of-bad-batch", "must not appear");
  bad.Put(Table::kLastKnown, std::string(600, 'k'), "v");
  store->Submit(std::move(bad), done.Slot(1));
  store->Submit(PutBatch(Table::kEndpoints, "", "empty key"), done.Slot(2));
  store->Submit(PutBatch(Table::kLastKnown, "good-2", "v2"), done.Slot(3));
  store->PauseWriterForTest(false);
  done.WaitAll();

  EXPECT_TRUE(done.status(0).ok()) << done.status(0);
  EXPECT_TRUE(done.status(3).ok()) << done.status(3);
  EXPECT_EQ(done.status(1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(done.status(1).message(), HasSubstr("600 bytes"));
  EXPECT_THAT(done.status(1).message(), HasSubstr("last_known"));
  EXPECT_EQ(done.status(2).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(done.status(2).message(), HasSubstr("endpoints"));

  EXPECT_EQ(GetOrDie(*store, Table::kLastKnown, "good-1"), "v1");
  EXPECT_EQ(GetOrDie(*store, Table::kLastKnown, "good-2"), "v2");
  EXPECT_EQ(GetOrDie(*store, Table::kLastKnown, "part-of-bad-batch"), std::nullopt);
  EXPECT_EQ(store->metrics().commits.load(), 1u);
  EXPECT_EQ(store->metrics().batches.load(), 2u);
  EXPECT_EQ(store->metrics().failed_batches.load(), 2u);
  EXPECT_TRUE(store->health().ok());
  EXPECT_TRUE(store->Write(PutBatch(Table::kLastKnown, "after", "v")).ok());

  // Reads of impossible keys.
  EXPECT_EQ(GetOrDie(*store, Table::kLastKnown, std::string(600, 'k')), std::nullopt);
  EXPECT_EQ(store->Get(Table::kLastKnown, "").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StoreTest, MapFullFailsEverythingPendingAndStopsWrites) {
  TempDir dir;
  Options options = MakeOptions(dir.path());
  options.map_size_bytes = uint64_t{1} << 20;
  options.max_batch_bytes = 256 << 10;
  std::unique_ptr<Store> store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  std::atomic<int> fatal_calls{0};
  absl::Mutex fatal_mu;
  absl::Status fatal_status;
  store->SetFatalHandler([&](absl::Status status) {
    absl::MutexLock lock(&fatal_mu);
    fatal_status = status;
    fatal_calls.fetch_add(1);
  });
  ASSERT_TRUE(store->Write(PutBatch(Table::kInventory, "early", "still readable")).ok());

  // 40 batches of 64 KiB against a 1 MiB map: the first groups commit, one group meets the
  // full map, and the rest fail while still queued.
  constexpr size_t kBatches = 40;
  store->PauseWriterForTest(true);
  Completions done(kBatches);
  for (size_t i = 0; i < kBatches; ++i) {
    store->Submit(
        PutBatch(Table::kInventory, absl::StrFormat("fw-%02d", i), std::string(64 << 10, 'f')),
        done.Slot(i));
  }
  store->PauseWriterForTest(false);
  done.WaitAll();

  size_t ok = 0;
  for (; ok < kBatches && done.status(ok).ok(); ++ok) {
  }
  ASSERT_LT(ok, kBatches);
  const absl::Status full = done.status(ok);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_THAT(full.message(), HasSubstr("map is full (map_size_mb=1)"));
  EXPECT_THAT(full.message(), HasSubstr("store.map_size_mb"));
  for (size_t i = ok; i < kBatches; ++i) EXPECT_EQ(done.status(i), full) << i;
  EXPECT_EQ(store->health(), full);
  EXPECT_EQ(store->metrics().failed_batches.load(), kBatches - ok);

  ASSERT_TRUE(Eventually([&] { return fatal_calls.load() == 1; }));
  {
    absl::MutexLock lock(&fatal_mu);
    EXPECT_EQ(fatal_status, full);
  }

  // Later submissions fail at once, on the caller's thread.
  bool called = false;
  absl::Status later;
  store->Submit(PutBatch(Table::kInventory, "late", "v"), [&](absl::Status status) {
    called = true;
    later = status;
  });
  EXPECT_TRUE(called);
  EXPECT_EQ(later, full);
  EXPECT_EQ(store->Write(PutBatch(Table::kInventory, "late", "v")), full);
  EXPECT_EQ(store->Flush(), full);

  // Reads still work and see what was committed.
  EXPECT_EQ(GetOrDie(*store, Table::kInventory, "early"), "still readable");
  EXPECT_EQ(CountOrDie(*store, Table::kInventory), 1 + ok);
  EXPECT_GT(store->used_bytes(), uint64_t{512} << 10);
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(fatal_calls.load(), 1);
}

TEST(StoreTest, QueuedBytesLimitRefusesAtOnce) {
  TempDir dir;
  Options options = MakeOptions(dir.path());
  options.max_queued_bytes = 1000;
  std::unique_ptr<Store> store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  store->PauseWriterForTest(true);
  Completions done(3);
  store->Submit(PutBatch(Table::kCounters, "a", std::string(600, 'x')), done.Slot(0));
  EXPECT_FALSE(done.called(0));
  EXPECT_EQ(store->metrics().queued_bytes.load(), 601u);
  EXPECT_EQ(store->metrics().queued_batches.load(), 1u);
  store->Submit(PutBatch(Table::kCounters, "b", std::string(600, 'x')), done.Slot(1));
  ASSERT_TRUE(done.called(1));  // refused on this thread, before Submit returned
  EXPECT_EQ(done.status(1).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(done.status(1).message(), HasSubstr("max_queued_bytes=1000"));
  EXPECT_EQ(store->metrics().refused_batches.load(), 1u);
  store->Submit(PutBatch(Table::kCounters, "c", std::string(300, 'x')), done.Slot(2));
  EXPECT_FALSE(done.called(2));  // still fits
  store->PauseWriterForTest(false);
  done.WaitAll();
  EXPECT_TRUE(done.status(0).ok());
  EXPECT_TRUE(done.status(2).ok());
  EXPECT_EQ(GetOrDie(*store, Table::kCounters, "b"), std::nullopt);
  EXPECT_EQ(store->metrics().queued_bytes.load(), 0u);
  EXPECT_TRUE(store->health().ok());  // back-pressure is not a failure
}

TEST(StoreTest, DestructorDrainsQueuedBatches) {
  TempDir dir;
  const Options options = MakeOptions(dir.path(), Durability::kAsync);
  constexpr size_t kBatches = 200;
  Completions done(kBatches);
  absl::Status resubmitted = absl::UnknownError("not called");
  {
    std::unique_ptr<Store> store = OpenOrDie(options);
    ASSERT_NE(store, nullptr);
    Store* raw = store.get();
    store->PauseWriterForTest(true);  // everything is still queued when destruction starts
    for (size_t i = 0; i + 1 < kBatches; ++i) {
      store->Submit(PutBatch(Table::kObservations, absl::StrFormat("obs-%03d", i), "t"),
                    done.Slot(i));
    }
    // A callback that submits again while the store stops is refused, not lost.
    WriteCallback last = done.Slot(kBatches - 1);
    store->Submit(PutBatch(Table::kObservations, "obs-last", "t"),
                  [&, raw, last = std::move(last)](absl::Status status) mutable {
                    raw->Submit(PutBatch(Table::kObservations, "too-late", "t"),
                                [&](absl::Status s) { resubmitted = s; });
                    std::move(last)(status);
                  });
    store.reset();
  }
  for (size_t i = 0; i < kBatches; ++i) {
    ASSERT_TRUE(done.called(i)) << i;
    EXPECT_TRUE(done.status(i).ok()) << done.status(i);
  }
  EXPECT_EQ(resubmitted.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(resubmitted.message(), "store: stopping");

  std::unique_ptr<Store> store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(CountOrDie(*store, Table::kObservations), kBatches);
  EXPECT_EQ(GetOrDie(*store, Table::kObservations, "too-late"), std::nullopt);
}

// --- Open failures ---

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string RandomBytes(size_t n) {
  std::mt19937 rng(42);
  std::string bytes(n, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  return bytes;
}

TEST(StoreOpenTest, GarbageDataFileIsRefusedClearly) {
  for (size_t size : {size_t{100}, size_t{64} << 10}) {
    SCOPED_TRACE(size);
    TempDir dir;
    WriteFile(dir.Sub("data.mdb"), RandomBytes(size));
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(MakeOptions(dir.path()));
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr(dir.Sub("data.mdb")));
    EXPECT_THAT(store.status().message(), HasSubstr("not an LMDB data file"));
    EXPECT_THAT(store.status().message(), HasSubstr("move it away"));
  }
}

TEST(StoreOpenTest, OtherLmdbVersionIsRefusedClearly) {
  TempDir dir;
  { ASSERT_NE(OpenOrDie(MakeOptions(dir.path())), nullptr); }
  // The first meta page: a 16-byte page header, then mm_magic and mm_version.
  std::fstream file(dir.Sub("data.mdb"), std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(20);
  const uint32_t version = 999;
  file.write(reinterpret_cast<const char*>(&version), sizeof(version));
  file.close();
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(MakeOptions(dir.path()));
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("incompatible LMDB version"));
  EXPECT_THAT(store.status().message(), HasSubstr(dir.path()));
}

TEST(StoreOpenTest, ForeignLmdbEnvironmentIsRefused) {
  TempDir dir;
  {
    MDB_env* env = nullptr;
    ASSERT_EQ(mdb_env_create(&env), 0);
    ASSERT_EQ(mdb_env_open(env, dir.path().c_str(), 0, 0600), 0);
    MDB_txn* txn = nullptr;
    ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
    MDB_dbi dbi;
    ASSERT_EQ(mdb_dbi_open(txn, nullptr, 0, &dbi), 0);
    MDB_val key{5, const_cast<char*>("hello")};
    MDB_val value{5, const_cast<char*>("world")};
    ASSERT_EQ(mdb_put(txn, dbi, &key, &value, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(MakeOptions(dir.path()));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("not lwm2md's"));
  EXPECT_THAT(store.status().message(), HasSubstr("hello"));
}

TEST(StoreOpenTest, OtherSchemaVersionIsRefused) {
  TempDir dir;
  {
    std::unique_ptr<Store> store = OpenOrDie(MakeOptions(dir.path()));
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Write(PutBatch(Table::kMeta, "schema", "2")).ok());
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(MakeOptions(dir.path()));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("schema version \"2\""));
  EXPECT_THAT(store.status().message(), HasSubstr("understands version 1"));
}

TEST(StoreOpenTest, PathThatIsAFileIsRefused) {
  TempDir dir;
  WriteFile(dir.Sub("file"), "x");
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(MakeOptions(dir.Sub("file")));
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(dir.Sub("file")));
  EXPECT_THAT(store.status().message(), HasSubstr("store.path"));
}

TEST(StoreOpenTest, SecondOpenOfTheSameDirectoryIsRefused) {
  TempDir dir;
  std::unique_ptr<Store> first = OpenOrDie(MakeOptions(dir.path()));
  ASSERT_NE(first, nullptr);
  absl::StatusOr<std::unique_ptr<Store>> second = Store::Open(MakeOptions(dir.path()));
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
  first.reset();
  EXPECT_NE(OpenOrDie(MakeOptions(dir.path())), nullptr);
}

// --- Disk full: needs a small tmpfs, so root (CI runs as root); skipped elsewhere. ---

class TmpfsMount {
 public:
  TmpfsMount(const std::string& path, std::string_view size) : path_(path) {
    std::filesystem::create_directories(path_);
    const std::string data = absl::StrFormat("size=%s,mode=0700", size);
    mounted_ = ::mount("tmpfs", path_.c_str(), "tmpfs", 0, data.c_str()) == 0;
    if (!mounted_) error_ = std::strerror(errno);
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  std::string path_;
  bool mounted_ = false;
  std::string error_;
};

TEST(StoreTest, DiskFullFailsClearly) {
  TempDir dir;
  TmpfsMount mount(dir.Sub("tmpfs"), "512k");
  if (!mount.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here: " << mount.error();
  Options options = MakeOptions(dir.Sub("tmpfs") + "/data");
  options.map_size_bytes = uint64_t{64} << 20;  // far more than the file system holds
  std::unique_ptr<Store> store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  std::atomic<int> fatal_calls{0};
  store->SetFatalHandler([&](absl::Status) { fatal_calls.fetch_add(1); });

  absl::Status status;
  int written = 0;
  for (; written < 100; ++written) {
    status = store->Write(PutBatch(Table::kInventory, absl::StrFormat("fw-%03d", written),
                                   std::string(32 << 10, 'f')));
    if (!status.ok()) break;
  }
  ASSERT_FALSE(status.ok()) << "1.6 MB fit into a 512 KiB tmpfs";
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("disk full writing " + options.path + "/data.mdb"));
  EXPECT_EQ(store->health(), status);
  ASSERT_TRUE(Eventually([&] { return fatal_calls.load() == 1; }));
  EXPECT_EQ(store->Write(PutBatch(Table::kInventory, "late", "v")), status);
  ASSERT_GT(written, 0);
  EXPECT_EQ(GetOrDie(*store, Table::kInventory, "fw-000"), std::string(32 << 10, 'f'));
  store.reset();  // closes the files before the tmpfs goes
}

}  // namespace
}  // namespace lwm2md::store
