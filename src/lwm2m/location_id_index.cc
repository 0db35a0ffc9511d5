#include "lwm2m/location_id_index.h"

#include "absl/hash/hash.h"
#include "base/check.h"
#include "base/strings.h"

namespace lwm2md::lwm2m {

std::optional<uint64_t> LocationIdIndex::Pack(std::string_view id) {
  if (id.empty() || id.size() > kIdBits / 6) return std::nullopt;
  uint64_t packed = 0;
  for (char c : id) {
    uint64_t digit;
    if (c >= 'a' && c <= 'z') {
      digit = static_cast<uint64_t>(c - 'a') + 1;
    } else if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0') + 27;
    } else {
      return std::nullopt;
    }
    packed = (packed << 6) | digit;
  }
  return packed;
}

size_t LocationIdIndex::IdHash::operator()(uint64_t word) const {
  return absl::HashOf(word & kIdMask);
}

void LocationIdIndex::Put(std::string_view id, int shard) {
  LWM2MD_CHECK(shard >= 0 && shard <= UINT16_MAX);
  if (std::optional<uint64_t> packed = Pack(id)) {
    const uint64_t word = *packed | (static_cast<uint64_t>(shard) << kIdBits);
    // Erased first: a set does not replace an equal element, and the shard may differ.
    packed_.erase(word);
    packed_.insert(word);
    return;
  }
  other_.insert_or_assign(std::string(id), static_cast<uint16_t>(shard));
}

void LocationIdIndex::Erase(std::string_view id) {
  if (std::optional<uint64_t> packed = Pack(id)) {
    packed_.erase(*packed);
    return;
  }
  other_.erase(base::Absl(id));
}

std::optional<int> LocationIdIndex::Find(std::string_view id) const {
  if (std::optional<uint64_t> packed = Pack(id)) {
    auto it = packed_.find(*packed);
    if (it == packed_.end()) return std::nullopt;
    return static_cast<int>(*it >> kIdBits);
  }
  auto it = other_.find(base::Absl(id));
  if (it == other_.end()) return std::nullopt;
  return it->second;
}

}  // namespace lwm2md::lwm2m
