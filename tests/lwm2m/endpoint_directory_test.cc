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
