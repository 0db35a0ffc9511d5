#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/shard.h"
#include "net/shard_internal.h"
#include "net/steering.h"

namespace lwm2md::net {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr auto kWaitLimit = std::chrono::seconds(10);

// Polls until done() or the limit; every wait in these tests is bounded.
bool WaitUntil(const std::function<bool()>& done, Duration limit = kWaitLimit) {
  TimePoint end = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

std::span<const uint8_t> Bytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// A plain UDP socket on loopback, as a device would be.
class UdpClient {
 public:
  explicit UdpClient(int family) {
    fd_ = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    PeerAddress local = *PeerAddress::FromHostPort(family == AF_INET ? "127.0.0.1" : "::1", 0);
    EXPECT_EQ(::bind(fd_, local.sockaddr_ptr(), local.length()), 0);
  }
  ~UdpClient() { ::close(fd_); }
  UdpClient(const UdpClient&) = delete;
  UdpClient& operator=(const UdpClient&) = delete;

  PeerAddress local() const {
    sockaddr_in6 address{};
    socklen_t length = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    return PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&address), length);
  }
  bool SendTo(const PeerAddress& to, std::string_view bytes) {
    return ::sendto(fd_, bytes.data(), bytes.size(), 0, to.sockaddr_ptr(), to.length()) ==
           static_cast<ssize_t>(bytes.size());
  }
  std::optional<std::string> Receive(milliseconds timeout = milliseconds(5000)) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buffer[70000];
    ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
    if (n < 0) return std::nullopt;
    return std::string(buffer, static_cast<size_t>(n));
  }

 private:
  int fd_ = -1;
};

// What the handlers of one group observed, shared with the test thread.
struct Observed {
  std::mutex mutex;
  std::map<int, std::thread::id> factory_thread;  // shard id -> thread that built the handler
  std::map<int, std::thread::id> stop_thread;     // shard id -> thread OnStop ran on
  std::map<int, int> stop_calls;
  std::atomic<int> datagrams[8] = {};
  std::optional<PeerAddress> farewell_to;  // OnStop sends "bye" there when set
  std::atomic<int> farewell_results{0};
};

class EchoHandler : public DatagramHandler {
 public:
  EchoHandler(Shard& shard, Observed* observed) : shard_(shard), observed_(observed) {
    std::lock_guard lock(observed_->mutex);
    observed_->factory_thread[shard.shard_id()] = std::this_thread::get_id();
  }
  void OnDatagram(const ReceivedDatagram& datagram) override {
    ++observed_->datagrams[shard_.shard_id()];
    shard_.Send(datagram.listener, datagram.peer, datagram.bytes);
  }
  void OnStop() override {
    EXPECT_EQ(CurrentShard(), &shard_);
    std::lock_guard lock(observed_->mutex);
    observed_->stop_thread[shard_.shard_id()] = std::this_thread::get_id();
    ++observed_->stop_calls[shard_.shard_id()];
    if (observed_->farewell_to) {
      EXPECT_TRUE(shard_.Send(0, *observed_->farewell_to, Bytes("bye")));
    }
  }

 private:
  Shard& shard_;
  Observed* observed_;
};

uint64_t Total(ShardGroup& group, ShardCounter NetMetrics::*counter) {
  uint64_t total = 0;
  for (int i = 0; i < group.size(); ++i) total += (group.shard(i).metrics().*counter).Value();
  return total;
}

class ShardGroupTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kIoUring) {
      absl::Status probe = internal::ProbeIoUring();
      if (!probe.ok()) GTEST_SKIP() << "io_uring unavailable here: " << probe;
    }
  }

  ShardGroupOptions Options(int shards = 2) {
    ShardGroupOptions options;
    options.shards = shards;
    options.backend = GetParam();
    options.listen = {{"127.0.0.1", 0, "coap"}, {"::1", 0, "coap"}};
    options.recv_buffer_count = 256;
    options.send_queue_depth = 256;
    return options;
  }

  std::unique_ptr<ShardGroup> StartEcho(const ShardGroupOptions& options) {
    absl::StatusOr<std::unique_ptr<ShardGroup>> group = ShardGroup::Start(
        options, [this](Shard& shard) { return std::make_unique<EchoHandler>(shard, &observed_); });
    EXPECT_TRUE(group.ok()) << group.status();
    if (!group.ok()) return nullptr;
    EXPECT_EQ((*group)->backend(), GetParam());
    return std::move(*group);
  }

  Observed observed_;
};

