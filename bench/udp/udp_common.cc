#include "udp_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>

namespace lwm2md::bench {
namespace {

// Deep socket buffers keep a whole window of requests (or a burst of echoes) from being
// dropped by the kernel; the kernel caps the request at net.core.{r,w}mem_max.
constexpr int kSocketBufferBytes = 4 << 20;

absl::Status ErrnoStatus(const std::string& what) {
  return absl::InternalError(what + ": " + std::strerror(errno));
}

// The whole text must be the number.
template <typename T>
bool ParseNumber(std::string_view text, T* out) {
  const char* end = text.data() + text.size();
  auto [ptr, error] = std::from_chars(text.data(), end, *out);
  return error == std::errc() && ptr == end && !text.empty();
}

}  // namespace

std::optional<SocketAddress> SocketAddress::Parse(std::string_view text) {
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  uint32_t port = 0;
  if (!ParseNumber(port_text, &port) || port > 65535) return std::nullopt;

  SocketAddress address;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    address.length = sizeof(sockaddr_in);
    return address;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    address.length = sizeof(sockaddr_in6);
    return address;
  }
  return std::nullopt;
}

SocketAddress SocketAddress::FromSockaddr(const sockaddr* address, socklen_t length) {
  SocketAddress result;
  if (length > sizeof(result.storage)) length = sizeof(result.storage);
  std::memcpy(&result.storage, address, length);
  result.length = length;
  return result;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

bool SocketAddress::IsLoopback() const {
  if (family() == AF_INET) {
    uint32_t ip = ntohl(reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr.s_addr);
    return (ip >> 24) == 127;
  }
  if (family() == AF_INET6) {
    return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr);
  }
  return false;
}

std::string SocketAddress::ToString() const {
  char host[INET6_ADDRSTRLEN] = {};
  char text[INET6_ADDRSTRLEN + 8];
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, host,
              sizeof(host));
    std::snprintf(text, sizeof(text), "%s:%u", host, port());
    return text;
  }
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, host,
              sizeof(host));
    std::snprintf(text, sizeof(text), "[%s]:%u", host, port());
    return text;
  }
  return "(none)";
}

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

absl::Status PinToCpu(int cpu) {
  if (cpu < 0) return absl::OkStatus();
  if (cpu >= CPU_SETSIZE) return absl::InvalidArgumentError("no CPU " + std::to_string(cpu));
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return ErrnoStatus("pinning to CPU " + std::to_string(cpu));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BatchSocket>> BatchSocket::Open(int family, bool nonblocking) {
  std::unique_ptr<BatchSocket> socket(new BatchSocket());
  int type = SOCK_DGRAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  socket->fd_ = ::socket(family, type, 0);
  if (socket->fd_ < 0) return ErrnoStatus("socket");
  // Best effort: a smaller buffer only means more drops under overload, which are counted.
  setsockopt(socket->fd_, SOL_SOCKET, SO_RCVBUF, &kSocketBufferBytes, sizeof(kSocketBufferBytes));
  setsockopt(socket->fd_, SOL_SOCKET, SO_SNDBUF, &kSocketBufferBytes, sizeof(kSocketBufferBytes));

  // The headers point at the buffers once; only lengths and names change per batch.
  for (int i = 0; i < kBatch; ++i) {
    socket->recv_iovecs_[i] = {socket->recv_buffers_[i].data(), kMaxDatagram};
    socket->send_iovecs_[i] = {socket->send_buffers_[i].data(), 0};
    std::memset(&socket->recv_headers_[i], 0, sizeof(mmsghdr));
    std::memset(&socket->send_headers_[i], 0, sizeof(mmsghdr));
    socket->recv_headers_[i].msg_hdr.msg_iov = &socket->recv_iovecs_[i];
    socket->recv_headers_[i].msg_hdr.msg_iovlen = 1;
    socket->send_headers_[i].msg_hdr.msg_iov = &socket->send_iovecs_[i];
    socket->send_headers_[i].msg_hdr.msg_iovlen = 1;
  }
  return socket;
}

BatchSocket::~BatchSocket() {
  if (fd_ >= 0) close(fd_);
}

absl::Status BatchSocket::Bind(const SocketAddress& address) {
  if (bind(fd_, address.sockaddr_ptr(), address.length) != 0) {
    return ErrnoStatus("bind " + address.ToString());
  }
  return absl::OkStatus();
}

absl::Status BatchSocket::Connect(const SocketAddress& peer) {
  if (connect(fd_, peer.sockaddr_ptr(), peer.length) != 0) {
    return ErrnoStatus("connect " + peer.ToString());
  }
  return absl::OkStatus();
}

absl::StatusOr<SocketAddress> BatchSocket::LocalAddress() const {
  SocketAddress address;
  address.length = sizeof(address.storage);
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&address.storage), &address.length) != 0) {
    return ErrnoStatus("getsockname");
  }
  return address;
}

int BatchSocket::Receive() {
  for (int i = 0; i < kBatch; ++i) {
    recv_headers_[i].msg_hdr.msg_name = &recv_names_[i];
    recv_headers_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    recv_headers_[i].msg_hdr.msg_flags = 0;
  }
  int n = recvmmsg(fd_, recv_headers_.data(), kBatch, MSG_WAITFORONE, nullptr);
  // ECONNREFUSED reports an ICMP error from an earlier send; the datagram it concerned is
  // simply never answered.
  if (n < 0 &&
      (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNREFUSED)) {
    return 0;
  }
  return n;
}

