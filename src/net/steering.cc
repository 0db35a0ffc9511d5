#include "net/steering.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace lwm2md::net {
namespace {

// Fibonacci hashing: the multiply spreads addresses and ports that differ in a few low bits
// (a NAT's consecutive ports, a carrier pool's consecutive addresses) over the high bits,
// which the shift keeps.
constexpr uint32_t kMultiplier = 0x9E3779B1u;
constexpr uint32_t kShift = 16;

uint32_t Mix(uint32_t folded_address, uint16_t port) {
  return ((folded_address ^ port) * kMultiplier) >> kShift;
}

// Offsets from the network header, reached through SKF_NET_OFF because the program runs
// with the packet's data at the UDP payload.
constexpr uint32_t NetOffset(int offset) { return static_cast<uint32_t>(SKF_NET_OFF + offset); }

sock_filter Statement(uint16_t code, uint32_t k) { return sock_filter{code, 0, 0, k}; }
sock_filter Jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
  return sock_filter{code, jt, jf, k};
}

}  // namespace

uint32_t SteeringHash(const PeerAddress& peer) {
  if (peer.family() == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(peer.sockaddr_ptr());
    return Mix(ntohl(v4->sin_addr.s_addr), ntohs(v4->sin_port));
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(peer.sockaddr_ptr());
  uint32_t folded = 0;
  for (int i = 0; i < 4; ++i) {
    uint32_t word;
    std::memcpy(&word, v6->sin6_addr.s6_addr + 4 * i, sizeof(word));
    folded ^= ntohl(word);
  }
  return Mix(folded, ntohs(v6->sin6_port));
}

int SteeringShard(const PeerAddress& peer, int shards) {
  if (shards <= 1) return 0;
  return static_cast<int>(SteeringHash(peer) % static_cast<uint32_t>(shards));
}

absl::Status AttachSteering(int fd, int family, int shards, bool dtls) {
  if (shards <= 1) return absl::OkStatus();
  const uint32_t n = static_cast<uint32_t>(shards);
  std::vector<sock_filter> program;
  if (dtls) {
    // A = payload[0]; a connection-id record goes by its id's first byte. A datagram too
    // short for it ends the program with 0 (shard 0), where the DTLS layer drops it.
    program.push_back(Statement(BPF_LD | BPF_B | BPF_ABS, 0));
    program.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, kDtlsContentTypeCid, 0, 3));
    program.push_back(Statement(BPF_LD | BPF_B | BPF_ABS, kDtlsCidOffset));
    program.push_back(Statement(BPF_ALU | BPF_MOD | BPF_K, n));
    program.push_back(Statement(BPF_RET | BPF_A, 0));
  }
  // X = the source address folded to 32 bits, then A = port ^ X, mixed as in Mix.
  if (family == AF_INET) {
    program.push_back(Statement(BPF_LD | BPF_W | BPF_ABS, NetOffset(12)));
    program.push_back(Statement(BPF_MISC | BPF_TAX, 0));
    program.push_back(Statement(BPF_LD | BPF_H | BPF_ABS, NetOffset(20)));
  } else {
    program.push_back(Statement(BPF_LD | BPF_W | BPF_ABS, NetOffset(8)));
    for (int word = 1; word < 4; ++word) {
      program.push_back(Statement(BPF_MISC | BPF_TAX, 0));
      program.push_back(Statement(BPF_LD | BPF_W | BPF_ABS, NetOffset(8 + 4 * word)));
      program.push_back(Statement(BPF_ALU | BPF_XOR | BPF_X, 0));
    }
    program.push_back(Statement(BPF_MISC | BPF_TAX, 0));
    program.push_back(Statement(BPF_LD | BPF_H | BPF_ABS, NetOffset(40)));
  }
  program.push_back(Statement(BPF_ALU | BPF_XOR | BPF_X, 0));
  program.push_back(Statement(BPF_ALU | BPF_MUL | BPF_K, kMultiplier));
  program.push_back(Statement(BPF_ALU | BPF_RSH | BPF_K, kShift));
  program.push_back(Statement(BPF_ALU | BPF_MOD | BPF_K, n));
  program.push_back(Statement(BPF_RET | BPF_A, 0));
  sock_fprog fprog{static_cast<unsigned short>(program.size()), program.data()};
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof(fprog)) != 0) {
    return absl::ErrnoToStatus(errno, "SO_ATTACH_REUSEPORT_CBPF");
  }
  return absl::OkStatus();
}

}  // namespace lwm2md::net