TEST_P(ShardGroupTest, EchoesEveryDatagramFromManySources) {
  std::unique_ptr<ShardGroup> group = StartEcho(Options());
  ASSERT_NE(group, nullptr);
  ASSERT_EQ(group->size(), 2);
  ASSERT_EQ(group->listeners().size(), 2u);
  const PeerAddress v4 = group->listeners()[0].local;
  const PeerAddress v6 = group->listeners()[1].local;
  EXPECT_EQ(v4.family(), AF_INET);
  EXPECT_EQ(v6.family(), AF_INET6);
  EXPECT_NE(v4.port(), 0);
  EXPECT_NE(v6.port(), 0);
  EXPECT_EQ(group->listeners()[0].spec.purpose, "coap");

  // Many source ports, so that SO_REUSEPORT spreads them over both shards; an echo from
  // both shards also shows that shard 1 joined the port resolved for shard 0.
  constexpr int kClients = 16;
  constexpr int kRounds = 10;
  constexpr int kWindow = 8;
  std::vector<std::unique_ptr<UdpClient>> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.push_back(std::make_unique<UdpClient>(c % 2 == 0 ? AF_INET : AF_INET6));
  }
  uint64_t bytes = 0;
  int sent = 0;
  for (int round = 0; round < kRounds; ++round) {
    for (int c = 0; c < kClients; ++c) {
      const PeerAddress& server = c % 2 == 0 ? v4 : v6;
      std::multiset<std::string> expected;
      for (int w = 0; w < kWindow; ++w) {
        std::string payload = "client " + std::to_string(c) + " round " + std::to_string(round) +
                              " #" + std::to_string(w);
        ASSERT_TRUE(clients[c]->SendTo(server, payload));
        expected.insert(payload);
        bytes += payload.size();
        ++sent;
      }
      std::multiset<std::string> echoed;
      for (int w = 0; w < kWindow; ++w) {
        std::optional<std::string> echo = clients[c]->Receive();
        ASSERT_TRUE(echo.has_value()) << "client " << c << " round " << round;
        echoed.insert(*echo);
      }
      EXPECT_EQ(echoed, expected);
    }
  }
  EXPECT_GT(observed_.datagrams[0].load(), 0);
  EXPECT_GT(observed_.datagrams[1].load(), 0);

  // Stop drains the sends, so the counters are final afterwards.
  group->Stop();
  EXPECT_EQ(Total(*group, &NetMetrics::packets_received), static_cast<uint64_t>(sent));
  EXPECT_EQ(Total(*group, &NetMetrics::bytes_received), bytes);
  EXPECT_EQ(Total(*group, &NetMetrics::packets_sent), static_cast<uint64_t>(sent));
  EXPECT_EQ(Total(*group, &NetMetrics::bytes_sent), bytes);
  EXPECT_EQ(Total(*group, &NetMetrics::send_errors), 0u);
  EXPECT_EQ(Total(*group, &NetMetrics::receive_truncated), 0u);
  for (int i = 0; i < group->size(); ++i) {
    EXPECT_EQ(group->shard(i).metrics().packets_received.Value(),
              static_cast<uint64_t>(observed_.datagrams[i].load()));
    EXPECT_GT(group->shard(i).metrics().loop_iterations.Value(), 0u);
  }
}

