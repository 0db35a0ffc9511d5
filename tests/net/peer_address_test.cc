#include "net/peer_address.h"

#include <arpa/inet.h>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash_testing.h"
#include "gtest/gtest.h"

namespace lwm2md::net {
namespace {

TEST(PeerAddressTest, DefaultIsEmpty) {
  PeerAddress empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.family(), AF_UNSPEC);
  EXPECT_EQ(empty.port(), 0);
  EXPECT_EQ(empty, PeerAddress());
}

TEST(PeerAddressTest, ParseAndFormatIpv4) {
  std::optional<PeerAddress> a = PeerAddress::Parse("1.2.3.4:34221");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->family(), AF_INET);
  EXPECT_EQ(a->port(), 34221);
  EXPECT_EQ(a->length(), sizeof(sockaddr_in));
  EXPECT_EQ(a->ToString(), "1.2.3.4:34221");
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(a->sockaddr_ptr());
  EXPECT_EQ(v4->sin_addr.s_addr, htonl(0x01020304));
  EXPECT_EQ(PeerAddress::Parse("0.0.0.0:0")->ToString(), "0.0.0.0:0");
  EXPECT_EQ(PeerAddress::Parse("255.255.255.255:65535")->port(), 65535);
}

TEST(PeerAddressTest, ParseAndFormatIpv6) {
  std::optional<PeerAddress> a = PeerAddress::Parse("[2001:db8::1]:5683");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->family(), AF_INET6);
  EXPECT_EQ(a->port(), 5683);
  EXPECT_EQ(a->length(), sizeof(sockaddr_in6));
  EXPECT_EQ(a->ToString(), "[2001:db8::1]:5683");
  EXPECT_EQ(PeerAddress::Parse("[::1]:5683")->ToString(), "[::1]:5683");
  // Formatting is canonical (RFC 5952), whatever the input spelling.
  EXPECT_EQ(PeerAddress::Parse("[2001:0DB8:0:0:0:0:0:01]:1")->ToString(), "[2001:db8::1]:1");
  EXPECT_EQ(PeerAddress::Parse("[::ffff:1.2.3.4]:7")->ToString(), "[::ffff:1.2.3.4]:7");
  EXPECT_EQ(PeerAddress::Parse("[fe80::1%3]:5683")->ToString(), "[fe80::1%3]:5683");
}

TEST(PeerAddressTest, RejectsMalformed) {
  for (const char* text :
       {"", ":", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:12a",
        "1.2.3:5683", "1.2.3.4.5:5683", "::1:5683", "[::1]", "[::1]:", "[::1:5683", "::1]:5683",
        "[1.2.3.4]:5683", "[::g]:1", "host:5683", "[]:5683", "1.2.3.4:+80", " 1.2.3.4:80",
        "[fe80::1%]:1", "[fe80::1%no-such-interface-x]:1"}) {
    EXPECT_FALSE(PeerAddress::Parse(text).has_value()) << text;
  }
}

TEST(PeerAddressTest, FromHostPort) {
  EXPECT_EQ(PeerAddress::FromHostPort("0.0.0.0", 5683)->ToString(), "0.0.0.0:5683");
  EXPECT_EQ(PeerAddress::FromHostPort("::", 5684)->ToString(), "[::]:5684");
  EXPECT_EQ(PeerAddress::FromHostPort("[::1]", 1)->ToString(), "[::1]:1");
  EXPECT_EQ(PeerAddress::FromHostPort("127.0.0.1", 0)->port(), 0);
  EXPECT_FALSE(PeerAddress::FromHostPort("", 1).has_value());
  EXPECT_FALSE(PeerAddress::FromHostPort("localhost", 1).has_value());
  EXPECT_FALSE(PeerAddress::FromHostPort("127.0.0.1:80", 1).has_value());
}

TEST(PeerAddressTest, FromSockaddr) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(9);
  v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  PeerAddress a = PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&v4), sizeof(v4));
  EXPECT_EQ(a.ToString(), "127.0.0.1:9");

  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(10);
  v6.sin6_addr = in6addr_loopback;
  v6.sin6_flowinfo = 77;
  PeerAddress b = PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&v6), sizeof(v6));
  EXPECT_EQ(b.ToString(), "[::1]:10");
  EXPECT_EQ(b, *PeerAddress::Parse("[::1]:10"));

  EXPECT_TRUE(PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&v6), 8).empty());
  EXPECT_TRUE(PeerAddress::FromSockaddr(nullptr, 0).empty());
  sockaddr unix_address{};
  unix_address.sa_family = AF_UNIX;
  EXPECT_TRUE(PeerAddress::FromSockaddr(&unix_address, sizeof(unix_address)).empty());
}

TEST(PeerAddressTest, Equality) {
  PeerAddress a = *PeerAddress::Parse("10.0.0.1:5683");
  EXPECT_EQ(a, *PeerAddress::Parse("10.0.0.1:5683"));
  EXPECT_FALSE(a == *PeerAddress::Parse("10.0.0.1:5684"));
  EXPECT_FALSE(a == *PeerAddress::Parse("10.0.0.2:5683"));
  // Different families are different peers, even for a v4-mapped address.
  EXPECT_FALSE(a == *PeerAddress::Parse("[::ffff:10.0.0.1]:5683"));
  EXPECT_FALSE(*PeerAddress::Parse("[fe80::1%1]:1") == *PeerAddress::Parse("[fe80::1%2]:1"));
}

TEST(PeerAddressTest, Hashing) {
  EXPECT_TRUE(absl::VerifyTypeImplementsAbslHashCorrectly({
      PeerAddress(),
      *PeerAddress::Parse("1.2.3.4:1"),
      *PeerAddress::Parse("1.2.3.4:2"),
      *PeerAddress::Parse("4.3.2.1:1"),
      *PeerAddress::Parse("[::1]:1"),
      *PeerAddress::Parse("[::1]:2"),
      *PeerAddress::Parse("[2001:db8::1]:1"),
      *PeerAddress::Parse("[fe80::1%2]:1"),
  }));

  absl::flat_hash_set<PeerAddress> set;
  for (int port = 1; port <= 1000; ++port) {
    set.insert(*PeerAddress::FromHostPort("192.0.2.1", static_cast<uint16_t>(port)));
    set.insert(*PeerAddress::FromHostPort("2001:db8::1", static_cast<uint16_t>(port)));
  }
  EXPECT_EQ(set.size(), 2000u);
  EXPECT_TRUE(set.contains(*PeerAddress::Parse("192.0.2.1:500")));
  EXPECT_TRUE(set.contains(*PeerAddress::Parse("[2001:db8::1]:1000")));
  EXPECT_FALSE(set.contains(*PeerAddress::Parse("192.0.2.1:1001")));
}

}  // namespace
}  // namespace lwm2md::net
