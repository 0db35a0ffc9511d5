#include "net/timer_wheel.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lwm2md::net {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::ElementsAre;

// A fixed origin far from the clock's epoch, so that arithmetic before it stays valid.
const TimePoint kStart = TimePoint() + hours(1000);

TEST(TimerWheelTest, EmptyWheel) {
  TimerWheel wheel(kStart);
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
  EXPECT_EQ(wheel.Advance(kStart + seconds(10)), 0u);
  EXPECT_FALSE(wheel.Cancel(TimerWheel::kNoTimer));
  EXPECT_FALSE(wheel.Cancel(12345));
}

TEST(TimerWheelTest, FiresInDeadlineOrder) {
  TimerWheel wheel(kStart);
  std::vector<int> fired;
  // Same tick (1 ms) but different deadlines, scheduled out of order; equal deadlines keep
  // schedule order.
  wheel.Schedule(kStart + microseconds(5700), [&] { fired.push_back(3); });
  wheel.Schedule(kStart + microseconds(5200), [&] { fired.push_back(1); });
  wheel.Schedule(kStart + microseconds(5500), [&] { fired.push_back(2); });
  wheel.Schedule(kStart + microseconds(5700), [&] { fired.push_back(4); });
  wheel.Schedule(kStart + milliseconds(2), [&] { fired.push_back(0); });
  wheel.Schedule(kStart + milliseconds(9), [&] { fired.push_back(5); });
  EXPECT_EQ(wheel.size(), 6u);
  EXPECT_EQ(wheel.NextDeadline(), kStart + milliseconds(2));

  EXPECT_EQ(wheel.Advance(kStart + microseconds(1999)), 0u);
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(2)), 1u);
  EXPECT_THAT(fired, ElementsAre(0));
  EXPECT_EQ(wheel.NextDeadline(), kStart + microseconds(5200));
  // Within the tick, only what is due fires.
  EXPECT_EQ(wheel.Advance(kStart + microseconds(5500)), 2u);
  EXPECT_THAT(fired, ElementsAre(0, 1, 2));
  EXPECT_EQ(wheel.NextDeadline(), kStart + microseconds(5700));
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(20)), 3u);
  EXPECT_THAT(fired, ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
}

TEST(TimerWheelTest, DeadlineInThePastFiresOnNextAdvance) {
  TimerWheel wheel(kStart);
  wheel.Advance(kStart + milliseconds(100));
  int fired = 0;
  wheel.Schedule(kStart + milliseconds(50), [&] { ++fired; });
  wheel.Schedule(kStart - seconds(1), [&] { ++fired; });
  ASSERT_TRUE(wheel.NextDeadline().has_value());
  EXPECT_LE(*wheel.NextDeadline(), kStart + milliseconds(100));
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(100)), 2u);
  EXPECT_EQ(fired, 2);
}

TEST(TimerWheelTest, Cancel) {
  TimerWheel wheel(kStart);
  int fired = 0;
  TimerWheel::Id a = wheel.Schedule(kStart + milliseconds(10), [&] { fired += 1; });
  TimerWheel::Id b = wheel.Schedule(kStart + milliseconds(20), [&] { fired += 10; });
  TimerWheel::Id far = wheel.Schedule(kStart + hours(30), [&] { fired += 100; });
  EXPECT_NE(a, TimerWheel::kNoTimer);
  EXPECT_NE(a, b);
  EXPECT_EQ(wheel.NextDeadline(), kStart + milliseconds(10));
  EXPECT_TRUE(wheel.Cancel(a));
  EXPECT_FALSE(wheel.Cancel(a));
  EXPECT_EQ(wheel.NextDeadline(), kStart + milliseconds(20));
  EXPECT_TRUE(wheel.Cancel(far));
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_EQ(wheel.Advance(kStart + hours(40)), 1u);
  EXPECT_EQ(fired, 10);
  EXPECT_FALSE(wheel.Cancel(b));  // already fired
}

