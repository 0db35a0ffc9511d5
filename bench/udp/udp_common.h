#pragma once
// The batching UDP code shared by the load client (udp_load) and the raw echo server
// (udp_echo). Both move datagrams through the same recvmmsg/sendmmsg batches over
// preallocated buffers, so that the difference between lwm2md's rate and the echo rate is
// the server's own cost, not a difference in how the client talks to it.

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lwm2md::bench {

// Datagrams per recvmmsg/sendmmsg call.
inline constexpr int kBatch = 64;
// Receive and send buffer size; larger datagrams arrive truncated (MSG_TRUNC).
inline constexpr size_t kMaxDatagram = 2048;

// An IPv4 or IPv6 UDP address.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  // "127.0.0.1:5683" or "[::1]:5683"; nullopt when malformed.
  static std::optional<SocketAddress> Parse(std::string_view text);
  static SocketAddress FromSockaddr(const sockaddr* address, socklen_t length);

  int family() const { return storage.ss_family; }
  uint16_t port() const;
  // 127.0.0.0/8 or ::1.
  bool IsLoopback() const;
  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage); }
  std::string ToString() const;
};

// CLOCK_MONOTONIC in nanoseconds.
int64_t NowNs();

// Pins the calling thread to one CPU; a negative cpu leaves the affinity alone.
absl::Status PinToCpu(int cpu);

// A UDP socket with one batch of receive buffers and one batch of send buffers, all
// allocated when the socket is opened. Receive fills the receive batch; the send batch is
// staged datagram by datagram and handed to the kernel by Flush. Single-threaded.
class BatchSocket {
 public:
  // nonblocking: every call returns at once (the load client waits in epoll instead);
  // otherwise Receive blocks until at least one datagram arrives.
  static absl::StatusOr<std::unique_ptr<BatchSocket>> Open(int family, bool nonblocking);
  ~BatchSocket();
  BatchSocket(const BatchSocket&) = delete;
  BatchSocket& operator=(const BatchSocket&) = delete;

  absl::Status Bind(const SocketAddress& address);
  // A connected socket needs no destination per datagram, and the kernel drops datagrams
  // from anyone but the peer before they reach the receive batch.
  absl::Status Connect(const SocketAddress& peer);
  absl::StatusOr<SocketAddress> LocalAddress() const;
  int fd() const { return fd_; }

  // Fills the receive batch. Returns the number of datagrams (0 when none is waiting or a
  // signal interrupted the wait) or -1 with errno set. A blocking socket waits only for the
  // first datagram (MSG_WAITFORONE), then takes whatever else is already queued.
  int Receive();
  std::span<const uint8_t> received(int i) const {
    return {recv_buffers_[i].data(), recv_headers_[i].msg_len};
  }

  // The buffer for the next datagram to send, or an empty span when the batch is full.
  std::span<uint8_t> NextSendBuffer() {
    if (staged_ == kBatch) return {};
    return {send_buffers_[staged_].data(), kMaxDatagram};
  }
  // Stages the datagram written into NextSendBuffer(); to is null on a connected socket.
  void CommitSend(size_t length, const SocketAddress* to);
  int staged() const { return staged_; }
  // Hands the staged datagrams to the kernel in order and clears the batch. Returns how many
  // the kernel took; the rest (from that index on) were not sent, e.g. because the socket's
  // send buffer was full. Returns -1 with errno set when none was taken.
  int Flush();

  // Sends the first count datagrams of the receive batch back to their senders, straight
  // from the receive buffers. Returns what sendmmsg returned.
  int EchoReceived(int count);

 private:
  BatchSocket() = default;

  int fd_ = -1;
  int staged_ = 0;
  std::array<std::array<uint8_t, kMaxDatagram>, kBatch> recv_buffers_;
  std::array<std::array<uint8_t, kMaxDatagram>, kBatch> send_buffers_;
  std::array<sockaddr_storage, kBatch> recv_names_;
  std::array<sockaddr_storage, kBatch> send_names_;
  std::array<iovec, kBatch> recv_iovecs_;
  std::array<iovec, kBatch> send_iovecs_;
  std::array<mmsghdr, kBatch> recv_headers_;
  std::array<mmsghdr, kBatch> send_headers_;
};

// Command-line flags as "--name value" or "--name=value"; the tools parse argv by hand.
class Flags {
 public:
  // False, with a message on stderr, when an argument is not a flag or lacks its value.
  bool Parse(int argc, char** argv);
  // Each returns false, with a message on stderr naming the flag, when the value is given
  // but malformed or outside [min, max]; an absent flag leaves *value unchanged.
  bool GetInt(std::string_view name, int64_t min, int64_t max, int64_t* value);
  bool GetDouble(std::string_view name, double min, double max, double* value);
  bool GetString(std::string_view name, std::string* value);
  // False, with a message on stderr, when a flag was given that no Get* asked about.
  bool CheckAllUsed() const;

 private:
  const std::string_view* Find(std::string_view name);

  struct Entry {
    std::string_view name;
    std::string_view value;
    bool used = false;
  };
  std::vector<Entry> entries_;
};

// User + system CPU seconds from a proc(5) stat file (/proc/PID/stat or
// /proc/PID/task/TID/stat: fields 14 and 15); nullopt when unreadable.
std::optional<double> StatCpuSeconds(const std::string& path);
// User + system CPU seconds this process has used.
double SelfCpuSeconds();

}  // namespace lwm2md::bench
