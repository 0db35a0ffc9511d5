#pragma once
// Shards: one thread per core, each owning its io_uring (or epoll fallback), its UDP
// sockets (one SO_REUSEPORT socket per listen address), its timers and an MPSC inbox.
// Everything a protocol layer needs from its shard is the ShardIo interface, so that the
// CoAP message layer can be tested without sockets.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "net/net_metrics.h"
#include "net/peer_address.h"
#include "net/timer_wheel.h"

namespace lwm2md::net {

// One received datagram. bytes point into the shard's receive buffer and are valid only
// until OnDatagram returns (zero copy: whoever keeps data past that copies it).
struct ReceivedDatagram {
  int listener = 0;  // index into ShardGroupOptions::listen
  PeerAddress peer;
  std::span<const uint8_t> bytes;
};

// What a protocol layer on a shard uses. Implemented by Shard; tests use a fake.
// All methods are called on the shard's own thread.
class ShardIo {
 public:
  virtual ~ShardIo() = default;
  virtual int shard_id() const = 0;
  // The time of the current loop iteration (cheap; refreshed once per batch).
  virtual TimePoint Now() const = 0;
  // Queues a datagram; sends are batched and flushed at the end of the current batch of
  // completions. Copies bytes. False (and counted) when the send queue is full.
  virtual bool Send(int listener, const PeerAddress& to, std::span<const uint8_t> bytes) = 0;
  virtual TimerWheel& timers() = 0;
};

// The per-shard consumer of datagrams (the CoAP message layer, later DTLS in front of it).
// Built by the factory on its shard thread and destroyed there when the shard's loop ends
// (Stop): an object dies on the shard that made it. What other threads read after Stop
// (metrics probes) must therefore be owned outside the handler.
class DatagramHandler {
 public:
  virtual ~DatagramHandler() = default;
  virtual void OnDatagram(const ReceivedDatagram& datagram) = 0;
  // Called on the shard thread when the group stops, after input stopped (phase two of
  // shutdown: flush what must not be lost).
  virtual void OnStop() {}
};

enum class Backend { kAuto, kIoUring, kEpoll };
std::string_view BackendName(Backend backend);

struct ListenSpec {
  std::string host;     // "0.0.0.0", "::", "127.0.0.1", "::1"
  uint16_t port = 0;    // 0 = any: the first shard binds, the others reuse the bound port
  std::string purpose;  // "coap", "coaps": for logs and metrics labels
  // DTLS: records with a connection id are steered to the shard their id names.
  bool dtls = false;
};

struct ShardGroupOptions {
  int shards = 0;  // 0 = one per online core
  Backend backend = Backend::kAuto;
  bool pin_threads = true;
  std::vector<ListenSpec> listen;
  uint32_t recv_buffer_count = 1024;  // per shard (power of two; io_uring provided buffers)
  uint32_t recv_buffer_size = 2048;   // largest datagram accepted; larger ones are counted
  uint32_t send_queue_depth = 1024;   // datagrams queued per shard before Send fails
  // SO_RCVBUF and SO_SNDBUF of every socket; 0 keeps the system default. The kernel caps it
  // at net.core.rmem_max / wmem_max. A burst of devices (a registration storm after an
  // outage) is absorbed here instead of dropped.
  uint32_t socket_buffer_bytes = 4 << 20;
};

struct BoundListener {
  ListenSpec spec;
  PeerAddress local;  // the address actually bound (port resolved)
};

class Shard;
using HandlerFactory = std::function<std::unique_ptr<DatagramHandler>(Shard&)>;

// A shard as seen from other threads: only Post is thread-safe.
class Shard : public ShardIo {
 public:
  // Runs fn on this shard's thread, soon; wakes the shard through its ring/eventfd.
  // Thread-safe (MPSC). fn must not block.
  virtual void Post(absl::AnyInvocable<void()> fn) = 0;
  virtual NetMetrics& metrics() = 0;
  // The handler this shard's factory made (shard thread only).
  virtual DatagramHandler* handler() = 0;
};

// The shard whose thread is calling, or nullptr on any other thread. For debug checks that
// shard-local objects are used on their home shard, and for tests.
Shard* CurrentShard();

// The number of shards a group started with ShardGroupOptions::shards = requested will have:
// requested, or one per CPU this process may run on when requested is 0.
int ResolveShardCount(int requested);

class ShardGroup {
 public:
  // Creates the sockets (binding the listeners; port 0 resolved once), then starts one
  // thread per shard, which builds its handler with factory on that thread. Fails with a
  // clear status when an address cannot be bound or the chosen backend cannot start
  // (kAuto falls back from io_uring to epoll and logs why).
  static absl::StatusOr<std::unique_ptr<ShardGroup>> Start(const ShardGroupOptions& options,
                                                           HandlerFactory factory);
  virtual ~ShardGroup() = default;

  virtual int size() const = 0;
  virtual Shard& shard(int index) = 0;
  virtual Backend backend() const = 0;  // the backend actually in use
  virtual const std::vector<BoundListener>& listeners() const = 0;
  // Two-phase stop: stop receiving on every shard, run each handler's OnStop on its
  // shard, flush queued sends, join the threads. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace lwm2md::net
