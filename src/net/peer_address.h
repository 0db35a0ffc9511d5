#pragma once
// An IPv4 or IPv6 UDP peer, small enough to keep per registration (28 bytes), comparable
// and hashable so that it can key per-shard tables.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace lwm2md::net {

class PeerAddress {
 public:
  PeerAddress() { std::memset(&storage_, 0, sizeof(storage_)); }
  // Accepts AF_INET and AF_INET6; anything else yields an empty (family AF_UNSPEC) address.
  static PeerAddress FromSockaddr(const sockaddr* address, socklen_t length);
  // "1.2.3.4:5683", "[::1]:5683"; nullopt when malformed.
  static std::optional<PeerAddress> Parse(std::string_view text);
  // A host without a port ("0.0.0.0", "::", "127.0.0.1") plus a port.
  static std::optional<PeerAddress> FromHostPort(std::string_view host, uint16_t port);

  int family() const { return storage_.sin6_family; }
  bool empty() const { return family() == AF_UNSPEC; }
  uint16_t port() const;
  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t length() const {
    return family() == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  }
  // "1.2.3.4:34221" or "[2001:db8::1]:5683", as the register event's remoteAddr shows it.
  std::string ToString() const;

  bool operator==(const PeerAddress& other) const;
  template <typename H>
  friend H AbslHashValue(H h, const PeerAddress& a) {
    if (a.family() == AF_INET) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a.storage_);
      return H::combine(std::move(h), v4->sin_addr.s_addr, v4->sin_port);
    }
    return H::combine(std::move(h),
                      std::string_view(reinterpret_cast<const char*>(&a.storage_.sin6_addr), 16),
                      a.storage_.sin6_port, a.storage_.sin6_scope_id);
  }

 private:
  sockaddr_in6 storage_;  // also holds a sockaddr_in (it is the larger of the two)
};

}  // namespace lwm2md::net
