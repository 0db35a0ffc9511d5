#pragma once
// Interning of the Objects and Object Instances lists (ObjectLinks) that registrations hold.
// A fleet's devices mostly send the same few objects, so a registration keeps a shared,
// immutable list: a shard holds one copy per distinct list instead of one per device.
//
// Thread: a pool belongs to one shard (its RegistrationService). The lists it hands out are
// immutable, so they may travel with a registration to another shard: shared_ptr counts
// atomically, and the pool drops its own reference only to lists nobody else holds.

#include <cstddef>
#include <memory>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "lwm2m/registration_params.h"

namespace lwm2md::lwm2m {

// The list of a registration that has none yet (never null in a Registration).
const std::shared_ptr<const ObjectLinks>& EmptyObjectLinks();

class ObjectLinksPool {
 public:
  // The pooled list equal to *links, or links itself, pooled for the next one.
  std::shared_ptr<const ObjectLinks> Intern(std::shared_ptr<const ObjectLinks> links);
  std::shared_ptr<const ObjectLinks> Intern(ObjectLinks links) {
    return Intern(std::make_shared<const ObjectLinks>(std::move(links)));
  }
  // Distinct lists held (including ones no registration uses any more, until the next sweep).
  size_t size() const { return links_.size(); }

 private:
  // Lists that only the pool still holds are dropped once the pool has doubled since the
  // last sweep: amortised constant work per Intern, at most twice the lists in use.
  void Sweep();

  struct Hash {
    using is_transparent = void;
    size_t operator()(const std::shared_ptr<const ObjectLinks>& links) const {
      return absl::HashOf(*links);
    }
  };
  struct Eq {
    using is_transparent = void;
    bool operator()(const std::shared_ptr<const ObjectLinks>& a,
                    const std::shared_ptr<const ObjectLinks>& b) const {
      return a == b || *a == *b;
    }
  };
  static constexpr size_t kMinSweep = 64;

  absl::flat_hash_set<std::shared_ptr<const ObjectLinks>, Hash, Eq> links_;
  size_t sweep_at_ = kMinSweep;
};

}  // namespace lwm2md::lwm2m
