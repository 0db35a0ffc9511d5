#pragma once
// The in-process event bus: shards publish lwm2m.* events, and every consumer (the SSE
// stream, later triggers, webhooks and billable counters) subscribes here. One bus, many
// consumers (DESIGN.md: "events are one bus").
//
// Threads: Publish from any thread (shards included): it formats nothing and holds the bus
// mutex only to append to each matching subscriber's bounded queue, so a slow consumer never
// slows a shard — its queue overflows and it is told how many events it missed.
//
// Besides subscribers, one tap (the billable-event counters) sees every event synchronously,
// whether anyone subscribes or not. Publishers therefore publish every event; they may skip
// formatting the payload when HasSubscribers() is false and publish it with an empty
// payload_json (a subscriber that arrives in that instant sees that one event's data as
// null, as for any event without a payload).
//
// A few events must not be missed by a consumer that is not connected yet: the reports of
// calls a restart interrupted are published while applications are still reconnecting.
// PublishRetained keeps such an event (formatted) for a while, and every subscriber that
// arrives meanwhile receives it first.

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace lwm2md::lwm2m {

// Event types, as the reference names them.
namespace event_type {
inline constexpr std::string_view kRegister = "lwm2m.register";
inline constexpr std::string_view kUpdate = "lwm2m.update";
inline constexpr std::string_view kDeregister = "lwm2m.deregister";
inline constexpr std::string_view kMissing = "lwm2m.missing";
inline constexpr std::string_view kBack = "lwm2m.back";
inline constexpr std::string_view kBootstrap = "lwm2m.bootstrap";
inline constexpr std::string_view kData = "lwm2m.data";
inline constexpr std::string_view kFotaComplete = "lwm2m.fotaComplete";
inline constexpr std::string_view kAsyncResult = "lwm2m.asyncResult";
inline constexpr std::string_view kError = "lwm2m.error";
}  // namespace event_type

struct Event {
  uint64_t sequence = 0;  // assigned by Publish; increasing, starts at 1
  std::string type;
  std::string endpoint;
  absl::Time time;
  // The event's payload object, exactly as the reference shows it; empty when the publisher
  // had no subscriber to format it for.
  std::string payload_json;
};

// Called inside Publish for every event, on the publishing thread (a shard), before the
// event is queued for subscribers and outside the bus mutex. It must be cheap, must not
// block on I/O and must not publish.
using EventTap = absl::AnyInvocable<void(const Event&)>;

struct EventFilter {
  std::string endpoint;            // empty: every endpoint
  std::vector<std::string> types;  // empty: every type
  bool Matches(const Event& event) const;
};

class EventBus;

// A consumer's queue. Destroying it unsubscribes.
class EventSubscription {
 public:
  ~EventSubscription();
  EventSubscription(const EventSubscription&) = delete;
  EventSubscription& operator=(const EventSubscription&) = delete;

  // Waits up to timeout for the next event; nullopt on timeout or once the bus is closing.
  std::optional<Event> Next(absl::Duration timeout);
  // Events that did not fit in the queue since the last call (and resets the count).
  uint64_t TakeDropped();

 private:
  friend class EventBus;
  EventSubscription(EventBus* bus, EventFilter filter, size_t capacity)
      : bus_(bus), filter_(std::move(filter)), capacity_(capacity) {}

  EventBus* const bus_;
  const EventFilter filter_;
  const size_t capacity_;
  // Guarded by bus_->mutex_.
  std::deque<Event> queue_;
  uint64_t dropped_ = 0;
};

class EventBus {
 public:
  EventBus() = default;
  ~EventBus();

  // Stamps sequence (and time when unset), shows the event to the tap and queues it for
  // every matching subscriber.
  void Publish(Event event);
  // Publishes event, and queues a copy for every subscriber that subscribes before
  // retain_until (its filter permitting). At most kMaxRetained events are kept; beyond that
  // an event is only published.
  void PublishRetained(Event event, absl::Time retain_until);
  static constexpr size_t kMaxRetained = 65536;
  // Sets the tap, once, before the first Publish (before the shards start): Publish reads it
  // without a lock. What it calls must outlive every Publish.
  void SetTap(EventTap tap);
  std::unique_ptr<EventSubscription> Subscribe(EventFilter filter, size_t capacity = 4096);
  // Wakes every waiting subscriber (Next returns nullopt) so that streams end on shutdown.
  void Close();

  uint64_t published() const;
  // Whether anyone listens: publishers skip formatting a payload nobody would read. Relaxed:
  // a subscriber that arrives meanwhile starts with the next event.
  bool HasSubscribers() const { return subscriber_count_.load(std::memory_order_relaxed) > 0; }

 private:
  friend class EventSubscription;
  void Unsubscribe(EventSubscription* subscription);

  mutable absl::Mutex mutex_;
  std::vector<EventSubscription*> subscribers_ ABSL_GUARDED_BY(mutex_);
  uint64_t sequence_ ABSL_GUARDED_BY(mutex_) = 0;
  struct Retained {
    Event event;
    absl::Time until;
  };
  std::deque<Retained> retained_ ABSL_GUARDED_BY(mutex_);
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  std::atomic<int> subscriber_count_{0};
  EventTap tap_;  // written once by SetTap before any Publish, then only read
};

}  // namespace lwm2md::lwm2m
