#pragma once
// Registration of the shard-owned net probes with /metrics.

#include "lwm2m/endpoint_directory.h"
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
void AddRegistrationMetrics(metrics::Registry& registry, lwm2m::RegistrationHub& hub,
                            const lwm2m::EndpointDirectory& directory);

}  // namespace lwm2md::server
