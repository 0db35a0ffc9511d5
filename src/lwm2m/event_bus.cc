#include "lwm2m/event_bus.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "base/check.h"

namespace lwm2md::lwm2m {

bool EventFilter::Matches(const Event& event) const {
  if (!endpoint.empty() && endpoint != event.endpoint) return false;
  if (types.empty()) return true;
  return std::find(types.begin(), types.end(), event.type) != types.end();
}

EventSubscription::~EventSubscription() { bus_->Unsubscribe(this); }

std::optional<Event> EventSubscription::Next(absl::Duration timeout) {
  absl::MutexLock lock(&bus_->mutex_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(bus_->mutex_) {
    return !queue_.empty() || bus_->closed_;
  };
  bus_->mutex_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (queue_.empty()) return std::nullopt;
  Event event = std::move(queue_.front());
  queue_.pop_front();
  return event;
}

uint64_t EventSubscription::TakeDropped() {
  absl::MutexLock lock(&bus_->mutex_);
  return std::exchange(dropped_, 0);
}

EventBus::~EventBus() {
  absl::MutexLock lock(&mutex_);
  // Subscriptions hold a pointer to the bus; they must be gone first.
  LWM2MD_CHECK(subscribers_.empty());
}

void EventBus::SetTap(EventTap tap) {
  absl::MutexLock lock(&mutex_);
  // Publish calls the tap without the mutex, which is only safe if nothing publishes yet.
  LWM2MD_CHECK(!tap_ && sequence_ == 0);
  tap_ = std::move(tap);
}

void EventBus::Publish(Event event) { PublishRetained(std::move(event), absl::InfinitePast()); }

void EventBus::PublishRetained(Event event, absl::Time retain_until) {
  if (event.time == absl::Time()) event.time = absl::Now();
  // Outside the bus mutex: the tap synchronises itself, and subscribers' queues never wait
  // for it nor it for them.
  if (tap_) tap_(event);
  absl::MutexLock lock(&mutex_);
  event.sequence = ++sequence_;
  if (retain_until > event.time && retained_.size() < kMaxRetained) {
    retained_.push_back(Retained{event, retain_until});
  }
  EventSubscription* last_match = nullptr;
  for (EventSubscription* subscriber : subscribers_) {
    if (!subscriber->filter_.Matches(event)) continue;
    if (last_match != nullptr) {
      if (last_match->queue_.size() < last_match->capacity_) {
        last_match->queue_.push_back(event);
      } else {
        ++last_match->dropped_;
      }
    }
    last_match = subscriber;
  }
  // The last matching subscriber takes the event itself: one copy fewer in the common
  // single-consumer case.
  if (last_match != nullptr) {
    if (last_match->queue_.size() < last_match->capacity_) {
      last_match->queue_.push_back(std::move(event));
    } else {
      ++last_match->dropped_;
    }
  }
}

std::unique_ptr<EventSubscription> EventBus::Subscribe(EventFilter filter, size_t capacity) {
  std::unique_ptr<EventSubscription> subscription(
      new EventSubscription(this, std::move(filter), std::max<size_t>(capacity, 1)));
  absl::MutexLock lock(&mutex_);
  const absl::Time now = absl::Now();
  std::erase_if(retained_, [now](const Retained& r) { return r.until <= now; });
  for (const Retained& r : retained_) {
    if (!subscription->filter_.Matches(r.event)) continue;
    if (subscription->queue_.size() >= subscription->capacity_) {
      ++subscription->dropped_;
      continue;
    }
    subscription->queue_.push_back(r.event);
  }
  subscribers_.push_back(subscription.get());
  subscriber_count_.store(static_cast<int>(subscribers_.size()), std::memory_order_relaxed);
  return subscription;
}

void EventBus::Close() {
  absl::MutexLock lock(&mutex_);
  closed_ = true;
}

uint64_t EventBus::published() const {
  absl::MutexLock lock(&mutex_);
  return sequence_;
}

void EventBus::Unsubscribe(EventSubscription* subscription) {
  absl::MutexLock lock(&mutex_);
  subscribers_.erase(std::remove(subscribers_.begin(), subscribers_.end(), subscription),
                     subscribers_.end());
  subscriber_count_.store(static_cast<int>(subscribers_.size()), std::memory_order_relaxed);
}

}  // namespace lwm2md::lwm2m
