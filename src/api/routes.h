#pragma once
// Route groups of the HTTP listener, one file each, so that the REST API and the event
// stream join as further groups. Internal to api/.

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "metrics/registry.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace lwm2md::lwm2m {
class BillingCounters;
class EndpointConfigStore;
class EndpointDirectory;
class EventBus;
class ManagementHub;
class EventSubscription;
class ObjectRegistry;
}  // namespace lwm2md::lwm2m

namespace lwm2md::store {
class Store;
}  // namespace lwm2md::store

namespace lwm2md::api {

// GET /metrics: the registry in the Prometheus text format 0.0.4.
void AddMetricsRoutes(httplib::Server& server, const metrics::Registry& registry);

// GET /healthz: 200 "ok" while ready, 503 otherwise.
void AddHealthRoutes(httplib::Server& server, const std::atomic<bool>& ready);

// /api/v1/endpoints: POST, GET (paged list), and GET/PUT/PATCH/DELETE /api/v1/endpoints/{name}.
// directory (may be null) adds each endpoint's presence and registration.
void AddEndpointRoutes(httplib::Server& server, lwm2m::EndpointConfigStore& endpoints,
                       const lwm2m::EndpointDirectory* directory);

// /api/v1/objects: POST (upload OMA XML), GET (list), GET /api/v1/objects/{id or key}
// (?version=), GET /api/v1/objects/{id}/xml (custom objects), DELETE /api/v1/objects/{id}
// (?version=; custom objects only).
void AddObjectRoutes(httplib::Server& server, lwm2m::ObjectRegistry& registry);

// POST /api/v1/endpoints/{name}/actions/{action} (action_routes.cc) and
// GET /api/v1/endpoints/{name}/lastKnown.
void AddActionRoutes(httplib::Server& server, lwm2m::ManagementHub& management,
                     lwm2m::ObjectRegistry& objects, const store::Store& store);

// /api/v1/settings: GET, PUT (every setting), PATCH (some).
void AddSettingsRoutes(httplib::Server& server, lwm2m::EndpointConfigStore& endpoints);

// GET /api/v1/billing?from=&to=&endpoint=: daily counts of events per kind.
void AddBillingRoutes(httplib::Server& server, const lwm2m::BillingCounters& billing);

struct EventStreamOptions {
  // Each open stream holds an HTTP worker thread; beyond this many, GET /api/v1/events
  // answers 503 so that the REST routes keep workers to run on.
  int max_streams = 28;
  size_t queue_capacity = 4096;  // events per stream before it is told it dropped some
  absl::Duration keepalive = absl::Seconds(15);
};

// GET /api/v1/events: server-sent events from the bus. Streams end when the client goes,
// when the bus closes, or once stopping is set (HttpServer::Stop), which also refuses new
// ones. open_streams counts the streams whose response is not finished yet, so that Stop can
// let them end properly before it stops the listener.
void AddEventRoutes(httplib::Server& server, lwm2m::EventBus& bus,
                    const std::atomic<bool>& stopping, std::atomic<int>& open_streams,
                    const EventStreamOptions& options = {});

// The body of one event stream, apart from the HTTP plumbing (and testable without it).
class EventStream {
 public:
  EventStream(std::unique_ptr<lwm2m::EventSubscription> subscription, absl::Duration keepalive);
  ~EventStream();

  // Waits up to `wait` for events and returns the bytes to send next: the queued events'
  // frames, then an "event: dropped" frame if the queue overflowed; a ": keepalive" comment
  // when nothing was sent for the keepalive interval; otherwise "". nullopt once the bus has
  // closed and the queue is drained.
  std::optional<std::string> Poll(absl::Duration wait);

 private:
  std::unique_ptr<lwm2m::EventSubscription> subscription_;
  const absl::Duration keepalive_;
  absl::Time last_sent_;
};

}  // namespace lwm2md::api
