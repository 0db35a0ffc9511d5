#include "server/server_metrics.h"

#include <vector>

#include "net/net_metrics.h"

namespace lwm2md::server {
namespace {

struct NetFamily {
  const char* name;
  const char* help;
  metrics::Type type;
  net::ShardCounter net::NetMetrics::*counter;
};

// Every net::NetMetrics field, declared once.
constexpr NetFamily kNetFamilies[] = {
    {"lwm2md_net_received_packets_total", "UDP datagrams received.", metrics::Type::kCounter,
     &net::NetMetrics::packets_received},
    {"lwm2md_net_received_bytes_total", "UDP payload bytes received.", metrics::Type::kCounter,
     &net::NetMetrics::bytes_received},
    {"lwm2md_net_sent_packets_total", "UDP datagrams sent.", metrics::Type::kCounter,
     &net::NetMetrics::packets_sent},
    {"lwm2md_net_sent_bytes_total", "UDP payload bytes sent.", metrics::Type::kCounter,
     &net::NetMetrics::bytes_sent},
    {"lwm2md_net_send_errors_total",
     "Datagrams not sent: sendmsg failures and sends refused by a full send queue.",
     metrics::Type::kCounter, &net::NetMetrics::send_errors},
    {"lwm2md_net_receive_truncated_total",
     "Datagrams dropped because they were larger than a receive buffer.", metrics::Type::kCounter,
     &net::NetMetrics::receive_truncated},
    {"lwm2md_net_receive_buffers_exhausted_total",
     "Times io_uring ran out of provided receive buffers.", metrics::Type::kCounter,
     &net::NetMetrics::receive_buffers_exhausted},
    {"lwm2md_shard_inbox_posted_total", "Commands posted to the shard's inbox.",
     metrics::Type::kCounter, &net::NetMetrics::inbox_posted},
    {"lwm2md_shard_inbox_depth", "Commands waiting in the shard's inbox.", metrics::Type::kGauge,
     &net::NetMetrics::inbox_depth},
    {"lwm2md_shard_loop_iterations_total", "Iterations of the shard's event loop.",
     metrics::Type::kCounter, &net::NetMetrics::loop_iterations},
};

}  // namespace

void AddNetMetrics(metrics::Registry& registry, net::ShardGroup& group) {
  // The probes live as long as the group; take their addresses once here rather than
  // asking the shards on every scrape.
  std::vector<const net::NetMetrics*> probes;
  for (int i = 0; i < group.size(); ++i) probes.push_back(&group.shard(i).metrics());
  for (const NetFamily& family : kNetFamilies) {
    registry.AddCallbackFamily(
        metrics::PerShardFamily(family.name, family.help, family.type, group.size(),
                                [probes, counter = family.counter](int shard) {
                                  return static_cast<double>((probes[shard]->*counter).Value());
                                }));
  }
}

}  // namespace lwm2md::server
