#include "net/timer_wheel.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <utility>

#include "base/check.h"

namespace lwm2md::net {
namespace {

constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();
// Entries are allocated in chunks so that their addresses stay put while the pool grows
// (a callback may schedule while another entry's fields are being read).
constexpr uint32_t kChunkShift = 8;
constexpr uint32_t kChunkSize = 1u << kChunkShift;

enum class State : uint8_t { kFree, kScheduled, kDue };

}  // namespace

// Two levels: level 0 holds timers less than one revolution (slots ticks) ahead, one slot
// per tick; level 1 holds later timers, one bucket per revolution, and a bucket is moved
// ("cascaded") into level 0 when its revolution begins. A level-0 slot therefore only ever
// holds timers of a single tick, so Advance never walks timers that are not due yet, and
// each timer is moved at most once per slots*slots ticks (4.6 hours with the defaults).
struct TimerWheel::Entry {
  TimePoint deadline;
  int64_t tick = 0;       // the tick whose Advance fires it (floor of the deadline, or later)
  uint64_t sequence = 0;  // schedule order: equal deadlines fire first-in first-out
  uint32_t prev = kNil;
  uint32_t next = kNil;     // also links the free list
  uint32_t generation = 0;  // bumped on release, so a stale Id never matches a reused entry
  uint32_t bucket = 0;
  uint8_t level = 0;
  State state = State::kFree;
  absl::AnyInvocable<void()> callback;
};

struct TimerWheel::Impl {
  struct Due {
    TimePoint deadline;
    uint64_t sequence;
    uint32_t index;
    uint32_t generation;
  };

  Impl(TimePoint start_time, Duration tick_length, size_t slot_count, size_t& live_count)
      : start(start_time),
        tick(tick_length),
        slots(static_cast<uint32_t>(slot_count)),
        mask(static_cast<uint32_t>(slot_count - 1)),
        shift(std::countr_zero(static_cast<uint32_t>(slot_count))),
        live(live_count) {
    for (int level = 0; level < 2; ++level) {
      heads[level].assign(slots, kNil);
      bitmap[level].assign((slots + 63) / 64, 0);
    }
  }

  Entry& at(uint32_t index) { return chunks[index >> kChunkShift][index & (kChunkSize - 1)]; }
  const Entry& at(uint32_t index) const {
    return chunks[index >> kChunkShift][index & (kChunkSize - 1)];
  }

  int64_t TickOf(TimePoint t) const {
    if (t < start) return -1;
    return (t - start) / tick;
  }
  // When Advance can fire the entry: its deadline, or the start of the tick it was pushed
  // to when scheduled in the past.
  TimePoint Effective(const Entry& e) const { return std::max(e.deadline, start + e.tick * tick); }

  void SetBit(int level, uint32_t position) {
    bitmap[level][position >> 6] |= uint64_t{1} << (position & 63);
  }
  void ClearBit(int level, uint32_t position) {
    bitmap[level][position >> 6] &= ~(uint64_t{1} << (position & 63));
  }
  bool TestBit(int level, uint32_t position) const {
    return (bitmap[level][position >> 6] >> (position & 63)) & 1;
  }

  // Calls f(position, offset) for each non-empty bucket of a level, in ring order starting
  // at start_position, until f returns true.
  template <typename F>
  void ForEachNonEmpty(int level, uint32_t start_position, F f) const {
    uint32_t offset = 0;
    while (offset < slots) {
      uint32_t position = (start_position + offset) & mask;
      uint32_t span = std::min({64 - (position & 63), slots - position, slots - offset});
      uint64_t word = bitmap[level][position >> 6] >> (position & 63);
      if (span < 64) word &= (uint64_t{1} << span) - 1;
      if (word == 0) {
        offset += span;
        continue;
      }
      offset += std::countr_zero(word);
      if (f((start_position + offset) & mask, offset)) return;
      ++offset;
    }
  }

  uint32_t Allocate() {
    if (free_head == kNil) {
      LWM2MD_CHECK(chunks.size() < (kNil >> kChunkShift));
      uint32_t base = static_cast<uint32_t>(chunks.size()) << kChunkShift;
      chunks.push_back(std::make_unique<Entry[]>(kChunkSize));
      for (uint32_t i = kChunkSize; i-- > 0;) {
        chunks.back()[i].next = free_head;
        free_head = base + i;
      }
    }
    uint32_t index = free_head;
    free_head = at(index).next;
    return index;
  }

  // Returns the callback so the caller destroys it after the wheel is consistent again: its
  // captures' destructors may call back into the wheel.
  absl::AnyInvocable<void()> Release(uint32_t index) {
    Entry& e = at(index);
    if (cache_valid && cache && Effective(e) == *cache) cache_valid = false;
    absl::AnyInvocable<void()> callback = std::move(e.callback);
    e.callback = nullptr;
    e.state = State::kFree;
    ++e.generation;
    e.prev = kNil;
    e.next = free_head;
    free_head = index;
    --live;
    return callback;
  }