TEST_P(ShardGroupTest, PostRunsEveryFunctionOnItsShardThread) {
  std::unique_ptr<ShardGroup> group = StartEcho(Options());
  ASSERT_NE(group, nullptr);
  constexpr int kThreads = 4;
  constexpr int kPostsPerThread = 2000;
  std::atomic<int> ran{0};
  std::atomic<int> wrong{0};
  std::mutex mutex;
  std::map<int, std::set<std::thread::id>> threads_seen;
  std::map<int, std::vector<int>> order_seen[kThreads];  // per poster: shard -> sequence
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kPostsPerThread; ++i) {
        int target = i % group->size();
        Shard* shard = &group->shard(target);
        shard->Post([&, shard, target, t, i] {
          if (CurrentShard() != shard || shard->shard_id() != target) ++wrong;
          std::lock_guard lock(mutex);
          threads_seen[target].insert(std::this_thread::get_id());
          order_seen[t][target].push_back(i);
          ++ran;
        });
      }
    });
  }
  for (std::thread& poster : posters) poster.join();
  ASSERT_TRUE(WaitUntil([&] { return ran.load() == kThreads * kPostsPerThread; })) << ran.load();
  EXPECT_EQ(wrong.load(), 0);
  std::lock_guard lock(mutex);
  ASSERT_EQ(threads_seen.size(), 2u);
  for (auto& [shard, ids] : threads_seen) {
    EXPECT_EQ(ids.size(), 1u);
    std::lock_guard observed_lock(observed_.mutex);
    EXPECT_EQ(*ids.begin(), observed_.factory_thread[shard]);
  }
  EXPECT_NE(*threads_seen[0].begin(), *threads_seen[1].begin());
  // Functions from one poster to one shard run in the order posted.
  for (int t = 0; t < kThreads; ++t) {
    for (auto& [shard, sequence] : order_seen[t]) {
      EXPECT_TRUE(std::is_sorted(sequence.begin(), sequence.end()));
    }
  }
  EXPECT_EQ(CurrentShard(), nullptr);
  group->Stop();
  EXPECT_EQ(Total(*group, &NetMetrics::inbox_posted),
            static_cast<uint64_t>(kThreads * kPostsPerThread) + 2 * 2);  // + Stop's own posts
  EXPECT_EQ(Total(*group, &NetMetrics::inbox_depth), 0u);
}

TEST_P(ShardGroupTest, TimersFireOnTheShard) {
  std::unique_ptr<ShardGroup> group = StartEcho(Options());
  ASSERT_NE(group, nullptr);
  std::atomic<int> fired{0};
  std::atomic<int> wrong{0};
  TimePoint scheduled_at = Clock::now();
  for (int i = 0; i < group->size(); ++i) {
    Shard* shard = &group->shard(i);
    shard->Post([&, shard] {
      TimePoint deadline = shard->Now() + milliseconds(30);
      // Cancelled before it fires: must never run.
      TimerWheel::Id doomed = shard->timers().Schedule(deadline, [&] { ++wrong; });
      shard->timers().Schedule(deadline, [&, shard, deadline] {
        if (CurrentShard() != shard || Clock::now() < deadline) ++wrong;
        ++fired;
      });
      if (!shard->timers().Cancel(doomed)) ++wrong;
    });
  }
  ASSERT_TRUE(WaitUntil([&] { return fired.load() == group->size(); }));
  EXPECT_GE(Clock::now() - scheduled_at, milliseconds(30));
  EXPECT_EQ(wrong.load(), 0);
}

TEST_P(ShardGroupTest, OversizedDatagramIsCountedAndDropped) {
  ShardGroupOptions options = Options(1);
  options.recv_buffer_size = 256;
  std::unique_ptr<ShardGroup> group = StartEcho(options);
  ASSERT_NE(group, nullptr);
  UdpClient client(AF_INET);
  const PeerAddress server = group->listeners()[0].local;
  ASSERT_TRUE(client.SendTo(server, std::string(257, 'x')));
  ASSERT_TRUE(client.SendTo(server, std::string(256, 'y')));
  // The exact-size datagram is echoed; the oversized one, sent first, never is.
  std::optional<std::string> echo = client.Receive();
  ASSERT_TRUE(echo.has_value());
  EXPECT_EQ(*echo, std::string(256, 'y'));
  EXPECT_FALSE(client.Receive(milliseconds(100)).has_value());
  ASSERT_TRUE(WaitUntil([&] { return Total(*group, &NetMetrics::receive_truncated) == 1; }));
  EXPECT_EQ(observed_.datagrams[0].load(), 1);
  EXPECT_EQ(Total(*group, &NetMetrics::packets_received), 1u);
}

