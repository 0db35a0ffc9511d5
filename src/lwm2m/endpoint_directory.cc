#include "lwm2m/endpoint_directory.h"

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
  stripe.entries.insert_or_assign(std::string(endpoint), std::move(entry));
}

bool EndpointDirectory::Modify(std::string_view endpoint,
                               const std::function<void(DirectoryEntry&)>& fn) {
  Stripe& stripe = StripeFor(endpoint);
  absl::MutexLock lock(&stripe.mutex);
  auto it = stripe.entries.find(base::Absl(endpoint));
  if (it == stripe.entries.end()) return false;
  fn(it->second);
  return true;
}

bool EndpointDirectory::Remove(std::string_view endpoint, std::string_view location) {
  Stripe& stripe = StripeFor(endpoint);
  absl::MutexLock lock(&stripe.mutex);
  auto it = stripe.entries.find(base::Absl(endpoint));
  if (it == stripe.entries.end() || it->second.location != location) return false;
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
  for (Stripe& stripe : stripes_) {
    absl::MutexLock lock(&stripe.mutex);
    for (const auto& [name, entry] : stripe.entries) ++counts[static_cast<int>(entry.presence)];
  }
  return counts;
}

}  // namespace lwm2md::lwm2m