  void Place(uint32_t index) {
    Entry& e = at(index);
    if (e.tick - current < static_cast<int64_t>(slots)) {
      e.level = 0;
      e.bucket = static_cast<uint32_t>(e.tick) & mask;
      if (e.tick == current) current_slot_min = std::min(current_slot_min, e.deadline);
    } else {
      e.level = 1;
      e.bucket = static_cast<uint32_t>(e.tick >> shift) & mask;
    }
    uint32_t& head = heads[e.level][e.bucket];
    e.prev = kNil;
    e.next = head;
    if (head != kNil) at(head).prev = index;
    head = index;
    SetBit(e.level, e.bucket);
  }

  void Unlink(uint32_t index) {
    Entry& e = at(index);
    if (e.prev != kNil) {
      at(e.prev).next = e.next;
    } else {
      heads[e.level][e.bucket] = e.next;
    }
    if (e.next != kNil) at(e.next).prev = e.prev;
    if (heads[e.level][e.bucket] == kNil) ClearBit(e.level, e.bucket);
    e.prev = e.next = kNil;
  }

  // Moves the level-1 timers of a revolution that has just begun into level 0.
  void Cascade(int64_t revolution) {
    cascaded_revolution = revolution;
    uint32_t bucket = static_cast<uint32_t>(revolution) & mask;
    for (uint32_t index = heads[1][bucket]; index != kNil;) {
      uint32_t next = at(index).next;
      if ((at(index).tick >> shift) == revolution) {
        Unlink(index);
        Place(index);
      }
      index = next;
    }
  }

  void MarkDue(uint32_t index) {
    Entry& e = at(index);
    e.state = State::kDue;
    due.push_back(Due{e.deadline, e.sequence, index, e.generation});
  }

  // Moves the due timers of the level-0 slot of tick t to `due`, and records the earliest
  // deadline of those left (same tick, deadline later than now).
  void CollectDue(int64_t t, TimePoint now) {
    current_slot_min = TimePoint::max();
    uint32_t slot = static_cast<uint32_t>(t) & mask;
    for (uint32_t index = heads[0][slot]; index != kNil;) {
      Entry& e = at(index);
      uint32_t next = e.next;
      LWM2MD_DCHECK(e.tick == t);
      if (e.deadline <= now) {
        Unlink(index);
        MarkDue(index);
      } else {
        current_slot_min = std::min(current_slot_min, e.deadline);
      }
      index = next;
    }
  }

  size_t FireDue(int64_t t) {
    if (due.size() > 1) {
      std::sort(due.begin(), due.end(), [](const Due& a, const Due& b) {
        return a.deadline != b.deadline ? a.deadline < b.deadline : a.sequence < b.sequence;
      });
    }
    scan_tick = t;
    size_t fired = 0;
    for (const Due& d : due) {
      Entry& e = at(d.index);
      // Cancelled by an earlier callback of the same batch.
      if (e.state != State::kDue || e.generation != d.generation) continue;
      absl::AnyInvocable<void()> callback = Release(d.index);
      ++fired;
      callback();
    }
    due.clear();
    return fired;
  }

  // After a pause longer than a revolution, walking tick by tick would cost more than looking
  // at every timer once, and level-1 buckets of several revolutions would be due together.
  size_t AdvanceFar(TimePoint now, int64_t target) {
    advancing = true;
    gathered.clear();
    for (int level = 0; level < 2; ++level) {
      for (uint32_t bucket = 0; bucket < slots; ++bucket) {
        for (uint32_t index = heads[level][bucket]; index != kNil; index = at(index).next) {
          gathered.push_back(index);
        }
        heads[level][bucket] = kNil;
      }
      std::fill(bitmap[level].begin(), bitmap[level].end(), 0);
    }
    current = target;
    cascaded_revolution = target >> shift;
    current_slot_min = TimePoint::max();
    for (uint32_t index : gathered) {
      Entry& e = at(index);
      e.prev = e.next = kNil;
      if (e.tick < target || (e.tick == target && e.deadline <= now)) {
        MarkDue(index);
      } else {
        Place(index);
      }
    }
    size_t fired = FireDue(target);
    advancing = false;
    return fired;
  }

  const TimePoint start;
  const Duration tick;
  const uint32_t slots;
  const uint32_t mask;
  const int shift;
  size_t& live;

  // Every timer of a tick before `current` has fired; level 0 holds ticks
  // [current, current + slots).
  int64_t current = 0;
  int64_t cascaded_revolution = 0;
  // Earliest deadline among the timers of tick `current`; Advance skips rescanning that
  // slot while now is earlier (the shard calls Advance far more often than once a tick).
  TimePoint current_slot_min = TimePoint::min();
  bool advancing = false;
  int64_t scan_tick = 0;  // the tick being fired while advancing

  std::vector<uint32_t> heads[2];
  std::vector<uint64_t> bitmap[2];  // bit set = bucket non-empty
  std::vector<std::unique_ptr<Entry[]>> chunks;
  uint32_t free_head = kNil;
  uint64_t next_sequence = 1;
  std::vector<Due> due;
  std::vector<uint32_t> gathered;  // AdvanceFar's scratch

