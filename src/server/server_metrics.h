#pragma once
// Registration of the shard-owned net probes with /metrics.

#include "dtls/dtls_metrics.h"
#include "lwm2m/billing.h"
#include "lwm2m/endpoint_directory.h"
#include "lwm2m/device_management.h"
#include "lwm2m/registration_service.h"
#include "metrics/registry.h"
#include "net/shard.h"
#include "store/store.h"

namespace lwm2md::server {

// Adds the lwm2md_net_* and lwm2md_shard_* families, one sample per shard (shard="0"…),
// read from each shard's net::NetMetrics at scrape time. group must outlive every scrape.
void AddNetMetrics(metrics::Registry& registry, net::ShardGroup& group);

// lwm2md_store_*: commits, operations, commit latency, queue, map use. store must outlive
// every scrape.
void AddStoreMetrics(metrics::Registry& registry, const store::Store& store);

// lwm2md_registrations_* per shard and lwm2md_endpoints{presence} from the directory.
// lwm2md_actions_*, lwm2md_device_*, lwm2md_notifications_*, lwm2md_observations_active.
void AddManagementMetrics(metrics::Registry& registry, lwm2m::ManagementHub& hub);
void AddRegistrationMetrics(metrics::Registry& registry, lwm2m::RegistrationHub& hub,
                            const lwm2m::EndpointDirectory& directory);

// lwm2md_events_total{kind,billable} (every kind, zeros included) and, when the counters
// keep them, lwm2md_endpoint_billable_events_total{endpoint,kind}. billing must outlive
// every scrape.
void AddBillingMetrics(metrics::Registry& registry, const lwm2m::BillingCounters& billing);

// lwm2md_dtls_*: handshakes (started, completed, failed by reason), cookies, records,
// rebinds, drops, sessions. The probes (one per shard, by shard id) must outlive every
// scrape.
void AddDtlsMetrics(metrics::Registry& registry, std::vector<const dtls::DtlsMetrics*> probes);

}  // namespace lwm2md::server
