#include "lwm2m/billing.h"

#include <simdjson.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <cstring>
#include <new>
#include <memory>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "base/check.h"
#include "base/json_writer.h"
#include "base/log.h"
#include "base/strings.h"
#include "lwm2m/registration_params.h"

namespace lwm2md::lwm2m {
namespace {

constexpr int64_t kSecondsPerDay = 86400;
// Puts per write batch: a day with more active endpoints is written as several batches, so
// that no single batch outgrows a transaction or the store's queue limit.
constexpr size_t kMaxPutsPerBatch = 2048;

// UTC days since 1970-01-01 (negative before). Division, not a time-zone lookup: this runs
// for every event.
int64_t EpochDay(absl::Time time) {
  const int64_t seconds = absl::ToUnixSeconds(time);
  return seconds >= 0 ? seconds / kSecondsPerDay : -((-seconds - 1) / kSecondsPerDay) - 1;
}

absl::CivilDay ToCivil(int64_t epoch_day) { return absl::CivilDay(1970, 1, 1) + epoch_day; }

int64_t FromCivil(absl::CivilDay day) { return day - absl::CivilDay(1970, 1, 1); }

void Add(KindCounts& into, const KindCounts& delta) {
  for (int k = 0; k < kEventKindCount; ++k) into[k] += delta[k];
}

// Endpoint rows are keyed by name; an empty name would be the totals row and a name longer
// than any valid one could exceed LMDB's key limit and fail a whole batch. Neither comes from
// the registration interface, which validates names; such events count in the totals only.
bool HasEndpointRow(std::string_view endpoint) {
  return !endpoint.empty() && endpoint.size() <= kMaxEndpointNameLength;
}

bool IsZero(const KindCounts& counts) {
  return std::all_of(counts.begin(), counts.end(), [](uint64_t n) { return n == 0; });
}

}  // namespace

std::optional<EventKind> EventKindOf(std::string_view event_type) {
  for (const EventKindInfo& info : kEventKinds) {
    if (info.event_type == event_type) return info.kind;
  }
  return std::nullopt;
}

uint64_t BillableSum(const KindCounts& counts) {
  uint64_t sum = 0;
  for (const EventKindInfo& info : kEventKinds) {
    if (info.billable) sum += counts[static_cast<int>(info.kind)];
  }
  return sum;
}

std::string CountsToJson(const KindCounts& counts) {
  base::JsonWriter json;
  json.BeginObject();
  for (const EventKindInfo& info : kEventKinds) {
    const uint64_t n = counts[static_cast<int>(info.kind)];
    if (n != 0) json.Key(info.name).Uint(n);
  }
  json.EndObject();
  return json.Take();
}

absl::StatusOr<KindCounts> CountsFromJson(std::string_view json) {
  // Readers run on API threads and the flusher at once: one parser per thread.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (auto error = parser.parse(json.data(), json.size()).get_object().get(object); error) {
    return absl::DataLossError(absl::StrCat("billing: stored counts are not a JSON object (",
                                            simdjson::error_message(error),
                                            "): ", base::Absl(json)));
  }
  KindCounts counts{};
  for (simdjson::dom::key_value_pair member : object) {
    const std::string_view key(member.key.data(), member.key.size());
    const std::optional<EventKind> kind = [&]() -> std::optional<EventKind> {
      for (const EventKindInfo& info : kEventKinds) {
        if (info.name == key) return info.kind;
      }
      return std::nullopt;
    }();
    uint64_t value = 0;
    if (!kind.has_value() || member.value.get_uint64().get(value) != simdjson::SUCCESS) {
      return absl::DataLossError(absl::StrCat("billing: stored counts have a bad member \"",
                                              base::Absl(key), "\": ", base::Absl(json)));
    }
    counts[static_cast<int>(*kind)] = value;
  }
  return counts;
}

std::string CounterKey(absl::CivilDay day, std::string_view endpoint) {
  return absl::StrCat("day/", absl::FormatCivilTime(day), "/", base::Absl(endpoint));
}