TEST(TimerWheelTest, StaleIdDoesNotCancelReusedEntry) {
  TimerWheel wheel(kStart);
  TimerWheel::Id old_id = wheel.Schedule(kStart + milliseconds(1), [] {});
  EXPECT_TRUE(wheel.Cancel(old_id));
  bool fired = false;
  TimerWheel::Id new_id = wheel.Schedule(kStart + milliseconds(1), [&] { fired = true; });
  EXPECT_NE(old_id, new_id);
  EXPECT_FALSE(wheel.Cancel(old_id));
  wheel.Advance(kStart + milliseconds(1));
  EXPECT_TRUE(fired);
}

TEST(TimerWheelTest, CallbackReschedulesItself) {
  TimerWheel wheel(kStart);
  int fired = 0;
  std::function<void()> tick = [&] {
    ++fired;
    if (fired < 5) wheel.Schedule(kStart + milliseconds(10 * (fired + 1)), tick);
  };
  wheel.Schedule(kStart + milliseconds(10), tick);
  // One long Advance fires the whole chain: each re-arm lands on a later tick of the span.
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(100)), 5u);
  EXPECT_EQ(fired, 5);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, CallbackReschedulingForNowDoesNotSpin) {
  TimerWheel wheel(kStart);
  int fired = 0;
  std::function<void()> again = [&] {
    ++fired;
    wheel.Schedule(kStart, again);  // always already due
  };
  wheel.Schedule(kStart + milliseconds(5), again);
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(5)), 1u);
  // The re-armed timer waits for the next tick rather than looping within this call.
  ASSERT_TRUE(wheel.NextDeadline().has_value());
  EXPECT_EQ(*wheel.NextDeadline(), kStart + milliseconds(6));
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(5)), 0u);
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(6)), 1u);
  EXPECT_EQ(fired, 2);
}

TEST(TimerWheelTest, CallbackCancelsAnotherDueTimer) {
  TimerWheel wheel(kStart);
  std::vector<int> fired;
  TimerWheel::Id second = 0;
  wheel.Schedule(kStart + microseconds(100), [&] {
    fired.push_back(1);
    EXPECT_TRUE(wheel.Cancel(second));
  });
  second = wheel.Schedule(kStart + microseconds(200), [&] { fired.push_back(2); });
  wheel.Schedule(kStart + microseconds(300), [&] { fired.push_back(3); });
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(1)), 2u);
  EXPECT_THAT(fired, ElementsAre(1, 3));
}

TEST(TimerWheelTest, CallbackCancelsItself) {
  TimerWheel wheel(kStart);
  TimerWheel::Id id = 0;
  bool cancelled = true;
  id = wheel.Schedule(kStart + milliseconds(1), [&] { cancelled = wheel.Cancel(id); });
  wheel.Advance(kStart + milliseconds(1));
  EXPECT_FALSE(cancelled);
}

TEST(TimerWheelTest, FarDeadlinesBeyondOneRevolution) {
  // 16 slots of 1 ms: a revolution is 16 ms, level 1 covers 256 ms.
  TimerWheel wheel(kStart, milliseconds(1), 16);
  std::vector<int> fired;
  wheel.Schedule(kStart + milliseconds(1000), [&] { fired.push_back(1000); });
  wheel.Schedule(kStart + milliseconds(40), [&] { fired.push_back(40); });
  wheel.Schedule(kStart + milliseconds(17), [&] { fired.push_back(17); });
  wheel.Schedule(kStart + milliseconds(300), [&] { fired.push_back(300); });
  wheel.Schedule(kStart + milliseconds(33), [&] { fired.push_back(33); });
  EXPECT_EQ(wheel.NextDeadline(), kStart + milliseconds(17));
  // Step in small increments so every revolution boundary is crossed one tick at a time.
  for (int ms = 0; ms <= 1100; ms += 3) {
    wheel.Advance(kStart + milliseconds(ms));
    if (ms == 30) {
      EXPECT_THAT(fired, ElementsAre(17));
      EXPECT_EQ(wheel.NextDeadline(), kStart + milliseconds(33));
    }
    if (ms == 42) {
      EXPECT_EQ(wheel.NextDeadline(), kStart + milliseconds(300));
    }
    if (ms == 310) {
      EXPECT_EQ(wheel.NextDeadline(), kStart + milliseconds(1000));
    }
  }
  EXPECT_THAT(fired, ElementsAre(17, 33, 40, 300, 1000));
}

