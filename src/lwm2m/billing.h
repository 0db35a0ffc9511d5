#pragma once
// Billable-event counters. The service reference ("billable events") bills register, update,
// bootstrap, data and FOTA complete events, and not async result, error, deregister and
// missing events; lwm2md also counts its "back" event, not billed. Every event published on
// the EventBus is counted here through the bus's tap (EventBus::SetTap): per endpoint and
// kind for the current UTC day, persisted as daily totals in the store's counters table,
// and per kind (and per endpoint for billable kinds) since start for /metrics.
//
// Stored layout (Table::kCounters, written by this component only):
//   "day/<YYYY-MM-DD>/<endpoint>"  → compact JSON of the non-zero counts, {"register":3,"data":10}
//   "day/<YYYY-MM-DD>/"            → the same for the day's totals over every endpoint
// The totals key has an empty endpoint segment because no endpoint name is empty, while any
// visible character such as '*' may appear in a name (and would collide).
//
// Threads: Count (the tap) runs on the publishing threads (shards); Read, the metrics
// accessors and Flush on any thread; Start/Stop on the control thread. Deltas since the last
// flush live in memory and are written every flush_interval by a background thread through
// store::Store::Submit (group commit). A crash of the process loses at most one flush
// interval of counts; a failed write keeps its delta for the next flush, so nothing counted
// is lost while the process lives.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "lwm2m/event_bus.h"
#include "store/store.h"

namespace lwm2md::lwm2m {

// The kinds counted, billable ones first so that per-endpoint billable counts are a prefix.
enum class EventKind : uint8_t {
  kRegister,
  kUpdate,
  kBootstrap,
  kData,
  kFotaComplete,
  kAsyncResult,
  kError,
  kDeregister,
  kMissing,
  kBack,
};
inline constexpr int kEventKindCount = 10;
inline constexpr int kBillableKindCount = 5;

struct EventKindInfo {
  EventKind kind;
  // The stored JSON's and the API's member name, and the `kind` label of the metrics.
  std::string_view name;
  std::string_view event_type;
  bool billable;
};

// The one table of what is counted and what is billed (the reference's two lists).
inline constexpr EventKindInfo kEventKinds[kEventKindCount] = {
    {EventKind::kRegister, "register", event_type::kRegister, true},
    {EventKind::kUpdate, "update", event_type::kUpdate, true},
    {EventKind::kBootstrap, "bootstrap", event_type::kBootstrap, true},
    {EventKind::kData, "data", event_type::kData, true},
    {EventKind::kFotaComplete, "fotaComplete", event_type::kFotaComplete, true},
    {EventKind::kAsyncResult, "asyncResult", event_type::kAsyncResult, false},
    {EventKind::kError, "error", event_type::kError, false},
    {EventKind::kDeregister, "deregister", event_type::kDeregister, false},
    {EventKind::kMissing, "missing", event_type::kMissing, false},
    {EventKind::kBack, "back", event_type::kBack, false},
};

// The kind of an lwm2m.* event type; nullopt for a type that is not counted.
std::optional<EventKind> EventKindOf(std::string_view event_type);
inline const EventKindInfo& KindInfo(EventKind kind) { return kEventKinds[static_cast<int>(kind)]; }

// Counts indexed by EventKind.
using KindCounts = std::array<uint64_t, kEventKindCount>;
uint64_t BillableSum(const KindCounts& counts);

// The stored value: {"register":3,"data":10}, non-zero kinds in table order.
std::string CountsToJson(const KindCounts& counts);
// Reads a stored value; unknown members or non-integer values are DataLoss (only this
// component writes the table, so either means a damaged file).
absl::StatusOr<KindCounts> CountsFromJson(std::string_view json);

// "day/2026-11-24/dev1", or "day/2026-11-24/" for the totals (endpoint empty).
std::string CounterKey(absl::CivilDay day, std::string_view endpoint);

struct BillingOptions {
  store::Store* store = nullptr;  // required; must outlive the counters
  // How often the background thread writes the deltas (Start()).
  absl::Duration flush_interval = absl::Milliseconds(5000);
  // Keep per-endpoint totals since start for lwm2md_endpoint_billable_events_total.
  bool endpoint_metrics = true;
  // "Now" for Today() and for events without a time; absl::Now when empty.
  std::function<absl::Time()> clock = nullptr;
};

struct DayCounts {
  absl::CivilDay day;
  KindCounts counts{};
};

class BillingCounters {
 public:
  explicit BillingCounters(BillingOptions options);
  // Stop().
  ~BillingCounters();
  BillingCounters(const BillingCounters&) = delete;
  BillingCounters& operator=(const BillingCounters&) = delete;

  // Starts the thread that calls Flush every flush_interval. Without it, only Flush() and
  // Stop() write.
  void Start();
  // Stops that thread, then flushes what is left (errors are logged). Counting and reading go
  // on working afterwards, in memory. Idempotent.
  void Stop();

  // Counts one event on the UTC day of event.time (the clock when unset). Types that are not
  // counted and events without an endpoint count in no endpoint's row but the latter do
  // count in the totals. Any thread; a stripe mutex held for two hash-map updates.
  void Count(const Event& event);
  // Count as an EventBus tap. The counters must outlive every Publish.
  absl::AnyInvocable<void(const Event&)> Tap();

