#include "lwm2m/endpoint_directory.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "absl/hash/hash.h"
#include "base/check.h"
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

// Fixed fields first, then name, location, version and binding, back to back. Times are
// Unix nanoseconds (absl::Time to the nanosecond, which is what absl::Now gives); shard and
// listener indexes fit 16 bits (both are small configured counts). A location of the form
// "/rd/<id>", which is every registration's, is stored as its id.
class EndpointDirectory::Record {
 public:
  static RecordPtr Make(std::string_view name, const DirectoryEntry& entry) {
    const Sizes sizes = SizesOf(name, entry);
    void* memory = ::operator new(sizeof(Record) + sizes.Total());
    auto* record = new (memory) Record();
    record->Assign(sizes, name, entry);
    return RecordPtr(record);
  }
  static void Free(Record* record) {
    record->~Record();
    ::operator delete(record);
  }

  std::string_view name() const { return {text(), sizes_.name}; }
  Presence presence() const { return presence_; }
  bool HasLocation(std::string_view location) const {
    if (rd_prefix_) {
      if (!location.starts_with(kRdPrefix)) return false;
      location.remove_prefix(kRdPrefix.size());
    }
    return location == Text(sizes_.name, sizes_.location);
  }

  DirectoryEntry ToEntry() const {
    DirectoryEntry entry;
    entry.shard = shard_;
    entry.address = address_;
    entry.listener = listener_;
    const std::string_view location = Text(sizes_.name, sizes_.location);
    if (rd_prefix_) entry.location.append(kRdPrefix);
    entry.location.append(location);
    entry.presence = presence_;
    entry.registered_at = absl::FromUnixNanos(registered_at_ns_);
    entry.last_seen = absl::FromUnixNanos(last_seen_ns_);
    entry.lifetime_seconds = lifetime_seconds_;
    size_t at = sizes_.name + sizes_.location;
    entry.version = std::string(Text(at, sizes_.version));
    at += sizes_.version;
    entry.binding = std::string(Text(at, sizes_.binding));
    return entry;
  }

  // Rewrites the record in place when the text still fits exactly; otherwise a new one is
  // needed (returns false, record unchanged).
  bool Overwrite(const DirectoryEntry& entry) {
    const std::string name_copy(name());  // Assign rewrites the text the name lives in
    const Sizes sizes = SizesOf(name_copy, entry);
    if (sizes.Total() != sizes_.Total()) return false;
    Assign(sizes, name_copy, entry);
    return true;
  }

 private:
  static constexpr std::string_view kRdPrefix = "/rd/";
  struct Sizes {
    uint16_t name = 0;
    uint16_t location = 0;
    uint16_t version = 0;
    uint16_t binding = 0;
    size_t Total() const { return size_t{name} + location + version + binding; }
  };
  static uint16_t Size16(size_t size) {
    // Names are at most 255 bytes (validated at Register); the other strings are short.
    LWM2MD_CHECK(size <= UINT16_MAX);
    return static_cast<uint16_t>(size);
  }
  static std::string_view StoredLocation(std::string_view location) {
    return location.starts_with(kRdPrefix) ? location.substr(kRdPrefix.size()) : location;
  }
  static Sizes SizesOf(std::string_view name, const DirectoryEntry& entry) {
    return {Size16(name.size()), Size16(StoredLocation(entry.location).size()),
            Size16(entry.version.size()), Size16(entry.binding.size())};
  }
  void Assign(const Sizes& sizes, std::string_view name, const DirectoryEntry& entry) {
    LWM2MD_CHECK(entry.shard >= 0 && entry.shard <= UINT16_MAX);
    LWM2MD_CHECK(entry.listener >= 0 && entry.listener <= UINT16_MAX);
    address_ = entry.address;
    lifetime_seconds_ = entry.lifetime_seconds;
    registered_at_ns_ = absl::ToUnixNanos(entry.registered_at);
    last_seen_ns_ = absl::ToUnixNanos(entry.last_seen);
    shard_ = static_cast<uint16_t>(entry.shard);
    listener_ = static_cast<uint16_t>(entry.listener);
    sizes_ = sizes;
    presence_ = entry.presence;
    rd_prefix_ = entry.location.starts_with(kRdPrefix);
    char* out = text();
    for (std::string_view part :
         {name, StoredLocation(entry.location), std::string_view(entry.version),
          std::string_view(entry.binding)}) {
      if (!part.empty()) std::memcpy(out, part.data(), part.size());
      out += part.size();
    }
  }
  char* text() { return reinterpret_cast<char*>(this + 1); }
  const char* text() const { return reinterpret_cast<const char*>(this + 1); }
  std::string_view Text(size_t at, size_t size) const { return {text() + at, size}; }