TEST(TimerWheelTest, LongPauseFiresEverythingInOrder) {
  TimerWheel wheel(kStart, milliseconds(1), 16);
  std::vector<int> fired;
  for (int ms : {500, 3, 70, 20, 1000, 5000}) {
    wheel.Schedule(kStart + milliseconds(ms), [&fired, ms] { fired.push_back(ms); });
  }
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(1000)), 5u);
  EXPECT_THAT(fired, ElementsAre(3, 20, 70, 500, 1000));
  EXPECT_EQ(wheel.NextDeadline(), kStart + milliseconds(5000));
  // Scheduling after the pause uses the new position of the wheel.
  wheel.Schedule(kStart + milliseconds(1002), [&] { fired.push_back(1002); });
  EXPECT_EQ(wheel.NextDeadline(), kStart + milliseconds(1002));
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(1002)), 1u);
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(5000)), 1u);
  EXPECT_THAT(fired, ElementsAre(3, 20, 70, 500, 1000, 1002, 5000));
}

TEST(TimerWheelTest, CoarseTick) {
  TimerWheel wheel(kStart, milliseconds(10), 8);
  bool fired = false;
  wheel.Schedule(kStart + milliseconds(25), [&] { fired = true; });
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(24)), 0u);
  EXPECT_EQ(wheel.Advance(kStart + milliseconds(25)), 1u);
  EXPECT_TRUE(fired);
}

TEST(TimerWheelTest, CapturesAreDestroyedOnCancelAndAtDestruction) {
  auto token = std::make_shared<int>(0);
  {
    TimerWheel wheel(kStart);
    TimerWheel::Id id = wheel.Schedule(kStart + seconds(1), [token] {});
    wheel.Schedule(kStart + hours(100), [token] {});
    EXPECT_EQ(token.use_count(), 3);
    wheel.Cancel(id);
    EXPECT_EQ(token.use_count(), 2);
  }
  EXPECT_EQ(token.use_count(), 1);
}

// Many timers with random deadlines and random cancellations, checked against a model.
TEST(TimerWheelTest, ManyTimersMatchModel) {
  TimerWheel wheel(kStart, milliseconds(1), 256);
  std::mt19937_64 random(42);
  struct Model {
    TimePoint deadline;
    TimerWheel::Id id;
    bool cancelled = false;
    bool fired = false;
    TimePoint fired_at;
  };
  std::vector<Model> model(3000);
  TimePoint now = kStart;
  std::vector<size_t> order;
  for (size_t i = 0; i < model.size(); ++i) {
    // Mostly near (within a revolution), some far (several level-1 revolutions).
    int64_t us = (random() % 4 == 0) ? random() % 200'000'000 : random() % 300'000;
    model[i].deadline = kStart + microseconds(us);
    model[i].id = wheel.Schedule(model[i].deadline, [&model, &now, &order, i] {
      model[i].fired = true;
      model[i].fired_at = now;
      order.push_back(i);
    });
  }
  for (size_t i = 0; i < model.size(); i += 7) {
    EXPECT_TRUE(wheel.Cancel(model[i].id));
    model[i].cancelled = true;
  }
  size_t live = model.size() - (model.size() + 6) / 7;
  EXPECT_EQ(wheel.size(), live);
  while (wheel.size() > 0) {
    std::optional<TimePoint> next = wheel.NextDeadline();
    ASSERT_TRUE(next.has_value());
    // The reported deadline is exactly the earliest pending one.
    TimePoint earliest = TimePoint::max();
    for (const Model& m : model) {
      if (!m.cancelled && !m.fired) earliest = std::min(earliest, m.deadline);
    }
    ASSERT_EQ(*next, earliest);
    // Jump either exactly to it or a random distance (sometimes past many deadlines).
    now = (random() % 3 == 0) ? std::max(now, *next) : now + microseconds(random() % 5'000'000);
    wheel.Advance(now);
  }
  TimePoint previous = TimePoint::min();
  for (size_t i : order) {
    EXPECT_GE(model[i].deadline, previous);
    previous = model[i].deadline;
  }
  for (const Model& m : model) {
    EXPECT_NE(m.cancelled, m.fired);
    if (m.fired) {
      EXPECT_GE(m.fired_at, m.deadline);
    }
  }
}

}  // namespace
}  // namespace lwm2md::net
