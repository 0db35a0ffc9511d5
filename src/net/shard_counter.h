#pragma once
// A counter written by one shard thread and read by the metrics scraper on another.
// Single writer, so an increment is a relaxed load and store (no locked instruction on
// the packet path); readers see a value that is at most a few increments old.

#include <atomic>
#include <cstdint>

namespace lwm2md::net {

class ShardCounter {
 public:
  void Add(uint64_t n = 1) { value_.store(value_.load(std::memory_order_relaxed) + n,
                                          std::memory_order_relaxed); }
  void Set(uint64_t v) { value_.store(v, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

}  // namespace lwm2md::net
