#pragma once
// The LMDB environment: one file pair under the data directory, one named database per
// table, and one group-commit writer thread.
//
// Threads: Submit, Write, Get, Scan and Flush may be called from any thread. A shard never
// blocks on the store: it calls Submit and is completed from the writer thread (the callback
// then posts back to the shard's inbox). Readers open their own read transaction per call
// (MDB_NOTLS), so API threads and shards read concurrently with the writer and each other.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lwm2md::store {

// One named LMDB database each. Keys and values are bytes; each table's owner documents its
// key layout (see store/README.md).
enum class Table : uint8_t {
  kMeta,           // schema version and format markers
  kSettings,       // service settings
  kEndpoints,      // endpoint name → endpoint configuration
  kRegistrations,  // endpoint name → registration
  kObjects,        // "oid:version" → custom object definition (OMA XML)
  kLastKnown,      // endpoint name \0 path → value with update time
  kObservations,   // endpoint name \0 token → observation
  kDtlsSessions,   // connection id / peer address → saved DTLS session (dtls/saved_session.h)
  kCounters,       // billable counters
  kInventory,      // firmware files
  kRequests,       // device requests accepted but not finished (queued or in flight)
};
inline constexpr int kTableCount = 11;
std::string_view TableName(Table table);

enum class Durability : uint8_t {
  // A write completes only once its batch is on disk (fsync of the commit).
  kSync,
  // Commits with MDB_NOSYNC; a background flush every async_flush_interval bounds the loss
  // window after a power failure (a process crash loses nothing: the data is in the page
  // cache).
  kAsync,
};

struct Options {
  std::string path;  // directory; created if missing
  uint64_t map_size_bytes = uint64_t{1} << 30;
  Durability durability = Durability::kSync;
  absl::Duration async_flush_interval = absl::Milliseconds(100);
  // A batch holds at most this many operations or bytes of keys and values; the writer then
  // commits and starts the next one.
  size_t max_batch_operations = 8192;
  size_t max_batch_bytes = size_t{8} << 20;
  // How long the writer may wait for more work after the first queued batch before it commits.
  // 0 commits as soon as the previous commit finished (the natural group-commit window).
  absl::Duration max_batch_delay = absl::ZeroDuration();
  // Submissions beyond this many queued bytes are refused at once with kResourceExhausted,
  // so a stalled disk shows up as errors instead of unbounded memory.
  size_t max_queued_bytes = size_t{256} << 20;
};

// A set of puts and deletes applied atomically, in order, in one transaction.
class WriteBatch {
 public:
  void Put(Table table, std::string_view key, std::string_view value);
  void Delete(Table table, std::string_view key);  // absent keys are not an error
  // Deletes every key starting with prefix (e.g. an endpoint's lastKnown values).
  void DeletePrefix(Table table, std::string_view prefix);

  bool empty() const { return operations_.empty(); }
  size_t operation_count() const { return operations_.size(); }
  size_t byte_size() const { return bytes_; }

  enum class Kind : uint8_t { kPut, kDelete, kDeletePrefix };
  struct Operation {
    Kind kind;
    Table table;
    std::string key;
    std::string value;
  };
  const std::vector<Operation>& operations() const { return operations_; }

 private:
  std::vector<Operation> operations_;
  size_t bytes_ = 0;
};

// Called once, on the writer thread, with OkStatus when the batch is durable (per the
// configured durability) or the error that refused it. Must not block.
using WriteCallback = absl::AnyInvocable<void(absl::Status) &&>;

