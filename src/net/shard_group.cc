#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/check.h"
#include "base/log.h"
#include "net/shard_internal.h"
#include "net/steering.h"

namespace lwm2md::net {
namespace {

absl::Status ValidateOptions(const ShardGroupOptions& options) {
  // The ranges config/lwm2md.toml documents; io_uring caps a provided-buffer ring at 32768.
  if (options.shards < 0 || options.shards > 1024) {
    return absl::InvalidArgumentError(
        absl::StrFormat("shards must be 0 to 1024, got %d", options.shards));
  }
  if (options.recv_buffer_count < 1 || options.recv_buffer_count > 32768 ||
      !std::has_single_bit(options.recv_buffer_count)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("net.recv_buffer_count must be a power of two from 1 to 32768, got %u",
                        options.recv_buffer_count));
  }
  if (options.recv_buffer_size < 64 || options.recv_buffer_size > 65536) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "net.recv_buffer_size must be 64 to 65536, got %u", options.recv_buffer_size));
  }
  if (options.send_queue_depth < 1 || options.send_queue_depth > 1048576) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "net.send_queue_depth must be 1 to 1048576, got %u", options.send_queue_depth));
  }
  return absl::OkStatus();
}

// The CPUs this process may run on (taskset, cgroup cpusets), in order.
std::vector<int> AllowedCpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
  }
  if (cpus.empty()) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    for (int cpu = 0; cpu < std::max(1L, online); ++cpu) cpus.push_back(cpu);
  }
  return cpus;
}

}  // namespace

int ResolveShardCount(int requested) {
  return requested > 0 ? requested : static_cast<int>(AllowedCpus().size());
}

namespace {

std::string Describe(const ListenSpec& spec, const PeerAddress& address) {
  return absl::StrCat(spec.purpose.empty() ? "udp" : spec.purpose, " ", address.ToString());
}

absl::StatusOr<int> OpenListener(const ListenSpec& spec, const PeerAddress& address,
                                 bool nonblocking, uint32_t socket_buffer_bytes) {
  int fd = ::socket(address.family(), SOCK_DGRAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0),
                    IPPROTO_UDP);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("cannot open a socket for ", Describe(spec, address)));
  }
  int one = 1;
  // Every shard binds its own socket to the same address; the group's steering program
  // (net/steering.h) picks the shard, so a device's packets keep landing on one shard
  // (socket(7), SO_REUSEPORT).
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      // Without it a "::" socket also takes IPv4 (as mapped addresses) and "0.0.0.0" on the
      // same port would fail to bind (ipv6(7), IPV6_V6ONLY).
      (address.family() == AF_INET6 &&
       ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)) {
    int error = errno;
    ::close(fd);
    return absl::ErrnoToStatus(
        error, absl::StrCat("cannot set socket options for ", Describe(spec, address)));
  }
  if (socket_buffer_bytes > 0) {
    // Best effort: a smaller buffer than asked for (capped by rmem_max) is not an error.
    const int bytes = static_cast<int>(std::min<uint32_t>(socket_buffer_bytes, INT32_MAX / 2));
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
  }
  if (::bind(fd, address.sockaddr_ptr(), address.length()) != 0) {
    int error = errno;
    ::close(fd);
    return absl::ErrnoToStatus(error, absl::StrCat("cannot bind ", Describe(spec, address)));
  }
  return fd;
}

class ShardGroupImpl final : public ShardGroup {
 public:
  explicit ShardGroupImpl(const ShardGroupOptions& options) : options_(options) {}
  ~ShardGroupImpl() override { Stop(); }

  int size() const override { return static_cast<int>(shards_.size()); }
  Shard& shard(int index) override {
    LWM2MD_CHECK(index >= 0 && index < size());
    return *shards_[index];
  }
  Backend backend() const override { return backend_; }
  const std::vector<BoundListener>& listeners() const override { return listeners_; }
  void Stop() override;

  absl::Status Open(Backend backend);
  absl::Status Launch(const HandlerFactory& factory);

 private:
  const ShardGroupOptions options_;  // shards keep a reference
  Backend backend_ = Backend::kEpoll;
  std::vector<BoundListener> listeners_;
  std::vector<std::unique_ptr<internal::ShardImpl>> shards_;
  std::vector<std::thread> threads_;
  std::vector<bool> running_;  // the shard's loop runs (its start-up succeeded)

  std::mutex stop_mutex_;
  bool stopped_ = false;
};