  // Adds the deltas counted since the last flush to the stored day values (read, add, put)
  // and waits until they are committed. Deltas whose write fails are kept for the next
  // flush; the first error is returned. Flushes are serialised.
  absl::Status Flush();

  // The daily counts of one endpoint (empty: the totals over all endpoints) from `from` to
  // `to` inclusive, stored values plus the deltas not yet flushed, in date order; days
  // without any event are left out. Exact: a flush in progress is waited for.
  absl::StatusOr<std::vector<DayCounts>> Read(std::string_view endpoint, absl::CivilDay from,
                                              absl::CivilDay to) const;

  // The current UTC day by the clock.
  absl::CivilDay Today() const;

  // --- /metrics ---
  // Events counted since start, per kind (every endpoint).
  KindCounts CountedSinceStart() const;
  bool endpoint_metrics() const { return options_.endpoint_metrics; }
  // Every endpoint's billable counts since start (zeros in the other kinds); nothing when
  // endpoint_metrics is off. visit runs without any lock held.
  void VisitEndpointCounts(
      absl::FunctionRef<void(std::string_view endpoint, const KindCounts& counts)> visit) const;

  // Rows (an endpoint's day, a day's totals) with counts not yet written: what a crash would
  // lose now.
  size_t pending_rows() const;

  // Adds n to endpoint's since-start count of a billable kind, as n events would.
  void AddSinceStartForTest(std::string_view endpoint, EventKind kind, uint64_t n);

 private:
  // Counts of one UTC day not yet written.
  struct DayDelta {
    int64_t day = 0;  // days since 1970-01-01
    KindCounts totals{};
    absl::flat_hash_map<std::string, KindCounts> endpoints;
  };
  // Counting takes one stripe's mutex, chosen by the endpoint's hash, so that shards counting
  // different endpoints rarely wait for each other and a /metrics scrape copies one stripe at
  // a time instead of stopping every shard for the whole fleet. The price is memory: the day
  // totals are kept per stripe and summed when written or read.
  // An endpoint's billable counts since start: one exact-size allocation holding 32-bit
  // counts and then the name (defined in the .cc). Every endpoint that ever registered has
  // one, so a map of std::string to 64-bit counts would cost about twice as much.
  class Tally;
  struct TallyDeleter {
    void operator()(Tally* tally) const;
  };
  using TallyPtr = std::unique_ptr<Tally, TallyDeleter>;
  // Keyed by the tally's own name.
  struct TallyHash {
    using is_transparent = void;
    size_t operator()(std::string_view name) const;
    size_t operator()(const TallyPtr& tally) const;
  };
  struct TallyEq {
    using is_transparent = void;
    bool operator()(const TallyPtr& a, const TallyPtr& b) const;
    bool operator()(const TallyPtr& a, std::string_view b) const;
    bool operator()(std::string_view a, const TallyPtr& b) const;
  };
  using BillableCounts = std::array<uint64_t, kBillableKindCount>;
  struct Stripe {
    mutable absl::Mutex mutex;
    // Usually one day; two around midnight or after a failed flush.
    std::vector<DayDelta> pending ABSL_GUARDED_BY(mutex);
    // Billable counts since start per endpoint, for the metrics (endpoint_metrics only).
    absl::flat_hash_set<TallyPtr, TallyHash, TallyEq> since_start ABSL_GUARDED_BY(mutex);
    // The endpoints whose count of some kind outgrew 32 bits, moved here whole so that the
    // metric keeps counting exactly.
    absl::flat_hash_map<std::string, BillableCounts> since_start_wide ABSL_GUARDED_BY(mutex);
  };
  static constexpr int kStripeBits = 4;
  static constexpr int kStripeCount = 1 << kStripeBits;

  Stripe& StripeFor(std::string_view endpoint) const;
  static DayDelta& DeltaFor(std::vector<DayDelta>& pending, int64_t day);
  // Adds n to endpoint's since-start count of billable kind k (stripe's mutex held).
  static void AddSinceStart(Stripe& stripe, std::string_view endpoint, int k, uint64_t n)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(stripe.mutex);
  // Merges deltas back into the stripes (a failed write, or for reading).
  void Restore(std::vector<DayDelta> deltas);
  absl::Time Now() const;
  void FlushLoop();

  const BillingOptions options_;
  mutable Stripe stripes_[kStripeCount];
  std::array<std::atomic<uint64_t>, kEventKindCount> since_start_{};

  // Held exclusively for a whole flush (take the deltas, read, write, wait for the commit,
  // restore failures) and shared by Read, so that a reader sees every count exactly once:
  // either still in memory or already committed, never in flight between the two.
  mutable absl::Mutex flush_mutex_;
  bool last_flush_failed_ ABSL_GUARDED_BY(flush_mutex_) = false;

  // Rows the last flush wrote, for the flush thread's decision to return freed memory.
  static constexpr size_t kTrimAfterRows = 4096;
  std::atomic<size_t> last_flush_rows_{0};

  absl::Mutex thread_mutex_;
  bool stopping_ ABSL_GUARDED_BY(thread_mutex_) = false;
  bool stopped_ ABSL_GUARDED_BY(thread_mutex_) = false;
  std::thread flusher_;
};

}  // namespace lwm2md::lwm2m