// The counts first, then the name (at most kMaxEndpointNameLength bytes: HasEndpointRow).
class BillingCounters::Tally {
 public:
  static TallyPtr Make(std::string_view name) {
    LWM2MD_CHECK(name.size() <= UINT8_MAX);
    void* memory = ::operator new(sizeof(Tally) + name.size());
    auto* tally = new (memory) Tally();
    tally->name_size_ = static_cast<uint8_t>(name.size());
    std::memcpy(tally + 1, name.data(), name.size());
    return TallyPtr(tally);
  }
  static void Free(Tally* tally) {
    tally->~Tally();
    ::operator delete(tally);
  }
  std::string_view name() const {
    return std::string_view(reinterpret_cast<const char*>(this + 1), name_size_);
  }
  // Adds n to kind k unless the sum would not fit 32 bits (then the caller moves the endpoint
  // to the wide map).
  bool Add(int k, uint64_t n) {
    if (n > UINT32_MAX - counts_[k]) return false;
    counts_[k] += static_cast<uint32_t>(n);
    return true;
  }
  BillableCounts counts() const {
    BillableCounts wide{};
    std::copy(counts_.begin(), counts_.end(), wide.begin());
    return wide;
  }

 private:
  std::array<uint32_t, kBillableKindCount> counts_{};
  uint8_t name_size_ = 0;
};

void BillingCounters::TallyDeleter::operator()(Tally* tally) const { Tally::Free(tally); }
size_t BillingCounters::TallyHash::operator()(std::string_view name) const {
  return absl::HashOf(base::Absl(name));
}
size_t BillingCounters::TallyHash::operator()(const TallyPtr& tally) const {
  return (*this)(tally->name());
}
bool BillingCounters::TallyEq::operator()(const TallyPtr& a, const TallyPtr& b) const {
  return a->name() == b->name();
}
bool BillingCounters::TallyEq::operator()(const TallyPtr& a, std::string_view b) const {
  return a->name() == b;
}
bool BillingCounters::TallyEq::operator()(std::string_view a, const TallyPtr& b) const {
  return a == b->name();
}

void BillingCounters::AddSinceStart(Stripe& stripe, std::string_view endpoint, int k,
                                    uint64_t n) {
  if (!stripe.since_start_wide.empty()) {
    if (auto wide = stripe.since_start_wide.find(base::Absl(endpoint));
        wide != stripe.since_start_wide.end()) {
      wide->second[k] += n;
      return;
    }
  }
  auto it = stripe.since_start.find(endpoint);
  if (it == stripe.since_start.end()) it = stripe.since_start.insert(Tally::Make(endpoint)).first;
  if ((*it)->Add(k, n)) return;
  BillableCounts counts = (*it)->counts();
  counts[k] += n;
  stripe.since_start_wide.emplace(std::string(endpoint), counts);
  stripe.since_start.erase(it);
}

void BillingCounters::AddSinceStartForTest(std::string_view endpoint, EventKind kind,
                                           uint64_t n) {
  LWM2MD_CHECK(KindInfo(kind).billable);
  Stripe& stripe = StripeFor(endpoint);
  absl::MutexLock lock(&stripe.mutex);
  AddSinceStart(stripe, endpoint, static_cast<int>(kind), n);
}

BillingCounters::BillingCounters(BillingOptions options) : options_(std::move(options)) {
  LWM2MD_CHECK(options_.store != nullptr);
}

BillingCounters::~BillingCounters() { Stop(); }

BillingCounters::Stripe& BillingCounters::StripeFor(std::string_view endpoint) const {
  // The top bits of the hash: the maps inside a stripe use the low bits (control bytes) and
  // the middle ones (slots), which stay as spread as without striping.
  const size_t hash = absl::Hash<absl::string_view>()(base::Absl(endpoint));
  return stripes_[hash >> (8 * sizeof(size_t) - kStripeBits)];
}

absl::Time BillingCounters::Now() const { return options_.clock ? options_.clock() : absl::Now(); }

