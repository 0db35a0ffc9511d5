#pragma once
// The seam between the server and the CoAP layer: how each shard gets its CoAP message
// layer and resource tree, and how the layer's per-shard probes reach /metrics.

#include <atomic>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "coap/coap_metrics.h"

#include "coap/config.h"
#include "coap/diagnostic_resource.h"
#include "dtls/dtls_metrics.h"
#include "dtls/dtls_server.h"
#include "lwm2m/device_management.h"
#include "lwm2m/registration_service.h"
#include "metrics/registry.h"
#include "net/shard.h"
#include "server/config.h"

namespace lwm2md::server {

// coap::Config from the [coap] section. The separate-ACK delay (not a configuration key)
// is kept below half of ack_timeout_ms so that a client never retransmits before it.
coap::Config ToCoapConfig(const Config& config);
// The device management limits from the [lwm2m] section.
lwm2m::ManagementLimits ToManagementLimits(const Config& config);

// What the shards' CoAP handlers share; created before the shard group and outliving it.
class CoapWiring {
 public:
  // coap: the CoAP configuration of every shard (ToCoapConfig, with the service settings'
  // transmission parameters). registrations (may be null: plain CoAP without /rd, for tests)
  // and management (may be null; needs registrations) must outlive the handlers.
  CoapWiring(const coap::Config& coap, lwm2m::RegistrationHub* registrations,
             lwm2m::ManagementHub* management = nullptr);

  // Serves CoAP over DTLS on the listeners whose ListenSpec::dtls is set (listeners: the
  // group's listen specs, in order). Before the group starts; options must have passed
  // dtls::ValidateOptions.
  void EnableDtls(dtls::DtlsOptions options, std::vector<bool> dtls_listeners);

  // One shard's handler: its probe, resource tree and message layer. Called by
  // net::ShardGroup on that shard's thread.
  std::unique_ptr<net::DatagramHandler> MakeHandler(net::Shard& shard);

  // Adds the lwm2md_coap_* families. Called on the main thread after the group started
  // (every handler exists) and before the server reports ready; the group outlives every
  // scrape.
  void AddMetrics(metrics::Registry& registry, net::ShardGroup& group);

  // Posts new RFC 7252 §4.8 transmission parameters to every shard's message layer (the
  // service settings changed). Any thread.
  static void ApplyTransmissionParameters(net::ShardGroup& group, uint32_t ack_timeout_ms,
                                          double ack_random_factor, uint32_t max_retransmit);

 private:
  const coap::Config coap_config_;
  // One /diag body for the process (see DiagnosticBody).
  const std::shared_ptr<coap::DiagnosticBody> diagnostic_;
  lwm2m::RegistrationHub* const registrations_;
  lwm2m::ManagementHub* const management_;
  // Every shard of the group, by id, for handing a datagram to the shard that owns it
  // (MessageLayer::SetShardRouting). Filled as MakeHandler runs on each shard, before any
  // traffic.
  std::vector<std::atomic<net::Shard*>> shards_;
  // Each shard's probe, by shard id. Owned here rather than by the handler, which dies on
  // its shard thread at Stop, while /metrics may still be scraped.
  absl::Mutex probes_mutex_;
  std::vector<std::unique_ptr<coap::CoapMetrics>> probes_ ABSL_GUARDED_BY(probes_mutex_);
  std::vector<std::unique_ptr<dtls::DtlsMetrics>> dtls_probes_ ABSL_GUARDED_BY(probes_mutex_);
  // Set by EnableDtls; read-only once the shards run.
  std::optional<dtls::DtlsOptions> dtls_options_;
  std::vector<bool> dtls_listeners_;
};

}  // namespace lwm2md::server
