#pragma once
// The running server: the shards with their CoAP layer, the HTTP listener and the metrics
// registry, wired from a Config. main() owns one; tests start their own in-process on
// port 0. Start, Stop and the destructor run on one control thread (main's).

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "api/http_server.h"
#include "metrics/registry.h"
#include "net/shard.h"
#include "server/coap_wiring.h"
#include "server/config.h"

namespace lwm2md::server {

class Server {
 public:
  // Creates store.path, starts the HTTP listener and the shards, registers their metrics,
  // then logs "listening coap|http ADDRESS:PORT" for each listener and "lwm2md ready: N
  // shards, backend B". The log level and signals are the caller's business.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const Config& config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Two phases (CONVENTIONS.md §10): /healthz turns unready, the shards stop receiving and
  // drain (handlers' OnStop, queued sends), then the HTTP listener stops, so that a last
  // scrape can still see the final counts. Idempotent.
  void Stop();

  const Config& config() const { return config_; }
  uint16_t http_port() const { return http_->port(); }
  const std::vector<net::BoundListener>& coap_listeners() const { return group_->listeners(); }
  metrics::Registry& metrics() { return registry_; }
  net::ShardGroup& shards() { return *group_; }

 private:
  explicit Server(const Config& config)
      : config_(config), coap_(std::make_unique<CoapWiring>(config_)) {}

  const Config config_;
  metrics::Registry registry_;
  // Shared by the shards' handlers, so created before and destroyed after the group.
  std::unique_ptr<CoapWiring> coap_;
  // Declared before http_, hence destroyed after it: the metrics callbacks that scrapes
  // run read the shards' probes.
  std::unique_ptr<net::ShardGroup> group_;
  std::unique_ptr<api::HttpServer> http_;
};

}  // namespace lwm2md::server
