// What happens where the kernel refuses io_uring, as container runtimes' default seccomp
// profiles do: each test runs in a child process (a gtest death test) that installs a
// seccomp filter making io_uring_setup fail with ENOSYS before the shard group starts.

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "net/shard.h"

namespace lwm2md::net {
namespace {

// Makes io_uring_setup fail with ENOSYS for this process and the threads it starts later.
// (The syscall number is the same on every architecture that has io_uring.)
bool RefuseIoUring() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

class Echo : public DatagramHandler {
 public:
  explicit Echo(Shard& shard) : shard_(shard) {}
  void OnDatagram(const ReceivedDatagram& d) override { shard_.Send(d.listener, d.peer, d.bytes); }

 private:
  Shard& shard_;
};

ShardGroupOptions Options(Backend backend) {
  ShardGroupOptions options;
  options.shards = 2;
  options.backend = backend;
  options.pin_threads = false;
  options.listen = {{"127.0.0.1", 0, "coap"}};
  return options;
}

// Sends one datagram to the group's listener and waits (1 s at most) for it to come back.
bool Echoes(const ShardGroup& group) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  timeval timeout{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  const PeerAddress& to = group.listeners()[0].local;
  const char ping[] = "ping";
  char reply[16] = {};
  const bool ok = ::sendto(fd, ping, 4, 0, to.sockaddr_ptr(), to.length()) == 4 &&
                  ::recv(fd, reply, sizeof(reply), 0) == 4 && std::memcmp(reply, ping, 4) == 0;
  ::close(fd);
  return ok;
}

void AutoFallsBackToEpoll() {
  if (!RefuseIoUring()) {
    std::fprintf(stderr, "cannot install the seccomp filter: %s\n", std::strerror(errno));
    _exit(2);
  }
  absl::StatusOr<std::unique_ptr<ShardGroup>> group =
      ShardGroup::Start(Options(Backend::kAuto), [](Shard& s) { return std::make_unique<Echo>(s); });
  if (!group.ok()) {
    std::fprintf(stderr, "start failed: %s\n", std::string(group.status().message()).c_str());
    _exit(3);
  }
  if ((*group)->backend() != Backend::kEpoll) _exit(4);
  if (!Echoes(**group)) _exit(5);
  (*group)->Stop();
  _exit(0);
}

void IoUringRequiredFailsClearly() {
  if (!RefuseIoUring()) _exit(2);
  absl::StatusOr<std::unique_ptr<ShardGroup>> group = ShardGroup::Start(
      Options(Backend::kIoUring), [](Shard& s) { return std::make_unique<Echo>(s); });
  if (group.ok()) _exit(3);
  std::fprintf(stderr, "status: %s\n", std::string(group.status().message()).c_str());
  _exit(0);
}

TEST(IoUringFallbackDeathTest, AutoFallsBackToEpollWhenIoUringIsRefused) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(AutoFallsBackToEpoll(), ::testing::ExitedWithCode(0), "falling back to epoll");
}

TEST(IoUringFallbackDeathTest, IoUringBackendFailsWithAClearErrorWhenRefused) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(IoUringRequiredFailsClearly(), ::testing::ExitedWithCode(0),
              "status: net.backend io_uring cannot start: .+");
}

}  // namespace
}  // namespace lwm2md::net
