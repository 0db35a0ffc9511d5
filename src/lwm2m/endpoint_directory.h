#pragma once
// The endpoint directory: endpoint name → the shard that owns its registration, its current
// address and presence. The only index shared between shards (DESIGN.md "An endpoint
// directory"); the registration itself lives in its shard.
//
// Threads: any. Shards write on Register/Update/De-register/expiry/missing; the API reads.
// Striped mutexes keep writers on different endpoints from contending.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "net/peer_address.h"

namespace lwm2md::lwm2m {

// What an operator sees per endpoint (the reference: "Endpoints will show connected if the
// client is registered to the server").
enum class Presence : uint8_t {
  kOffline,    // not registered (never, de-registered, or lifetime expired)
  kConnected,  // registered and heard from within the missing timeout
  kMissing,    // registered, but silent for longer than its missing timeout
};
std::string_view PresenceName(Presence presence);  // "offline", "connected", "missing"

struct DirectoryEntry {
  int shard = 0;
  net::PeerAddress address;
  int listener = 0;      // the socket (net listen address index) the client talks to
  std::string location;  // the registration's /rd/<id>
  Presence presence = Presence::kOffline;
  absl::Time registered_at;
  absl::Time last_seen;
  uint32_t lifetime_seconds = 0;
  std::string version;
  std::string binding;
};

class EndpointDirectory {
 public:
  std::optional<DirectoryEntry> Lookup(std::string_view endpoint) const;
  // Inserts or replaces the entry (a new registration for the same name replaces the old).
  void Put(std::string_view endpoint, DirectoryEntry entry);
  // Applies fn to the entry if present; returns whether it was.
  bool Modify(std::string_view endpoint, const std::function<void(DirectoryEntry&)>& fn);
  // Removes the entry only if it still names this location, so that a late expiry of an old
  // registration cannot remove its replacement.
  bool Remove(std::string_view endpoint, std::string_view location);
  size_t size() const;
  // Counts per presence, for metrics: kept up to date by every change, so that a scrape
  // reads three counters instead of walking a million entries.
  std::array<uint64_t, 3> CountByPresence() const;

 private:
  static constexpr int kStripes = 32;
  // An entry as stored: one exact-size allocation holding the fixed fields and then the name,
  // location, version and binding text (defined in the .cc). A DirectoryEntry with its four
  // strings, plus a string key, costs about three times as much per endpoint, and a directory
  // holds every registered endpoint.
  class Record;
  struct RecordDeleter {
    void operator()(Record* record) const;
  };
  using RecordPtr = std::unique_ptr<Record, RecordDeleter>;
  // Keyed by the record's own name: the set is the map, without a second copy of the key.
  struct RecordHash {
    using is_transparent = void;
    size_t operator()(std::string_view name) const;
    size_t operator()(const RecordPtr& record) const;
  };
  struct RecordEq {
    using is_transparent = void;
    bool operator()(const RecordPtr& a, const RecordPtr& b) const;
    bool operator()(const RecordPtr& a, std::string_view b) const;
    bool operator()(std::string_view a, const RecordPtr& b) const;
  };
  struct Stripe {
    mutable absl::Mutex mutex;
    absl::flat_hash_set<RecordPtr, RecordHash, RecordEq> entries ABSL_GUARDED_BY(mutex);
  };
  Stripe& StripeFor(std::string_view endpoint) const;
  void Count(Presence presence, int64_t delta) {
    presence_counts_[static_cast<int>(presence)].fetch_add(delta, std::memory_order_relaxed);
  }

  mutable std::array<Stripe, kStripes> stripes_;
  std::array<std::atomic<int64_t>, 3> presence_counts_ = {};
};

}  // namespace lwm2md::lwm2m
