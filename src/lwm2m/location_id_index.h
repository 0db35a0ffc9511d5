#pragma once
// LocationIdIndex: registration location id (the <id> of /rd/<id>) → the shard that owns the
// registration, for an Update or De-register that arrives on another shard. Every registered
// device has an entry, so an entry is kept to one 64-bit word: ids as the server issues them
// (RegistrationService::NewId: 8 characters of [a-z0-9]) are packed into 48 bits beside the
// 16-bit shard. Other ids (from a store written by another id scheme) go to a plain map.
//
// Not thread-safe: RegistrationHub guards it with a mutex.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace lwm2md::lwm2m {

class LocationIdIndex {
 public:
  // Inserts or replaces id's shard (0 ≤ shard ≤ 65535).
  void Put(std::string_view id, int shard);
  void Erase(std::string_view id);
  std::optional<int> Find(std::string_view id) const;
  size_t size() const { return packed_.size() + other_.size(); }

  // The packed form of an id of 1 to 8 characters of [a-z0-9] (6 bits per character, none of
  // them 0, so that ids of different lengths differ); nullopt for any other id.
  static std::optional<uint64_t> Pack(std::string_view id);

 private:
  static constexpr int kIdBits = 48;
  static constexpr uint64_t kIdMask = (uint64_t{1} << kIdBits) - 1;
  // Hash and equality look at the id bits only: the shard rides along in the top 16.
  struct IdHash {
    size_t operator()(uint64_t word) const;
  };
  struct IdEq {
    bool operator()(uint64_t a, uint64_t b) const { return (a & kIdMask) == (b & kIdMask); }
  };
  absl::flat_hash_set<uint64_t, IdHash, IdEq> packed_;
  absl::flat_hash_map<std::string, uint16_t> other_;
};

}  // namespace lwm2md::lwm2m
