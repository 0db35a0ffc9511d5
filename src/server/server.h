#pragma once
// The running server: the shards with their CoAP layer, the HTTP listener and the metrics
// registry, wired from a Config. main() owns one; tests start their own in-process on
// port 0. Start, Stop and the destructor run on one control thread (main's).

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "api/certificate_routes.h"
#include "api/http_server.h"
#include "dtls/certificates.h"
#include "lwm2m/billing.h"
#include "lwm2m/device_management.h"
#include "lwm2m/endpoint_config.h"
#include "lwm2m/endpoint_directory.h"
#include "lwm2m/event_bus.h"
#include "lwm2m/object_registry.h"
#include "lwm2m/registration_service.h"
#include "metrics/registry.h"
#include "net/shard.h"
#include "server/coap_wiring.h"
#include "server/config.h"
#include "store/store.h"

namespace lwm2md::server {

class Server {
 public:
  // Called once, from the store's writer thread, when the store fails for good (map full,
  // disk full, I/O error): the caller should Stop the server and exit non-zero.
  using FatalHandler = absl::AnyInvocable<void(absl::Status)>;

  // Opens the store under store.path, restores the stored registrations, starts the HTTP
  // listener and the shards, registers their metrics, then logs "listening coap|http
  // ADDRESS:PORT" for each listener and "lwm2md ready: N shards, backend B". The log level
  // and signals are the caller's business.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const Config& config,
                                                       FatalHandler on_fatal = nullptr);
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
  store::Store& store() { return *store_; }
  lwm2m::EventBus& events() { return events_; }
  const lwm2m::EndpointDirectory& directory() const { return directory_; }
  lwm2m::EndpointConfigStore& endpoints() { return *endpoints_; }
  lwm2m::ObjectRegistry& objects() { return *objects_; }
  lwm2m::ManagementHub& management() { return *management_; }
  lwm2m::BillingCounters& billing() { return *billing_; }
  dtls::CaStore& ca_certificates() { return *ca_certificates_; }

 private:
  explicit Server(const Config& config) : config_(config) {}

  const Config config_;
  metrics::Registry registry_;
  lwm2m::EventBus events_;
  lwm2m::EndpointDirectory directory_;
  // Shared by the shards' handlers, so created before and destroyed after the group.
  std::unique_ptr<lwm2m::EndpointConfigStore> endpoints_;
  std::unique_ptr<dtls::CaStore> ca_certificates_;  // CA mode's trust anchors
  std::unique_ptr<api::CaCertificates> api_ca_certificates_;  // the same, for the REST API
  std::unique_ptr<lwm2m::ObjectRegistry> objects_;
  std::unique_ptr<lwm2m::RegistrationHub> registrations_;
  std::unique_ptr<lwm2m::ManagementHub> management_;
  std::unique_ptr<CoapWiring> coap_;
  // Declared after the group, hence destroyed before it but after Stop joined the shards:
  // the writer's last completions post into the (stopped) shards' inboxes, which must still
  // exist then.
  std::unique_ptr<net::ShardGroup> group_;
  std::unique_ptr<store::Store> store_;
  // After the store, hence destroyed before it: its flusher writes through the store. The
  // bus's tap points here; nothing publishes once Stop has stopped the shards.
  std::unique_ptr<lwm2m::BillingCounters> billing_;
  // Declared last, hence destroyed first: the metrics callbacks that scrapes run read the
  // shards' probes and the store's.
  std::unique_ptr<api::HttpServer> http_;
};

}  // namespace lwm2md::server
