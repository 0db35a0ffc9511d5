#include "lwm2m/endpoint_directory.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "base/strings.h"

namespace lwm2md::lwm2m {

std::string_view PresenceName(Presence presence) {
  switch (presence) {
    case Presence::kOffline: return "offline";
    case Presence::kConnected: return "connected";
    case Presence::kMissing: return "missing";
  }
  return "offline";
}

EndpointDirectory::Stripe& EndpointDirectory::StripeFor(std::string_view endpoint) const {
  const size_t hash = absl::Hash<absl::string_view>()(base::Absl(endpoint));
  return stripes_[hash % kStripes];
}

std::optional<DirectoryEntry> EndpointDirectory::Lookup(std::string_view endpoint) const {
  Stripe& stripe = StripeFor(endpoint);
  absl::MutexLock lock(&stripe.mutex);
  auto it = stripe.entries.find(base::Absl(endpoint));
  if (it == stripe.entries.end()) return std::nullopt;
  return it->second;
}

void EndpointDirectory::Put(std::string_view endpoint, DirectoryEntry entry) {
  Stripe& stripe = StripeFor(endpoint);
  absl::MutexLock lock(&stripe.mutex);
  Count(entry.presence, 1);
  // try_emplace leaves entry untouched when the name is present.
  auto [it, inserted] = stripe.entries.try_emplace(std::string(endpoint), std::move(entry));
  if (!inserted) {
    Count(it->second.presence, -1);
    it->second = std::move(entry);
  }
}

bool EndpointDirectory::Modify(std::string_view endpoint,
                               const std::function<void(DirectoryEntry&)>& fn) {
  Stripe& stripe = StripeFor(endpoint);
  absl::MutexLock lock(&stripe.mutex);
  auto it = stripe.entries.find(base::Absl(endpoint));
  if (it == stripe.entries.end()) return false;
  const Presence before = it->second.presence;
  fn(it->second);
  if (it->second.presence != before) {
    Count(before, -1);
    Count(it->second.presence, 1);
  }
  return true;
}

bool EndpointDirectory::Remove(std::string_view endpoint, std::string_view location) {
  Stripe& stripe = StripeFor(endpoint);
  absl::MutexLock lock(&stripe.mutex);
  auto it = stripe.entries.find(base::Absl(endpoint));
  if (it == stripe.entries.end() || it->second.location != location) return false;
  Count(it->second.presence, -1);
  stripe.entries.erase(it);
  return true;
}

size_t EndpointDirectory::size() const {
  size_t total = 0;
  for (Stripe& stripe : stripes_) {
    absl::MutexLock lock(&stripe.mutex);
    total += stripe.entries.size();
  }
  return total;
}

std::array<uint64_t, 3> EndpointDirectory::CountByPresence() const {
  std::array<uint64_t, 3> counts = {};
  for (size_t i = 0; i < counts.size(); ++i) {
    counts[i] = static_cast<uint64_t>(
        std::max<int64_t>(presence_counts_[i].load(std::memory_order_relaxed), 0));
  }
  return counts;
}

}  // namespace lwm2md::lwm2m
