// The event bus: filters, bounded queues, and events retained for late subscribers.

#include "lwm2m/event_bus.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace lwm2md::lwm2m {
namespace {

Event MakeTestEvent(std::string_view type, std::string endpoint, std::string payload) {
  Event event;
  event.type = std::string(type);
  event.endpoint = std::move(endpoint);
  event.payload_json = std::move(payload);
  return event;
}

TEST(EventBusTest, SubscribersSeeMatchingEventsInOrder) {
  EventBus bus;
  auto all = bus.Subscribe({});
  auto errors_of_a = bus.Subscribe({.endpoint = "a", .types = {std::string(event_type::kError)}});
  bus.Publish(MakeTestEvent(event_type::kData, "a", "{\"n\":1}"));
  bus.Publish(MakeTestEvent(event_type::kError, "b", "{\"n\":2}"));
  bus.Publish(MakeTestEvent(event_type::kError, "a", "{\"n\":3}"));
  std::optional<Event> first = all->Next(absl::ZeroDuration());
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->payload_json, "{\"n\":1}");
  EXPECT_EQ(first->sequence, 1u);
  EXPECT_EQ(all->Next(absl::ZeroDuration())->sequence, 2u);
  EXPECT_EQ(all->Next(absl::ZeroDuration())->sequence, 3u);
  std::optional<Event> only = errors_of_a->Next(absl::ZeroDuration());
  ASSERT_TRUE(only.has_value());
  EXPECT_EQ(only->payload_json, "{\"n\":3}");
  EXPECT_FALSE(errors_of_a->Next(absl::ZeroDuration()).has_value());
}

TEST(EventBusTest, FullQueueCountsWhatItMissed) {
  EventBus bus;
  auto small = bus.Subscribe({}, 2);
  for (int i = 0; i < 5; ++i) bus.Publish(MakeTestEvent(event_type::kData, "a", "{}"));
  EXPECT_EQ(small->TakeDropped(), 3u);
  EXPECT_EQ(small->TakeDropped(), 0u);
  EXPECT_EQ(small->Next(absl::ZeroDuration())->sequence, 1u);
}

TEST(EventBusTest, RetainedEventsReachSubscribersThatComeLater) {
  EventBus bus;
  bus.Publish(MakeTestEvent(event_type::kData, "a", "{\"plain\":true}"));
  bus.PublishRetained(MakeTestEvent(event_type::kError, "a", "{\"kept\":1}"),
                      absl::Now() + absl::Minutes(1));
  bus.PublishRetained(MakeTestEvent(event_type::kError, "b", "{\"kept\":2}"),
                      absl::Now() + absl::Minutes(1));
  // Two late subscribers each get the retained events their filter takes, not the plain one.
  for (int round = 0; round < 2; ++round) {
    auto late = bus.Subscribe({});
    std::optional<Event> first = late->Next(absl::ZeroDuration());
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->payload_json, "{\"kept\":1}");
    EXPECT_EQ(first->sequence, 2u);
    EXPECT_EQ(late->Next(absl::ZeroDuration())->payload_json, "{\"kept\":2}");
    EXPECT_FALSE(late->Next(absl::ZeroDuration()).has_value());
  }
  auto only_b = bus.Subscribe({.endpoint = "b", .types = {}});
  EXPECT_EQ(only_b->Next(absl::ZeroDuration())->payload_json, "{\"kept\":2}");
  EXPECT_FALSE(only_b->Next(absl::ZeroDuration()).has_value());
}

TEST(EventBusTest, RetainedEventsExpire) {
  EventBus bus;
  bus.PublishRetained(MakeTestEvent(event_type::kError, "a", "{}"),
                      absl::Now() + absl::Milliseconds(20));
  absl::SleepFor(absl::Milliseconds(40));
  auto late = bus.Subscribe({});
  EXPECT_FALSE(late->Next(absl::ZeroDuration()).has_value());
  EXPECT_EQ(bus.published(), 1u);
}

TEST(EventBusTest, TapSeesRetainedEventsOnce) {
  EventBus bus;
  int seen = 0;
  bus.SetTap([&seen](const Event&) { ++seen; });
  bus.PublishRetained(MakeTestEvent(event_type::kError, "a", "{}"), absl::Now() + absl::Minutes(1));
  auto late = bus.Subscribe({});
  auto later = bus.Subscribe({});
  EXPECT_EQ(seen, 1);
}

}  // namespace
}  // namespace lwm2md::lwm2m