// Creates every socket on the calling thread, so that a bind error comes back from Start.
absl::Status ShardGroupImpl::Open(Backend backend) {
  backend_ = backend;
  std::vector<PeerAddress> addresses;
  for (const ListenSpec& spec : options_.listen) {
    std::optional<PeerAddress> address = PeerAddress::FromHostPort(spec.host, spec.port);
    if (!address) {
      return absl::InvalidArgumentError(
          absl::StrFormat("invalid listen address for %s: \"%s\" (an IPv4 or IPv6 literal)",
                          spec.purpose.empty() ? "udp" : spec.purpose, spec.host));
    }
    addresses.push_back(*address);
  }
  int count = ResolveShardCount(options_.shards);
  for (int id = 0; id < count; ++id) {
    std::vector<int> sockets;
    auto close_all = [&sockets] {
      for (int fd : sockets) ::close(fd);
    };
    for (size_t l = 0; l < addresses.size(); ++l) {
      absl::StatusOr<int> fd =
          OpenListener(options_.listen[l], addresses[l], backend == Backend::kEpoll,
                       options_.socket_buffer_bytes);
      if (!fd.ok()) {
        close_all();
        return fd.status();
      }
      sockets.push_back(*fd);
      if (id == 0) {
        // Port 0: the kernel picked a port for shard 0; the other shards join it there.
        sockaddr_in6 bound{};
        socklen_t length = sizeof(bound);
        if (::getsockname(*fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
          int error = errno;
          close_all();
          return absl::ErrnoToStatus(error, "getsockname");
        }
        addresses[l] = PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&bound), length);
        listeners_.push_back(BoundListener{options_.listen[l], addresses[l]});
      }
      if (id == count - 1) {
        // Every shard's socket has joined the group, in shard order: the steering program's
        // answers now name shards (net/steering.h).
        absl::Status steering = AttachSteering(*fd, addresses[l].family(), count,
                                               options_.listen[l].dtls);
        if (!steering.ok()) {
          LWM2MD_LOG(kWarning,
                     "net: %s keeps the kernel's own spreading over shards (%s); datagrams "
                     "that reach the wrong shard are forwarded",
                     Describe(options_.listen[l], addresses[l]), steering.message());
        }
      }
    }
    int wake_fd = ::eventfd(0, EFD_CLOEXEC);
    if (wake_fd < 0) {
      int error = errno;
      close_all();
      return absl::ErrnoToStatus(error, "eventfd");
    }
    shards_.push_back(backend == Backend::kIoUring
                          ? internal::MakeIoUringShard(id, options_, std::move(sockets), wake_fd)
                          : internal::MakeEpollShard(id, options_, std::move(sockets), wake_fd));
  }
  return absl::OkStatus();
}

absl::Status ShardGroupImpl::Launch(const HandlerFactory& factory) {
  std::vector<int> cpus = AllowedCpus();
  std::vector<std::unique_ptr<internal::StartupReport>> reports;
  for (size_t i = 0; i < shards_.size(); ++i) {
    reports.push_back(std::make_unique<internal::StartupReport>());
    int cpu = options_.pin_threads ? cpus[i % cpus.size()] : -1;
    internal::ShardImpl* shard = shards_[i].get();
    internal::StartupReport* report = reports.back().get();
    // factory is only used before the report is signalled, i.e. while Start waits below.
    threads_.emplace_back([shard, &factory, cpu, report] { shard->Run(factory, cpu, report); });
  }
  absl::Status first_error;
  for (auto& report : reports) {
    absl::Status status = report->Wait();
    running_.push_back(status.ok());
    if (!status.ok() && first_error.ok()) first_error = status;
  }
  return first_error;
}

void ShardGroupImpl::Stop() {
  std::lock_guard lock(stop_mutex_);
  if (stopped_) return;
  stopped_ = true;
  for (const auto& shard : shards_) {
    // It would wait for its own loop.
    LWM2MD_CHECK(CurrentShard() != shard.get());
  }
  std::vector<internal::ShardImpl*> running;
  for (size_t i = 0; i < running_.size(); ++i) {
    if (running_[i]) running.push_back(shards_[i].get());
  }
  // Phase one everywhere before phase two anywhere: no shard's OnStop runs while another
  // shard may still receive (and, say, forward to it).
  std::latch input_stopped(static_cast<ptrdiff_t>(running.size()));
  for (internal::ShardImpl* shard : running) {
    shard->Post([shard, &input_stopped] {
      shard->StopInput([&input_stopped] { input_stopped.count_down(); });
    });
  }
  input_stopped.wait();
  for (internal::ShardImpl* shard : running) {
    shard->Post([shard] { shard->Finish(); });
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShardGroup>> ShardGroup::Start(const ShardGroupOptions& options,
                                                              HandlerFactory factory) {
  if (!factory) return absl::InvalidArgumentError("ShardGroup::Start needs a handler factory");
  if (absl::Status status = ValidateOptions(options); !status.ok()) return status;

  Backend backend = Backend::kEpoll;
  if (options.backend != Backend::kEpoll) {
    absl::Status probe = internal::ProbeIoUring();
    if (probe.ok()) {
      backend = Backend::kIoUring;
    } else if (options.backend == Backend::kIoUring) {
      return absl::FailedPreconditionError(
          absl::StrCat("net.backend io_uring cannot start: ", probe.message()));
    } else {
      LWM2MD_LOG(kInfo, "net: io_uring unavailable (%s); falling back to epoll", probe.message());
    }
  }

  auto group = std::make_unique<ShardGroupImpl>(options);
  if (absl::Status status = group->Open(backend); !status.ok()) return status;
  if (absl::Status status = group->Launch(factory); !status.ok()) {
    group->Stop();
    return status;
  }

  std::vector<std::string> where;
  for (const BoundListener& listener : group->listeners()) {
    where.push_back(Describe(listener.spec, listener.local));
  }
  LWM2MD_LOG(kInfo, "net: %d shard%s on %s, listening on %s", group->size(),
             group->size() == 1 ? "" : "s", BackendName(backend),
             where.empty() ? "nothing" : absl::StrJoin(where, ", "));
  return std::unique_ptr<ShardGroup>(std::move(group));
}

}  // namespace lwm2md::net