TEST_P(ShardGroupTest, KeepsReceivingWhenBuffersRunOut) {
  ShardGroupOptions options = Options(1);
  options.recv_buffer_count = 1;
  std::unique_ptr<ShardGroup> group = StartEcho(options);
  ASSERT_NE(group, nullptr);
  UdpClient client(AF_INET6);
  const PeerAddress server = group->listeners()[1].local;
  // A burst larger than the buffers: the rest waits in the socket until a buffer is back
  // (io_uring ends the multishot receive with ENOBUFS, and the shard re-arms it).
  constexpr int kBurst = 64;
  // Hold the shard busy while the burst queues up, so that it meets all of it at once.
  std::atomic<bool> release{false};
  group->shard(0).Post([&release] {
    while (!release.load()) std::this_thread::sleep_for(milliseconds(1));
  });
  struct Release {
    std::atomic<bool>& flag;
    ~Release() { flag = true; }  // also when an assertion returns early
  } release_on_exit{release};
  std::multiset<std::string> expected;
  for (int i = 0; i < kBurst; ++i) {
    expected.insert("burst " + std::to_string(i));
    ASSERT_TRUE(client.SendTo(server, "burst " + std::to_string(i)));
  }
  release = true;
  std::multiset<std::string> echoed;
  for (int i = 0; i < kBurst; ++i) {
    std::optional<std::string> echo = client.Receive();
    ASSERT_TRUE(echo.has_value()) << i;
    echoed.insert(*echo);
  }
  EXPECT_EQ(echoed, expected);
  if (GetParam() == Backend::kIoUring) {
    EXPECT_GT(Total(*group, &NetMetrics::receive_buffers_exhausted), 0u);
  }
}

TEST_P(ShardGroupTest, SendFailsWhenQueueFullOrDatagramTooLarge) {
  ShardGroupOptions options = Options(1);
  options.send_queue_depth = 4;
  options.recv_buffer_size = 512;
  std::unique_ptr<ShardGroup> group = StartEcho(options);
  ASSERT_NE(group, nullptr);
  UdpClient client(AF_INET);
  PeerAddress to = client.local();
  std::atomic<int> accepted{-1};
  std::atomic<bool> too_large_accepted{true};
  Shard* shard = &group->shard(0);
  shard->Post([&, shard] {
    too_large_accepted = shard->Send(0, to, Bytes(std::string(513, 'z')));
    int ok = 0;
    // All within one loop iteration: nothing is flushed in between.
    for (int i = 0; i < 10; ++i) ok += shard->Send(0, to, Bytes("datagram")) ? 1 : 0;
    accepted = ok;
  });
  ASSERT_TRUE(WaitUntil([&] { return accepted.load() >= 0; }));
  EXPECT_FALSE(too_large_accepted.load());
  EXPECT_EQ(accepted.load(), 4);
  for (int i = 0; i < 4; ++i) {
    std::optional<std::string> got = client.Receive();
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, "datagram");
  }
  // Slots recycle once their sends complete.
  ASSERT_TRUE(WaitUntil([&] { return Total(*group, &NetMetrics::packets_sent) == 4; }));
  accepted = -1;
  shard->Post([&, shard] { accepted = shard->Send(0, to, Bytes("again")) ? 1 : 0; });
  ASSERT_TRUE(WaitUntil([&] { return accepted.load() >= 0; }));
  EXPECT_EQ(accepted.load(), 1);
  EXPECT_EQ(client.Receive(), "again");
  EXPECT_EQ(Total(*group, &NetMetrics::send_errors), 7u);
}

