#pragma once
// Registration of the shard-owned net probes with /metrics.

#include "metrics/registry.h"
#include "net/shard.h"

namespace lwm2md::server {

// Adds the lwm2md_net_* and lwm2md_shard_* families, one sample per shard (shard="0"…),
// read from each shard's net::NetMetrics at scrape time. group must outlive every scrape.
void AddNetMetrics(metrics::Registry& registry, net::ShardGroup& group);

}  // namespace lwm2md::server