  // NextDeadline's answer, kept exact on Schedule and dropped when the timer it names goes.
  mutable bool cache_valid = true;
  mutable std::optional<TimePoint> cache;
};

TimerWheel::TimerWheel(TimePoint start, Duration tick, size_t slots) {
  LWM2MD_CHECK(tick > Duration::zero());
  LWM2MD_CHECK(slots >= 1 && slots <= (size_t{1} << 24) && std::has_single_bit(slots));
  impl_ = std::make_unique<Impl>(start, tick, slots, live_);
}

TimerWheel::~TimerWheel() = default;

TimerWheel::Id TimerWheel::Schedule(TimePoint deadline, absl::AnyInvocable<void()> callback) {
  Impl& w = *impl_;
  uint32_t index = w.Allocate();
  Entry& e = w.at(index);
  e.deadline = deadline;
  e.sequence = w.next_sequence++;
  e.callback = std::move(callback);
  e.state = State::kScheduled;
  // A timer already due goes to the earliest tick Advance will still look at; while
  // advancing that is the next tick, so a callback that re-arms itself for "now" cannot
  // keep one Advance call running forever.
  int64_t earliest = w.advancing ? w.scan_tick + 1 : w.current;
  e.tick = std::max(w.TickOf(deadline), earliest);
  w.Place(index);
  ++live_;
  if (w.cache_valid && (!w.cache || w.Effective(e) < *w.cache)) w.cache = w.Effective(e);
  return (uint64_t{e.generation} << 32) | (uint64_t{index} + 1);
}

bool TimerWheel::Cancel(Id id) {
  Impl& w = *impl_;
  uint64_t low = id & 0xffffffffu;
  if (low == 0 || ((low - 1) >> kChunkShift) >= w.chunks.size()) return false;
  uint32_t index = static_cast<uint32_t>(low - 1);
  Entry& e = w.at(index);
  if (e.state == State::kFree || e.generation != static_cast<uint32_t>(id >> 32)) return false;
  if (e.state == State::kScheduled) w.Unlink(index);
  // Destroyed on return, once the wheel is consistent again.
  absl::AnyInvocable<void()> callback = w.Release(index);
  return true;
}

size_t TimerWheel::Advance(TimePoint now) {
  Impl& w = *impl_;
  LWM2MD_DCHECK(!w.advancing);
  int64_t target = std::max(w.TickOf(now), w.current);
  if (target - w.current >= static_cast<int64_t>(w.slots)) return w.AdvanceFar(now, target);
  w.advancing = true;
  size_t fired = 0;
  for (int64_t t = w.current; t <= target; ++t) {
    if (t != w.current) {
      w.current = t;
      w.current_slot_min = TimePoint::min();
    }
    if ((t & w.mask) == 0 && (t >> w.shift) != w.cascaded_revolution) w.Cascade(t >> w.shift);
    if (!w.TestBit(0, static_cast<uint32_t>(t) & w.mask)) {
      w.current_slot_min = TimePoint::max();
      continue;
    }
    if (now < w.current_slot_min) continue;
    w.CollectDue(t, now);
    fired += w.FireDue(t);
  }
  w.advancing = false;
  return fired;
}

std::optional<TimePoint> TimerWheel::NextDeadline() const {
  const Impl& w = *impl_;
  if (live_ == 0) return std::nullopt;
  if (w.cache_valid) return w.cache;
  std::optional<TimePoint> best;
  auto consider = [&](uint32_t level, uint32_t bucket) {
    for (uint32_t index = w.heads[level][bucket]; index != kNil;) {
      const Entry& e = w.at(index);
      TimePoint effective = w.Effective(e);
      if (!best || effective < *best) best = effective;
      index = e.next;
    }
  };
  // A level-0 slot holds a single tick, and level 0 holds the nearest ticks: the first
  // non-empty slot from the current tick on holds the earliest timer.
  bool found = false;
  w.ForEachNonEmpty(0, static_cast<uint32_t>(w.current) & w.mask, [&](uint32_t slot, uint32_t) {
    consider(0, slot);
    found = true;
    return true;
  });
  if (!found) {
    // Level 1 buckets in revolution order; a bucket may also hold timers of revolutions a
    // multiple of slots later, so the first bucket holding its own revolution ends the
    // search (and a full ring without one means every timer was looked at).
    int64_t first = (w.current >> w.shift) + 1;
    w.ForEachNonEmpty(1, static_cast<uint32_t>(first) & w.mask,
                      [&](uint32_t bucket, uint32_t offset) {
                        consider(1, bucket);
                        for (uint32_t index = w.heads[1][bucket]; index != kNil;) {
                          const Entry& e = w.at(index);
                          if ((e.tick >> w.shift) == first + offset) return true;
                          index = e.next;
                        }
                        return false;
                      });
  }
  w.cache = best;
  w.cache_valid = true;
  return best;
}

}  // namespace lwm2md::net