TEST_P(ShardGroupTest, StopRunsOnStopOnEachShardAndFlushesItsSends) {
  std::unique_ptr<ShardGroup> group = StartEcho(Options());
  ASSERT_NE(group, nullptr);
  UdpClient client(AF_INET);
  {
    std::lock_guard lock(observed_.mutex);
    observed_.farewell_to = client.local();
  }
  group->Stop();
  {
    std::lock_guard lock(observed_.mutex);
    ASSERT_EQ(observed_.stop_calls.size(), 2u);
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(observed_.stop_calls[i], 1);
      EXPECT_EQ(observed_.stop_thread[i], observed_.factory_thread[i]);
    }
  }
  // Each shard's farewell, sent from OnStop, went out before its thread ended.
  EXPECT_EQ(client.Receive(), "bye");
  EXPECT_EQ(client.Receive(), "bye");
  EXPECT_EQ(Total(*group, &NetMetrics::packets_sent), 2u);
  // Idempotent, and the destructor stops nothing twice either.
  group->Stop();
  group.reset();
  std::lock_guard lock(observed_.mutex);
  EXPECT_EQ(observed_.stop_calls[0], 1);
  EXPECT_EQ(observed_.stop_calls[1], 1);
}

// A handler that keeps a timer armed for as long as it lives, as a protocol layer does, and
// records the thread it dies on.
class TimerOwner : public DatagramHandler {
 public:
  struct Deaths {
    std::mutex mutex;
    std::map<int, std::thread::id> made_on;
    std::map<int, std::thread::id> destroyed_on;
  };
  TimerOwner(Shard& shard, Deaths* deaths) : shard_(shard), deaths_(deaths) {
    timer_ = shard_.timers().Schedule(shard_.Now() + std::chrono::hours(1), [] {});
    std::lock_guard lock(deaths_->mutex);
    deaths_->made_on[shard_.shard_id()] = std::this_thread::get_id();
  }
  ~TimerOwner() override {
    EXPECT_TRUE(shard_.timers().Cancel(timer_));
    std::lock_guard lock(deaths_->mutex);
    deaths_->destroyed_on[shard_.shard_id()] = std::this_thread::get_id();
  }
  void OnDatagram(const ReceivedDatagram&) override {}

 private:
  Shard& shard_;
  Deaths* deaths_;
  TimerWheel::Id timer_;
};

TEST_P(ShardGroupTest, HandlersDieOnTheirShardThreadAtStop) {
  TimerOwner::Deaths deaths;
  absl::StatusOr<std::unique_ptr<ShardGroup>> group = ShardGroup::Start(
      Options(), [&deaths](Shard& shard) { return std::make_unique<TimerOwner>(shard, &deaths); });
  ASSERT_TRUE(group.ok()) << group.status();
  (*group)->Stop();
  std::lock_guard lock(deaths.mutex);
  ASSERT_EQ(deaths.destroyed_on.size(), 2u);
  for (const auto& [shard, thread] : deaths.destroyed_on) {
    EXPECT_EQ(thread, deaths.made_on[shard]) << "shard " << shard;
    EXPECT_NE(thread, std::this_thread::get_id());
  }
}

TEST_P(ShardGroupTest, StopsWithoutExplicitStop) {
  std::unique_ptr<ShardGroup> group = StartEcho(Options());
  ASSERT_NE(group, nullptr);
  group.reset();
  std::lock_guard lock(observed_.mutex);
  EXPECT_EQ(observed_.stop_calls.size(), 2u);
}

TEST_P(ShardGroupTest, BindingAPortInUseFailsClearly) {
  for (const char* host : {"127.0.0.1", "::1"}) {
    PeerAddress any = *PeerAddress::FromHostPort(host, 0);
    int blocker = ::socket(any.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::bind(blocker, any.sockaddr_ptr(), any.length()), 0);
    sockaddr_in6 bound{};
    socklen_t length = sizeof(bound);
    ::getsockname(blocker, reinterpret_cast<sockaddr*>(&bound), &length);
    PeerAddress taken = PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&bound), length);

    ShardGroupOptions options = Options();
    options.listen = {{host, taken.port(), "coap"}};
    absl::StatusOr<std::unique_ptr<ShardGroup>> group = ShardGroup::Start(
        options, [this](Shard& shard) { return std::make_unique<EchoHandler>(shard, &observed_); });
    ASSERT_FALSE(group.ok());
    EXPECT_THAT(std::string(group.status().message()),
                HasSubstr("cannot bind coap " + taken.ToString() + ": Address already in use"));
    ::close(blocker);
  }
}

