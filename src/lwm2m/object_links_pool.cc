#include "lwm2m/object_links_pool.h"

#include <algorithm>
#include <utility>

namespace lwm2md::lwm2m {

const std::shared_ptr<const ObjectLinks>& EmptyObjectLinks() {
  static const auto* const empty =
      new std::shared_ptr<const ObjectLinks>(std::make_shared<const ObjectLinks>());
  return *empty;
}

std::shared_ptr<const ObjectLinks> ObjectLinksPool::Intern(
    std::shared_ptr<const ObjectLinks> links) {
  if (auto it = links_.find(links); it != links_.end()) return *it;
  if (links_.size() >= sweep_at_) Sweep();
  links_.insert(links);
  return links;
}

void ObjectLinksPool::Sweep() {
  // use_count() == 1: the pool's reference is the only one, so no other thread can be
  // copying it while it goes.
  absl::erase_if(links_, [](const std::shared_ptr<const ObjectLinks>& links) {
    return links.use_count() == 1;
  });
  sweep_at_ = std::max(kMinSweep, 2 * links_.size());
}

}  // namespace lwm2md::lwm2m
