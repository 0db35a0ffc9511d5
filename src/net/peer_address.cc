#include "net/peer_address.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <charconv>
#include <cstdio>

namespace lwm2md::net {
namespace {

std::optional<uint16_t> ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

// The zone of a link-local address ("fe80::1%eth0" or "fe80::1%2"), as getaddrinfo accepts it.
std::optional<uint32_t> ParseScope(std::string_view zone) {
  if (zone.empty() || zone.size() >= IF_NAMESIZE) return std::nullopt;
  uint32_t index = 0;
  auto [end, error] = std::from_chars(zone.data(), zone.data() + zone.size(), index);
  if (error == std::errc() && end == zone.data() + zone.size()) return index;
  char name[IF_NAMESIZE] = {};
  zone.copy(name, zone.size());
  index = if_nametoindex(name);
  if (index == 0) return std::nullopt;
  return index;
}

}  // namespace

PeerAddress PeerAddress::FromSockaddr(const sockaddr* address, socklen_t length) {
  PeerAddress result;
  if (address == nullptr) return result;
  if (address->sa_family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    std::memcpy(&result.storage_, address, sizeof(sockaddr_in));
  } else if (address->sa_family == AF_INET6 &&
             length >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    std::memcpy(&result.storage_, address, sizeof(sockaddr_in6));
    // The kernel never sets it on receive; clearing it keeps equality and hashing exact.
    result.storage_.sin6_flowinfo = 0;
  }
  return result;
}

std::optional<PeerAddress> PeerAddress::FromHostPort(std::string_view host, uint16_t port) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host.size() >= INET6_ADDRSTRLEN + IF_NAMESIZE) return std::nullopt;
  PeerAddress result;
  if (host.find(':') == std::string_view::npos) {
    char text[INET_ADDRSTRLEN] = {};
    if (host.size() >= sizeof(text)) return std::nullopt;
    host.copy(text, host.size());
    auto* v4 = reinterpret_cast<sockaddr_in*>(&result.storage_);
    if (inet_pton(AF_INET, text, &v4->sin_addr) != 1) return std::nullopt;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return result;
  }
  uint32_t scope = 0;
  if (size_t percent = host.find('%'); percent != std::string_view::npos) {
    std::optional<uint32_t> parsed = ParseScope(host.substr(percent + 1));
    if (!parsed) return std::nullopt;
    scope = *parsed;
    host = host.substr(0, percent);
  }
  char text[INET6_ADDRSTRLEN] = {};
  if (host.size() >= sizeof(text)) return std::nullopt;
  host.copy(text, host.size());
  if (inet_pton(AF_INET6, text, &result.storage_.sin6_addr) != 1) return std::nullopt;
  result.storage_.sin6_family = AF_INET6;
  result.storage_.sin6_port = htons(port);
  result.storage_.sin6_scope_id = scope;
  return result;
}

std::optional<PeerAddress> PeerAddress::Parse(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  std::optional<uint16_t> port = ParsePort(text.substr(colon + 1));
  if (!port) return std::nullopt;
  if (host.find(':') != std::string_view::npos) {
    // An IPv6 host must be bracketed, or "::1:5683" would be ambiguous.
    if (host.size() < 2 || host.front() != '[' || host.back() != ']') return std::nullopt;
  } else if (!host.empty() && host.front() == '[') {
    return std::nullopt;
  }
  return FromHostPort(host, *port);
}

uint16_t PeerAddress::port() const {
  if (family() == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  }
  if (family() == AF_INET6) return ntohs(storage_.sin6_port);
  return 0;
}

std::string PeerAddress::ToString() const {
  char host[INET6_ADDRSTRLEN] = {};
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 16];
  if (family() == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage_);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
    std::snprintf(text, sizeof(text), "%s:%u", host, unsigned{port()});
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &storage_.sin6_addr, host, sizeof(host));
    if (storage_.sin6_scope_id != 0) {
      std::snprintf(text, sizeof(text), "[%s%%%u]:%u", host, unsigned{storage_.sin6_scope_id},
                    unsigned{port()});
    } else {
      std::snprintf(text, sizeof(text), "[%s]:%u", host, unsigned{port()});
    }
  } else {
    return "(none)";
  }
  return text;
}

bool PeerAddress::operator==(const PeerAddress& other) const {
  if (family() != other.family()) return false;
  if (family() == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&storage_);
    const auto* b = reinterpret_cast<const sockaddr_in*>(&other.storage_);
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
  }
  if (family() == AF_INET6) {
    return storage_.sin6_port == other.storage_.sin6_port &&
           storage_.sin6_scope_id == other.storage_.sin6_scope_id &&
           std::memcmp(&storage_.sin6_addr, &other.storage_.sin6_addr, 16) == 0;
  }
  return true;
}

}  // namespace lwm2md::net
