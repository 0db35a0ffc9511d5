// Store write throughput: registration-sized puts (a 24-byte endpoint name, 200-byte value)
// submitted by 1 or 2 threads, each keeping a window of puts in flight the way a shard does
// (Submit, completion later), with kSync and kAsync. items_per_second is puts/s;
// ops_per_commit shows how much the writer grouped. Window 1 is a caller that waits for
// every write (Store::Write): one fsync per put in kSync, however many threads.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <semaphore>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "store/store.h"

namespace lwm2md::store {
namespace {

// Registrations are rewritten, not accumulated: the file stays the size of a fleet.
constexpr uint64_t kEndpoints = 100000;

// Shared by the benchmark's threads; thread 0 sets it up before the loop and tears it down
// after (Google Benchmark puts a barrier at both ends of the loop). Callbacks reach the
// windows after a submitting thread has left, so they live here, not on its stack.
struct Shared {
  std::filesystem::path dir;
  std::unique_ptr<Store> store;
  std::vector<std::unique_ptr<std::counting_semaphore<>>> windows;
  std::atomic<uint64_t> failures{0};
  uint64_t commits_before = 0;
  uint64_t operations_before = 0;
};
Shared shared;

void BM_StorePut(benchmark::State& state) {
  const Durability durability = state.range(0) == 0 ? Durability::kSync : Durability::kAsync;
  const auto window = static_cast<std::ptrdiff_t>(state.range(1));
  if (state.thread_index() == 0) {
    shared.dir =
        std::filesystem::temp_directory_path() / absl::StrFormat("lwm2md-store-bench-%d", getpid());
    std::filesystem::remove_all(shared.dir);
    Options options;
    options.path = shared.dir.string();
    options.durability = durability;
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    if (!store.ok()) {
      state.SkipWithError(std::string(store.status().message()).c_str());
    } else {
      shared.store = std::move(*store);
      shared.windows.clear();
      for (int t = 0; t < state.threads(); ++t) {
        shared.windows.push_back(std::make_unique<std::counting_semaphore<>>(window));
      }
      shared.failures = 0;
      shared.commits_before = shared.store->metrics().commits.load();
      shared.operations_before = shared.store->metrics().operations.load();
    }
  }
  const std::string value(200, 'r');
  uint64_t n = static_cast<uint64_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    if (shared.store == nullptr) break;
    std::counting_semaphore<>& slots = *shared.windows[state.thread_index()];
    slots.acquire();
    WriteBatch batch;
    batch.Put(Table::kRegistrations, absl::StrFormat("urn:imei:%015d", n++ % kEndpoints), value);
    shared.store->Submit(std::move(batch), [&slots](absl::Status status) {
      if (!status.ok()) shared.failures.fetch_add(1, std::memory_order_relaxed);
      slots.release();
    });
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0 && shared.store != nullptr) {
    // Every thread has submitted its last put (end-of-loop barrier); Flush waits for them.
    if (absl::Status status = shared.store->Flush(); !status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
    }
    if (shared.failures.load() > 0) state.SkipWithError("some puts failed");
    const StoreMetrics& m = shared.store->metrics();
    const double commits = static_cast<double>(m.commits.load() - shared.commits_before);
    const double operations = static_cast<double>(m.operations.load() - shared.operations_before);
    // Counters are summed over threads; only thread 0 sets these.
    state.counters["ops_per_commit"] = commits > 0 ? operations / commits : 0;
    state.counters["commits_per_s"] = benchmark::Counter(commits, benchmark::Counter::kIsRate);
    shared.store.reset();
    shared.windows.clear();
    std::filesystem::remove_all(shared.dir);
  }
}

BENCHMARK(BM_StorePut)
    ->ArgNames({"async", "window"})
    ->ArgsProduct({{0, 1}, {1, 256}})
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime()
    ->MinTime(1.0);

}  // namespace
}  // namespace lwm2md::store