absl::CivilDay BillingCounters::Today() const { return ToCivil(EpochDay(Now())); }

void BillingCounters::Start() {
  absl::MutexLock lock(&thread_mutex_);
  if (flusher_.joinable() || stopped_) return;
  flusher_ = std::thread([this] { FlushLoop(); });
}

void BillingCounters::Stop() {
  {
    absl::MutexLock lock(&thread_mutex_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
  }
  if (flusher_.joinable()) flusher_.join();
  if (absl::Status status = Flush(); !status.ok()) {
    LWM2MD_LOG(kError, "billing: final flush failed, %d counter rows not stored: %s",
               static_cast<int>(pending_rows()), status.message());
  }
}

void BillingCounters::FlushLoop() {
  while (true) {
    {
      absl::MutexLock lock(&thread_mutex_);
      thread_mutex_.AwaitWithTimeout(absl::Condition(&stopping_), options_.flush_interval);
      if (stopping_) return;  // Stop flushes once more after the join
    }
    // Errors are logged by Flush (once per failure streak) and the deltas kept.
    Flush().IgnoreError();
    // A flush after a registration storm builds one row per endpoint (tens of megabytes for
    // a large fleet) on this thread, and the store's writer copies them. Freed, that memory
    // would stay in the threads' malloc arenas and in the process's RSS for good: give its
    // free pages back to the system.
    if (last_flush_rows_.exchange(0, std::memory_order_relaxed) >= kTrimAfterRows) {
#ifdef __GLIBC__
      malloc_trim(0);
#endif
    }
  }
}

absl::AnyInvocable<void(const Event&)> BillingCounters::Tap() {
  return [this](const Event& event) { Count(event); };
}

BillingCounters::DayDelta& BillingCounters::DeltaFor(std::vector<DayDelta>& pending, int64_t day) {
  // Newest last: the current day is found first from the back.
  for (auto it = pending.rbegin(); it != pending.rend(); ++it) {
    if (it->day == day) return *it;
  }
  DayDelta& delta = pending.emplace_back();
  delta.day = day;
  return delta;
}

void BillingCounters::Count(const Event& event) {
  const std::optional<EventKind> kind = EventKindOf(event.type);
  if (!kind.has_value()) return;
  const int k = static_cast<int>(*kind);
  since_start_[k].fetch_add(1, std::memory_order_relaxed);
  const int64_t day = EpochDay(event.time == absl::Time() ? Now() : event.time);
  const std::string_view endpoint = event.endpoint;
  const bool row = HasEndpointRow(endpoint);
  Stripe& stripe = StripeFor(endpoint);
  absl::MutexLock lock(&stripe.mutex);
  DayDelta& delta = DeltaFor(stripe.pending, day);
  ++delta.totals[k];
  if (!row) return;
  ++delta.endpoints[base::Absl(endpoint)][k];
  if (options_.endpoint_metrics && KindInfo(*kind).billable) {
    AddSinceStart(stripe, endpoint, k, 1);
  }
}

void BillingCounters::Restore(std::vector<DayDelta> deltas) {
  for (DayDelta& delta : deltas) {
    // Totals first, into stripe 0; endpoint rows into their own stripes.
    {
      absl::MutexLock lock(&stripes_[0].mutex);
      Add(DeltaFor(stripes_[0].pending, delta.day).totals, delta.totals);
    }
    for (auto& [endpoint, counts] : delta.endpoints) {
      Stripe& stripe = StripeFor(endpoint);
      absl::MutexLock lock(&stripe.mutex);
      Add(DeltaFor(stripe.pending, delta.day).endpoints[endpoint], counts);
    }
  }
}

absl::Status BillingCounters::Flush() {
  absl::MutexLock flush_lock(&flush_mutex_);
  // Take every stripe's deltas, merged per day. Counting goes on into the emptied stripes.
  std::vector<DayDelta> taken;
  for (Stripe& stripe : stripes_) {
    std::vector<DayDelta> pending;
    {
      absl::MutexLock lock(&stripe.mutex);
      pending.swap(stripe.pending);
    }
    for (DayDelta& delta : pending) {
      DayDelta& into = DeltaFor(taken, delta.day);
      Add(into.totals, delta.totals);
      if (into.endpoints.empty()) {
        into.endpoints = std::move(delta.endpoints);
      } else {
        for (auto& [endpoint, counts] : delta.endpoints) Add(into.endpoints[endpoint], counts);
      }
    }
  }
  if (taken.empty()) return absl::OkStatus();

  // One row to write: its key, and where its delta goes back should the write fail.
  struct Row {
    std::string key;
    int64_t day;
    std::string endpoint;  // empty for the totals
    KindCounts delta;
  };
  std::vector<Row> rows;
  for (DayDelta& delta : taken) {
    const absl::CivilDay day = ToCivil(delta.day);
    // A day can hold only endpoint rows: those whose write failed last time, restored
    // without their (written) totals.
    if (!IsZero(delta.totals)) rows.push_back({CounterKey(day, ""), delta.day, "", delta.totals});
    for (auto& [endpoint, counts] : delta.endpoints) {
      rows.push_back({CounterKey(day, endpoint), delta.day, endpoint, counts});
    }
  }
  taken.clear();
  if (rows.empty()) return absl::OkStatus();
  last_flush_rows_.store(rows.size(), std::memory_order_relaxed);

  // Read-modify-write. Safe without a transaction spanning the read: this component is the
  // only writer of the counters table, flushes are serialised by flush_mutex_, and each flush
  // waits for its commits before the next one reads.
  const size_t batch_count = (rows.size() + kMaxPutsPerBatch - 1) / kMaxPutsPerBatch;
  // A row is written when it was read and its batch committed: a batch is atomic.
  std::vector<absl::Status> read_status(rows.size());
  std::vector<absl::Status> batch_status(batch_count);
  absl::BlockingCounter done(static_cast<int>(batch_count));
  for (size_t b = 0; b < batch_count; ++b) {
    const size_t first = b * kMaxPutsPerBatch;
    const size_t last = std::min(rows.size(), first + kMaxPutsPerBatch);
    store::WriteBatch batch;
    for (size_t i = first; i < last; ++i) {
      absl::StatusOr<std::optional<std::string>> stored =
          options_.store->Get(store::Table::kCounters, rows[i].key);
      absl::StatusOr<KindCounts> counts = !stored.ok()          ? stored.status()
                                          : stored->has_value() ? CountsFromJson(**stored)
                                                                : KindCounts{};
      if (!counts.ok()) {
        // This row waits for a later flush; the others go ahead.
        read_status[i] = counts.status();
        continue;
      }
      Add(*counts, rows[i].delta);
      batch.Put(store::Table::kCounters, rows[i].key, CountsToJson(*counts));
    }
    if (batch.empty()) {
      done.DecrementCount();
      continue;
    }
    options_.store->Submit(std::move(batch), [&batch_status, &done, b](absl::Status status) {
      batch_status[b] = std::move(status);
      done.DecrementCount();
    });
  }
  // The store runs every callback exactly once, also when stopping or after a fatal error.
  done.Wait();

  absl::Status first_error;
  std::vector<DayDelta> failed;
  size_t failed_rows = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const absl::Status& status =
        !read_status[i].ok() ? read_status[i] : batch_status[i / kMaxPutsPerBatch];
    if (status.ok()) continue;
    if (first_error.ok()) first_error = status;
    ++failed_rows;
    DayDelta& delta = DeltaFor(failed, rows[i].day);
    if (rows[i].endpoint.empty()) {
      Add(delta.totals, rows[i].delta);
    } else {
      Add(delta.endpoints[rows[i].endpoint], rows[i].delta);
    }
  }
  if (!failed.empty()) Restore(std::move(failed));
  if (!first_error.ok()) {
    if (!last_flush_failed_) {
      LWM2MD_LOG(kError, "billing: writing counters failed, %d rows kept for the next flush: %s",
                 static_cast<int>(failed_rows), first_error.message());
    }
    last_flush_failed_ = true;
    return first_error;
  }
  if (last_flush_failed_) LWM2MD_LOG(kInfo, "billing: counters written again");
  last_flush_failed_ = false;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DayCounts>> BillingCounters::Read(std::string_view endpoint,
                                                             absl::CivilDay from,
                                                             absl::CivilDay to) const {
  std::vector<DayCounts> days;
  if (to < from) return days;
  absl::ReaderMutexLock flush_lock(&flush_mutex_);
  const int64_t first = FromCivil(from);
  const int64_t last = FromCivil(to);
  for (int64_t day = first; day <= last; ++day) {
    absl::StatusOr<std::optional<std::string>> stored =
        options_.store->Get(store::Table::kCounters, CounterKey(ToCivil(day), endpoint));
    if (!stored.ok()) return stored.status();
    DayCounts counts{.day = ToCivil(day)};
    if (stored->has_value()) {
      absl::StatusOr<KindCounts> parsed = CountsFromJson(**stored);
      if (!parsed.ok()) return parsed.status();
      counts.counts = *parsed;
    }
    days.push_back(counts);
  }
  // No flush runs now, so every count not in the store is in a stripe.
  const bool totals = endpoint.empty();
  auto merge = [&](const Stripe& stripe) {
    absl::MutexLock lock(&stripe.mutex);
    for (const DayDelta& delta : stripe.pending) {
      if (delta.day < first || delta.day > last) continue;
      KindCounts& into = days[delta.day - first].counts;
      if (totals) {
        Add(into, delta.totals);
      } else if (auto it = delta.endpoints.find(base::Absl(endpoint));
                 it != delta.endpoints.end()) {
        Add(into, it->second);
      }
    }
  };
  if (totals) {
    for (const Stripe& stripe : stripes_) merge(stripe);
  } else {
    // A failed flush restores an endpoint's rows to its own stripe, like counting does.
    merge(StripeFor(endpoint));
  }
  days.erase(
      std::remove_if(days.begin(), days.end(), [](const DayCounts& d) { return IsZero(d.counts); }),
      days.end());
  return days;
}

KindCounts BillingCounters::CountedSinceStart() const {
  KindCounts counts{};
  for (int k = 0; k < kEventKindCount; ++k) {
    counts[k] = since_start_[k].load(std::memory_order_relaxed);
  }
  return counts;
}

void BillingCounters::VisitEndpointCounts(
    absl::FunctionRef<void(std::string_view endpoint, const KindCounts& counts)> visit) const {
  if (!options_.endpoint_metrics) return;
  std::vector<std::pair<std::string, BillableCounts>> copy;
  for (const Stripe& stripe : stripes_) {
    copy.clear();
    {
      absl::MutexLock lock(&stripe.mutex);
      copy.reserve(stripe.since_start.size() + stripe.since_start_wide.size());
      for (const TallyPtr& tally : stripe.since_start) {
        copy.emplace_back(std::string(tally->name()), tally->counts());
      }
      copy.insert(copy.end(), stripe.since_start_wide.begin(), stripe.since_start_wide.end());
    }
    for (const auto& [endpoint, billable] : copy) {
      KindCounts counts{};
      std::copy(billable.begin(), billable.end(), counts.begin());
      visit(endpoint, counts);
    }
  }
}

size_t BillingCounters::pending_rows() const {
  // Totals are kept per stripe but written as one row per day.
  absl::flat_hash_map<int64_t, bool> days_with_totals;
  size_t rows = 0;
  for (const Stripe& stripe : stripes_) {
    absl::MutexLock lock(&stripe.mutex);
    for (const DayDelta& delta : stripe.pending) {
      rows += delta.endpoints.size();
      if (!IsZero(delta.totals)) days_with_totals[delta.day] = true;
    }
  }
  return rows + days_with_totals.size();
}

}  // namespace lwm2md::lwm2m
