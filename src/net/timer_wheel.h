#pragma once
// Timers of one shard (CoAP retransmissions, exchange lifetimes, registration lifetimes).
// A hashed wheel: O(1) schedule and cancel, Advance walks only the slots that elapsed.
// Lives on one shard thread; not thread-safe.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/functional/any_invocable.h"

namespace lwm2md::net {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

class TimerWheel {
 public:
  using Id = uint64_t;  // never 0
  static constexpr Id kNoTimer = 0;

  // tick: the wheel's resolution; timers fire at or after their deadline, at most one tick
  // late. slots: a power of two; deadlines further than tick*slots away wrap (handled).
  explicit TimerWheel(TimePoint start, Duration tick = std::chrono::milliseconds(1),
                      size_t slots = 4096);
  ~TimerWheel();
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  Id Schedule(TimePoint deadline, absl::AnyInvocable<void()> callback);
  // True when the timer was pending and is now cancelled; false if it fired or is unknown.
  bool Cancel(Id id);
  // Fires every timer whose deadline is <= now, in deadline order within a tick; a
  // callback may schedule or cancel timers. Returns the number fired.
  size_t Advance(TimePoint now);
  // The earliest pending deadline (for the shard's wait timeout), or nullopt.
  std::optional<TimePoint> NextDeadline() const;
  size_t size() const { return live_; }

 private:
  struct Entry;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  size_t live_ = 0;
};

}  // namespace lwm2md::net