TEST_P(ShardGroupTest, RejectsBadOptions) {
  auto factory = [this](Shard& shard) { return std::make_unique<EchoHandler>(shard, &observed_); };
  ShardGroupOptions options = Options();
  options.recv_buffer_count = 1000;
  EXPECT_THAT(std::string(ShardGroup::Start(options, factory).status().message()),
              HasSubstr("net.recv_buffer_count"));
  options = Options();
  options.listen = {{"localhost", 0, "coap"}};
  EXPECT_EQ(ShardGroup::Start(options, factory).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  EXPECT_FALSE(ShardGroup::Start(options, [](Shard&) { return nullptr; }).ok());
}

TEST_P(ShardGroupTest, ZeroShardsMeansOnePerCore) {
  ShardGroupOptions options = Options(0);
  options.pin_threads = false;
  std::unique_ptr<ShardGroup> group = StartEcho(options);
  ASSERT_NE(group, nullptr);
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  EXPECT_EQ(group->size(), CPU_COUNT(&set));
}

// Answers every datagram with the id of the shard that received it.
class ShardNamer : public DatagramHandler {
 public:
  explicit ShardNamer(Shard& shard) : shard_(shard) {}
  void OnDatagram(const ReceivedDatagram& datagram) override {
    const std::string name = std::to_string(shard_.shard_id());
    shard_.Send(datagram.listener, datagram.peer, Bytes(name));
  }

 private:
  Shard& shard_;
};

// The kernel hands each datagram to the shard the server computes for its source address
// (net/steering.h), and a DTLS record with a connection id to the shard its id names,
// whatever its source.
TEST_P(ShardGroupTest, DatagramsLandOnTheShardSteeringNames) {
  constexpr int kShards = 4;
  ShardGroupOptions options = Options(kShards);
  options.pin_threads = false;
  options.listen.push_back({"127.0.0.1", 0, "coaps", /*dtls=*/true});
  absl::StatusOr<std::unique_ptr<ShardGroup>> group = ShardGroup::Start(
      options, [](Shard& shard) { return std::make_unique<ShardNamer>(shard); });
  ASSERT_TRUE(group.ok()) << group.status();
  std::set<int> seen;
  for (int l = 0; l < 2; ++l) {
    const PeerAddress server = (*group)->listeners()[static_cast<size_t>(l)].local;
    for (int i = 0; i < 24; ++i) {
      UdpClient client(server.family());
      ASSERT_TRUE(client.SendTo(server, "hello"));
      std::optional<std::string> shard = client.Receive();
      ASSERT_TRUE(shard.has_value());
      EXPECT_EQ(*shard, std::to_string(SteeringShard(client.local(), kShards)))
          << client.local().ToString();
      seen.insert(std::stoi(*shard));
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kShards)) << "48 sources all on a few shards";
  // Connection-id records: the id's first byte names the shard, from any source port.
  const PeerAddress coaps = (*group)->listeners()[2].local;
  for (int id = 0; id < 8; ++id) {
    UdpClient client(AF_INET);
    std::string record(24, '\0');
    record[0] = static_cast<char>(kDtlsContentTypeCid);
    record[kDtlsCidOffset] = static_cast<char>(id);
    ASSERT_TRUE(client.SendTo(coaps, record));
    std::optional<std::string> shard = client.Receive();
    ASSERT_TRUE(shard.has_value());
    EXPECT_EQ(*shard, std::to_string(id % kShards));
  }
}

std::string BackendParamName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kIoUring ? "IoUring" : "Epoll";
}

INSTANTIATE_TEST_SUITE_P(Backends, ShardGroupTest,
                         ::testing::Values(Backend::kIoUring, Backend::kEpoll), BackendParamName);

}  // namespace
}  // namespace lwm2md::net