// Probe: counters written by the writer thread only, read by the metrics scrape.
struct StoreMetrics {
  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> operations{0};
  std::atomic<uint64_t> batches{0};  // WriteBatch objects committed
  std::atomic<uint64_t> failed_batches{0};
  // Explicit mdb_env_sync calls (async flush interval, Flush(), shutdown). In kSync every
  // commit also syncs; those are counted by commits.
  std::atomic<uint64_t> syncs{0};
  std::atomic<uint64_t> commit_nanos_total{0};
  // Commit latency histogram (commit + sync), upper bounds in kCommitBucketsSeconds.
  static constexpr double kCommitBucketsSeconds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                     0.005,  0.01,    0.025,  0.05,  0.1,
                                                     0.25,   0.5,     1.0};
  static constexpr int kCommitBucketCount = 13;
  // Per bucket, not cumulative: commit_buckets[i] counts commits slower than bucket i-1 and
  // at most kCommitBucketsSeconds[i]; an exporter sums them into Prometheus' cumulative form.
  std::atomic<uint64_t> commit_buckets[kCommitBucketCount + 1] = {};  // last one is +Inf
  std::atomic<uint64_t> queued_bytes{0};
  std::atomic<uint64_t> queued_batches{0};
  // Submissions refused up front (queue full, store failed or stopping). The one counter with
  // several writers (any Submit caller), hence fetch_add.
  std::atomic<uint64_t> refused_batches{0};

  // --- updates (store.cc only). Single writer except where noted: relaxed load + store. ---
  void RecordCommit(uint64_t committed_batches, uint64_t committed_operations, uint64_t nanos) {
    Add(commits, 1);
    Add(batches, committed_batches);
    Add(operations, committed_operations);
    Add(commit_nanos_total, nanos);
    int bucket = 0;
    while (bucket < kCommitBucketCount && nanos > kCommitBucketsSeconds[bucket] * 1e9) ++bucket;
    Add(commit_buckets[bucket], 1);
  }
  void RecordFailedBatches(uint64_t n) { Add(failed_batches, n); }
  void RecordSync() { Add(syncs, 1); }
  // Called with the queue's mutex held, so the writes are serialised.
  void SetQueued(uint64_t bytes, uint64_t count) {
    queued_bytes.store(bytes, std::memory_order_relaxed);
    queued_batches.store(count, std::memory_order_relaxed);
  }
  void RecordRefused() { refused_batches.fetch_add(1, std::memory_order_relaxed); }

 private:
  static void Add(std::atomic<uint64_t>& counter, uint64_t n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

class Store {
 public:
  // Opens (creating if needed) the environment under options.path and every table, and starts
  // the writer. A file that is not an LMDB environment, a version mismatch or a corrupt file
  // fails here with a message naming the path and what to do — never a crash.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const Options& options);
  // Drains the queue (every submitted batch is committed or failed), syncs, stops the writer.
  ~Store();

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Queues a batch for the next group commit. Never blocks; done always runs exactly once
  // (immediately, on this thread, when the batch is refused up front).
  void Submit(WriteBatch batch, WriteCallback done);
  // Control-plane convenience: Submit and wait. Must not be called on a shard thread.
  absl::Status Write(WriteBatch batch);
  // Waits until everything submitted before the call is on disk, whatever the durability.
  absl::Status Flush();

  // Reads see the latest committed state.
  absl::StatusOr<std::optional<std::string>> Get(Table table, std::string_view key) const;
  // Visits, in key order, the entries whose key starts with prefix and sorts after
  // start_after (empty: from the first), until visit returns false.
  absl::Status Scan(Table table, std::string_view prefix, std::string_view start_after,
                    absl::FunctionRef<bool(std::string_view key, std::string_view value)> visit)
      const;
  absl::StatusOr<uint64_t> Count(Table table) const;

  // OkStatus until the writer met an error it cannot continue after (map full, disk full,
  // I/O error, corruption). From then on every Submit fails with that status, and the
  // fatal handler (if set) has been called once, so the server can stop cleanly.
  absl::Status health() const;
  // Called once, on the writer thread, with the fatal status. Set before the first Submit.
  void SetFatalHandler(absl::AnyInvocable<void(absl::Status)> handler);

  const StoreMetrics& metrics() const;
  const Options& options() const;
  // Bytes of the map in use (last page number × page size) and the map size.
  uint64_t used_bytes() const;
  // The map size in effect (at least Options::map_size_bytes; larger if the file was created
  // with a larger map).
  uint64_t map_size_bytes() const;

  // While paused the writer starts no new transaction; queued batches wait (destruction still
  // drains them). Lets tests put chosen batches into one group deterministically.
  void PauseWriterForTest(bool paused);

  class Impl;

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lwm2md::store