  net::PeerAddress address_;
  uint32_t lifetime_seconds_ = 0;
  int64_t registered_at_ns_ = 0;
  int64_t last_seen_ns_ = 0;
  uint16_t shard_ = 0;
  uint16_t listener_ = 0;
  Sizes sizes_;
  Presence presence_ = Presence::kOffline;
  bool rd_prefix_ = false;
};

void EndpointDirectory::RecordDeleter::operator()(Record* record) const { Record::Free(record); }

size_t EndpointDirectory::RecordHash::operator()(std::string_view name) const {
  return absl::HashOf(base::Absl(name));
}
size_t EndpointDirectory::RecordHash::operator()(const RecordPtr& record) const {
  return (*this)(record->name());
}
bool EndpointDirectory::RecordEq::operator()(const RecordPtr& a, const RecordPtr& b) const {
  return a->name() == b->name();
}
bool EndpointDirectory::RecordEq::operator()(const RecordPtr& a, std::string_view b) const {
  return a->name() == b;
}
bool EndpointDirectory::RecordEq::operator()(std::string_view a, const RecordPtr& b) const {
  return a == b->name();
}

EndpointDirectory::Stripe& EndpointDirectory::StripeFor(std::string_view endpoint) const {
  const size_t hash = absl::Hash<absl::string_view>()(base::Absl(endpoint));
  return stripes_[hash % kStripes];
}

std::optional<DirectoryEntry> EndpointDirectory::Lookup(std::string_view endpoint) const {
  Stripe& stripe = StripeFor(endpoint);
  absl::MutexLock lock(&stripe.mutex);
  auto it = stripe.entries.find(endpoint);
  if (it == stripe.entries.end()) return std::nullopt;
  return (*it)->ToEntry();
}

void EndpointDirectory::Put(std::string_view endpoint, DirectoryEntry entry) {
  RecordPtr record = Record::Make(endpoint, entry);
  Stripe& stripe = StripeFor(endpoint);
  absl::MutexLock lock(&stripe.mutex);
  Count(entry.presence, 1);
  auto it = stripe.entries.find(endpoint);
  if (it != stripe.entries.end()) {
    Count((*it)->presence(), -1);
    stripe.entries.erase(it);
  }
  stripe.entries.insert(std::move(record));
}

bool EndpointDirectory::Modify(std::string_view endpoint,
                               const std::function<void(DirectoryEntry&)>& fn) {
  Stripe& stripe = StripeFor(endpoint);
  absl::MutexLock lock(&stripe.mutex);
  auto it = stripe.entries.find(endpoint);
  if (it == stripe.entries.end()) return false;
  const Presence before = (*it)->presence();
  DirectoryEntry entry = (*it)->ToEntry();
  fn(entry);
  if (!(*it)->Overwrite(entry)) {
    // The set's elements are const for the sake of their hash; the replacement has the same
    // name, so the hash and the slot stay right.
    const_cast<RecordPtr&>(*it) = Record::Make((*it)->name(), entry);
  }
  if (entry.presence != before) {
    Count(before, -1);
    Count(entry.presence, 1);
  }
  return true;
}

bool EndpointDirectory::Remove(std::string_view endpoint, std::string_view location) {
  Stripe& stripe = StripeFor(endpoint);
  absl::MutexLock lock(&stripe.mutex);
  auto it = stripe.entries.find(endpoint);
  if (it == stripe.entries.end() || !(*it)->HasLocation(location)) return false;
  Count((*it)->presence(), -1);
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
