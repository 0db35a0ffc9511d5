// udp_echo: the raw UDP echo server that udp_ratio measures lwm2md against. One thread, one
// socket: a blocking recvmmsg batch is sent straight back with sendmmsg, with no parsing, no
// state and no copy. Whatever lwm2md does beyond this is what the ratio prices.
//
//   udp_echo [--bind 127.0.0.1:0] [--cpu N] [--lifetime 3600]
//
// Prints "listening ADDR:PORT" on stdout once bound; on SIGTERM/SIGINT (or when the lifetime
// ends) prints "echoed=N" on stderr and exits 0.

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <optional>
#include <string>

#include "udp_common.h"

namespace lwm2md::bench {
namespace {

volatile sig_atomic_t stop_requested = 0;

void OnStopSignal(int) { stop_requested = 1; }

// No SA_RESTART, so that the blocking recvmmsg returns EINTR and the loop sees the request.
void InstallStopHandlers() {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGALRM, &action, nullptr);
}

int Main(int argc, char** argv) {
  Flags flags;
  std::string bind_text = "127.0.0.1:0";
  int64_t cpu = -1;
  int64_t lifetime_s = 3600;
  if (!flags.Parse(argc, argv) || !flags.GetString("bind", &bind_text) ||
      !flags.GetInt("cpu", -1, 4095, &cpu) || !flags.GetInt("lifetime", 1, 86400, &lifetime_s) ||
      !flags.CheckAllUsed()) {
    std::fprintf(stderr, "usage: udp_echo [--bind 127.0.0.1:0] [--cpu N] [--lifetime 3600]\n");
    return 2;
  }
  std::optional<SocketAddress> bind_address = SocketAddress::Parse(bind_text);
  if (!bind_address.has_value()) {
    std::fprintf(stderr, "--bind: want 127.0.0.1:PORT or [::1]:PORT, got '%s'\n",
                 bind_text.c_str());
    return 2;
  }
  // An echo server on a reachable address reflects spoofed traffic at third parties.
  if (!bind_address->IsLoopback()) {
    std::fprintf(stderr, "--bind %s is not a loopback address (127.0.0.0/8 or ::1)\n",
                 bind_text.c_str());
    return 2;
  }
  if (absl::Status status = PinToCpu(static_cast<int>(cpu)); !status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    return 1;
  }
  auto socket = BatchSocket::Open(bind_address->family(), /*nonblocking=*/false);
  if (!socket.ok()) {
    std::fprintf(stderr, "%s\n", socket.status().ToString().c_str());
    return 1;
  }
  if (absl::Status status = (*socket)->Bind(*bind_address); !status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    return 1;
  }
  absl::StatusOr<SocketAddress> local = (*socket)->LocalAddress();
  if (!local.ok()) {
    std::fprintf(stderr, "%s\n", local.status().ToString().c_str());
    return 1;
  }

  InstallStopHandlers();
  // A forgotten server ends by itself.
  alarm(static_cast<unsigned>(lifetime_s));
  std::printf("listening %s\n", local->ToString().c_str());
  std::fflush(stdout);

  BatchSocket& batch = **socket;
  uint64_t echoed = 0;
  while (!stop_requested) {
    int n = batch.Receive();
    if (n < 0) {
      std::perror("recvmmsg");
      return 1;
    }
    if (n > 0) echoed += batch.EchoReceived(n);
  }
  std::fprintf(stderr, "echoed=%" PRIu64 "\n", echoed);
  return 0;
}

}  // namespace
}  // namespace lwm2md::bench

int main(int argc, char** argv) { return lwm2md::bench::Main(argc, argv); }