void BatchSocket::CommitSend(size_t length, const SocketAddress* to) {
  msghdr& header = send_headers_[staged_].msg_hdr;
  send_iovecs_[staged_].iov_len = length;
  if (to != nullptr) {
    std::memcpy(&send_names_[staged_], &to->storage, to->length);
    header.msg_name = &send_names_[staged_];
    header.msg_namelen = to->length;
  } else {
    header.msg_name = nullptr;
    header.msg_namelen = 0;
  }
  ++staged_;
}

int BatchSocket::Flush() {
  int total = 0;
  while (total < staged_) {
    int n = sendmmsg(fd_, &send_headers_[total], staged_ - total, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (total == 0) {
        int saved = errno;
        staged_ = 0;
        errno = saved;
        return -1;
      }
      break;
    }
    total += n;
  }
  staged_ = 0;
  return total;
}

int BatchSocket::EchoReceived(int count) {
  for (int i = 0; i < count; ++i) {
    msghdr& header = send_headers_[i].msg_hdr;
    // Point the send headers at the receive batch: the echo never copies a byte.
    header.msg_iov = &recv_iovecs_[i];
    header.msg_name = &recv_names_[i];
    header.msg_namelen = recv_headers_[i].msg_hdr.msg_namelen;
    recv_iovecs_[i].iov_len = recv_headers_[i].msg_len;
  }
  int total = 0;
  while (total < count) {
    int n = sendmmsg(fd_, &send_headers_[total], count - total, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // A peer that vanished (ECONNREFUSED from an earlier ICMP error) must not stall the
      // rest of the batch: skip the datagram at the head and go on.
      ++total;
      continue;
    }
    total += n;
  }
  for (int i = 0; i < count; ++i) {
    send_headers_[i].msg_hdr.msg_iov = &send_iovecs_[i];
    recv_iovecs_[i].iov_len = kMaxDatagram;
  }
  return total;
}

bool Flags::Parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.size() < 3 || arg.substr(0, 2) != "--") {
      std::fprintf(stderr, "unexpected argument '%s'\n", argv[i]);
      return false;
    }
    arg.remove_prefix(2);
    size_t equals = arg.find('=');
    if (equals != std::string_view::npos) {
      entries_.push_back({arg.substr(0, equals), arg.substr(equals + 1)});
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "--%.*s needs a value\n", static_cast<int>(arg.size()), arg.data());
      return false;
    }
    entries_.push_back({arg, argv[++i]});
  }
  return true;
}

const std::string_view* Flags::Find(std::string_view name) {
  const std::string_view* found = nullptr;
  // The last occurrence wins, as with most command-line tools.
  for (Entry& entry : entries_) {
    if (entry.name == name) {
      entry.used = true;
      found = &entry.value;
    }
  }
  return found;
}

bool Flags::GetInt(std::string_view name, int64_t min, int64_t max, int64_t* value) {
  const std::string_view* text = Find(name);
  if (text == nullptr) return true;
  int64_t parsed = 0;
  if (!ParseNumber(*text, &parsed) || parsed < min || parsed > max) {
    std::fprintf(stderr, "--%.*s: want an integer in [%lld, %lld], got '%.*s'\n",
                 static_cast<int>(name.size()), name.data(), static_cast<long long>(min),
                 static_cast<long long>(max), static_cast<int>(text->size()), text->data());
    return false;
  }
  *value = parsed;
  return true;
}

bool Flags::GetDouble(std::string_view name, double min, double max, double* value) {
  const std::string_view* text = Find(name);
  if (text == nullptr) return true;
  double parsed = 0;
  if (!ParseNumber(*text, &parsed) || !(parsed >= min && parsed <= max)) {
    std::fprintf(stderr, "--%.*s: want a number in [%g, %g], got '%.*s'\n",
                 static_cast<int>(name.size()), name.data(), min, max,
                 static_cast<int>(text->size()), text->data());
    return false;
  }
  *value = parsed;
  return true;
}

bool Flags::GetString(std::string_view name, std::string* value) {
  const std::string_view* text = Find(name);
  if (text != nullptr) *value = std::string(*text);
  return true;
}

bool Flags::CheckAllUsed() const {
  for (const Entry& entry : entries_) {
    if (!entry.used) {
      std::fprintf(stderr, "unknown flag --%.*s\n", static_cast<int>(entry.name.size()),
                   entry.name.data());
      return false;
    }
  }
  return true;
}

std::optional<double> StatCpuSeconds(const std::string& path) {
  std::ifstream file(path);
  std::string stat;
  if (!std::getline(file, stat)) return std::nullopt;
  // The command name (field 2) may hold spaces; fields are counted after its ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  const std::string_view rest = std::string_view(stat).substr(close + 1);
  uint64_t ticks[2] = {};
  int field = 2;
  size_t pos = 0;
  while (pos < rest.size() && field < 15) {
    while (pos < rest.size() && rest[pos] == ' ') ++pos;
    const size_t end = std::min(rest.find(' ', pos), rest.size());
    ++field;
    if (field == 14 || field == 15) {
      auto [ptr, ec] = std::from_chars(rest.data() + pos, rest.data() + end, ticks[field - 14]);
      if (ec != std::errc()) return std::nullopt;
    }
    pos = end;
  }
  if (field < 15) return std::nullopt;
  return static_cast<double>(ticks[0] + ticks[1]) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace lwm2md::bench
