#include "lwm2m/endpoint_directory.h"

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace lwm2md::lwm2m {
namespace {

DirectoryEntry Entry(std::string location, Presence presence = Presence::kConnected) {
  DirectoryEntry entry;
  entry.location = std::move(location);
  entry.presence = presence;
  return entry;
}

TEST(EndpointDirectoryTest, PutReplacesAndRemoveNeedsTheSameLocation) {
  EndpointDirectory directory;
  directory.Put("dev", Entry("/rd/a"));
  directory.Put("dev", Entry("/rd/b"));
  ASSERT_TRUE(directory.Lookup("dev").has_value());
  EXPECT_EQ(directory.Lookup("dev")->location, "/rd/b");
  // A late expiry of the replaced registration must not remove its successor.
  EXPECT_FALSE(directory.Remove("dev", "/rd/a"));
  EXPECT_TRUE(directory.Lookup("dev").has_value());
  EXPECT_TRUE(directory.Remove("dev", "/rd/b"));
  EXPECT_FALSE(directory.Lookup("dev").has_value());
  EXPECT_EQ(directory.size(), 0u);
}

TEST(EndpointDirectoryTest, PresenceCountsFollowEveryChange) {
  EndpointDirectory directory;
  auto counts = [&] { return directory.CountByPresence(); };
  directory.Put("a", Entry("/rd/1"));
  directory.Put("b", Entry("/rd/2"));
  EXPECT_EQ(counts()[static_cast<int>(Presence::kConnected)], 2u);
  directory.Modify("a", [](DirectoryEntry& e) { e.presence = Presence::kMissing; });
  EXPECT_EQ(counts()[static_cast<int>(Presence::kConnected)], 1u);
  EXPECT_EQ(counts()[static_cast<int>(Presence::kMissing)], 1u);
  directory.Put("a", Entry("/rd/3"));  // re-registered: connected again
  EXPECT_EQ(counts()[static_cast<int>(Presence::kConnected)], 2u);
  EXPECT_EQ(counts()[static_cast<int>(Presence::kMissing)], 0u);
  directory.Remove("b", "/rd/2");
  EXPECT_EQ(counts()[static_cast<int>(Presence::kConnected)], 1u);
  EXPECT_FALSE(directory.Modify("nobody", [](DirectoryEntry&) {}));
}

DirectoryEntry Full() {
  DirectoryEntry entry;
  entry.shard = 3;
  entry.address = *net::PeerAddress::Parse("[2001:db8::7]:5683");
  entry.listener = 2;
  entry.location = "/rd/k3x9a0qz";
  entry.presence = Presence::kMissing;
  entry.registered_at = absl::FromUnixNanos(1700000000123456789);
  entry.last_seen = absl::FromUnixNanos(1700000100987654321);
  entry.lifetime_seconds = 4000000000u;
  entry.version = "1.01";
  entry.binding = "UQS";
  return entry;
}

void ExpectSame(const DirectoryEntry& a, const DirectoryEntry& b) {
  EXPECT_EQ(a.shard, b.shard);
  EXPECT_EQ(a.address, b.address);
  EXPECT_EQ(a.listener, b.listener);
  EXPECT_EQ(a.location, b.location);
  EXPECT_EQ(a.presence, b.presence);
  EXPECT_EQ(a.registered_at, b.registered_at);
  EXPECT_EQ(a.last_seen, b.last_seen);
  EXPECT_EQ(a.lifetime_seconds, b.lifetime_seconds);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.binding, b.binding);
}

// The directory keeps a compact record per endpoint; every field must come back as it went in.
TEST(EndpointDirectoryTest, LookupReturnsEveryFieldAsPut) {
  EndpointDirectory directory;
  const std::string long_name(255, 'n');
  directory.Put(long_name, Full());
  ASSERT_TRUE(directory.Lookup(long_name).has_value());
  ExpectSame(*directory.Lookup(long_name), Full());
  EXPECT_FALSE(directory.Lookup(std::string(254, 'n')).has_value());

  DirectoryEntry plain;  // defaults, and a location without the /rd/ prefix
  plain.location = "elsewhere";
  directory.Put("p", plain);
  ExpectSame(*directory.Lookup("p"), plain);
  EXPECT_FALSE(directory.Remove("p", "/rd/elsewhere"));
  EXPECT_TRUE(directory.Remove("p", "elsewhere"));
  EXPECT_FALSE(directory.Remove(long_name, "k3x9a0qz"));  // the id alone is not the location
  EXPECT_TRUE(directory.Remove(long_name, "/rd/k3x9a0qz"));
}

TEST(EndpointDirectoryTest, ModifyKeepsOtherFieldsWhetherTheTextGrowsOrNot) {
  // Text fields are assigned whole strings, not literals: GCC 12 at -O3 reports a false
  // -Wrestrict on a short literal assigned over a longer string.
  EndpointDirectory directory;
  directory.Put("dev", Full());
  DirectoryEntry expected = Full();
  // Same text size: rewritten in place.
  directory.Modify("dev", [](DirectoryEntry& e) {
    e.presence = Presence::kConnected;
    e.binding = std::string("UQT");
    e.last_seen += absl::Seconds(5);
  });
  expected.presence = Presence::kConnected;
  expected.binding = std::string("UQT");
  expected.last_seen += absl::Seconds(5);
  ExpectSame(*directory.Lookup("dev"), expected);
  // Longer and shorter text: a new record under the same name.
  directory.Modify("dev", [](DirectoryEntry& e) { e.binding = std::string("UQSTN"); });
  expected.binding = std::string("UQSTN");
  ExpectSame(*directory.Lookup("dev"), expected);
  directory.Modify("dev", [](DirectoryEntry& e) {
    e.binding = std::string("U");
    e.location = std::string("/rd/x");
  });
  expected.binding = std::string("U");
  expected.location = std::string("/rd/x");
  ExpectSame(*directory.Lookup("dev"), expected);
  EXPECT_EQ(directory.size(), 1u);
  EXPECT_EQ(directory.CountByPresence()[static_cast<int>(Presence::kConnected)], 1u);
  EXPECT_TRUE(directory.Remove("dev", "/rd/x"));
}

TEST(EndpointDirectoryTest, ConcurrentWritersKeepCountsExact) {
  EndpointDirectory directory;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&directory, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string name = "ep-" + std::to_string(t) + "-" + std::to_string(i);
        directory.Put(name, Entry("/rd/" + name));
        if (i % 2 == 0) {
          directory.Modify(name, [](DirectoryEntry& e) { e.presence = Presence::kMissing; });
        }
        if (i % 4 == 0) directory.Remove(name, "/rd/" + name);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  // Per thread: 2000 put, 1000 made missing, 500 of those removed.
  EXPECT_EQ(directory.size(), 4u * 1500);
  EXPECT_EQ(directory.CountByPresence()[static_cast<int>(Presence::kConnected)], 4u * 1000);
  EXPECT_EQ(directory.CountByPresence()[static_cast<int>(Presence::kMissing)], 4u * 500);
}

}  // namespace
}  // namespace lwm2md::lwm2m
