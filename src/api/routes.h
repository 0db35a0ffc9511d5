#pragma once
// Route groups of the HTTP listener, one file each, so that the REST API and the event
// stream join as further groups. Internal to api/.

#include <atomic>

#include "metrics/registry.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace lwm2md::api {

// GET /metrics: the registry in the Prometheus text format 0.0.4.
void AddMetricsRoutes(httplib::Server& server, const metrics::Registry& registry);

// GET /healthz: 200 "ok" while ready, 503 otherwise.
void AddHealthRoutes(httplib::Server& server, const std::atomic<bool>& ready);

}  // namespace lwm2md::api
