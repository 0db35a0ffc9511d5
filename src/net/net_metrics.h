#pragma once
// The net layer's probe: the only place its counters change. One per shard, written by
// that shard's thread; registered with Prometheus by the server wiring (metrics/).

#include "net/shard_counter.h"

namespace lwm2md::net {

struct NetMetrics {
  ShardCounter packets_received;
  ShardCounter bytes_received;
  ShardCounter packets_sent;
  ShardCounter bytes_sent;
  ShardCounter send_errors;          // sendmsg failures and full send queues
  ShardCounter receive_truncated;    // datagrams larger than a receive buffer
  ShardCounter receive_buffers_exhausted;  // io_uring ran out of provided buffers
  ShardCounter inbox_posted;         // commands posted to this shard
  ShardCounter inbox_depth;          // gauge: commands waiting right now
  ShardCounter loop_iterations;
};

}  // namespace lwm2md::net
