#pragma once
// The HTTP listener: /metrics, /healthz, the REST API (/api/v1/..., api/README.md) and the
// SSE event stream. cpp-httplib serves it on its own threads (one accepting, a worker pool),
// away from the shards: requests reach shard state only through what HttpServices hands in
// (the metrics registry, the store-backed configuration, the directory and the event bus;
// the action interface later, which posts to shard inboxes).

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "api/auth.h"
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
class ObjectRegistry;
}  // namespace lwm2md::lwm2m

namespace lwm2md::store {
class Store;
}  // namespace lwm2md::store

namespace lwm2md::api {

class CaCertificates;

struct HttpServerOptions {
  std::string address = "127.0.0.1";  // an IP literal; "::" or "0.0.0.0" for all
  uint16_t port = 8080;               // 0 picks a free port; see HttpServer::port()
  // Handler threads. Each open event stream (GET /api/v1/events) keeps one for as long as it
  // is open, so the pool is sized for streams plus REST traffic; streams are refused (503)
  // beyond worker_threads - 4, which leaves at least four for everything else.
  int worker_threads = 32;
  // Bearer tokens (auth.h): every request but GET /healthz needs one of them. Start fails
  // when there is none, so that the API is never served to anyone by mistake.
  std::vector<ApiToken> tokens{};
  // GET /metrics without a token, for scrapers that hold no credentials. Metric labels name
  // endpoints, so this shows the fleet's names to whoever reaches the port.
  bool public_metrics = false;
  // PEM files (http.tls_cert, http.tls_key): both set serves HTTPS (TLS 1.2 or later), both
  // empty plain HTTP. The certificate file may hold the chain after the server's own.
  std::string tls_cert{};
  std::string tls_key{};
};

// What the routes serve. Everything pointed to must outlive the HttpServer.
struct HttpServices {
  const metrics::Registry* metrics = nullptr;  // GET /metrics; 404 when null
  // /api/v1/objects; absent when null.
  lwm2m::ObjectRegistry* objects = nullptr;
  // /api/v1/endpoints and /api/v1/settings (with presence from the directory).
  lwm2m::EndpointConfigStore* endpoints = nullptr;
  const lwm2m::EndpointDirectory* directory = nullptr;
  // GET /api/v1/events (server-sent events).
  lwm2m::EventBus* events = nullptr;
  // GET /api/v1/billing (daily billable-event counts).
  lwm2m::BillingCounters* billing = nullptr;
  // POST /api/v1/endpoints/{name}/actions/{action} and GET .../lastKnown (which reads store;
  // both need objects too).
  lwm2m::ManagementHub* management = nullptr;
  const store::Store* store = nullptr;
  // /api/v1/certificates/ca (CA mode's trust anchors).
  CaCertificates* ca_certificates = nullptr;
};

class HttpServer {
 public:
  // Binds (so that a busy port fails here, with a status, not later on another thread),
  // then serves on its own thread. /healthz answers 503 until SetReady(true).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           const HttpServices& services);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const { return port_; }
  // Whether the listener speaks HTTPS.
  bool tls() const { return !options_.tls_cert.empty(); }
  // "127.0.0.1:8080" or "[::1]:8080": the address actually bound.
  std::string ListenAddress() const;

  // Readiness as /healthz reports it: true once the server takes traffic, false again
  // when shutdown begins, so that load balancers stop sending before the listener goes.
  void SetReady(bool ready) { ready_.store(ready); }

  // Stops accepting, lets requests in progress finish, joins the threads. Idempotent.
  void Stop();

 private:
  explicit HttpServer(const HttpServerOptions& options);

  HttpServerOptions options_;
  std::unique_ptr<Authenticator> authenticator_;
  uint16_t port_ = 0;
  std::atomic<bool> ready_{false};
  std::atomic<bool> listen_returned_{false};
  // Set by Stop before the listener stops: open event streams end on it, since httplib's
  // stop waits for every handler, and a stream's handler would otherwise never return.
  std::atomic<bool> stopping_{false};
  std::atomic<int> open_event_streams_{0};
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace lwm2md::api
