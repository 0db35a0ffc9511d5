#include "lwm2m/object_links_pool.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "lwm2m/registration.h"

namespace lwm2md::lwm2m {
namespace {

ObjectLinks Links(std::vector<uint16_t> objects, std::string version = "") {
  ObjectLinks links;
  links.content_formats = {11543};
  for (uint16_t object : objects) links.links.push_back({object, 0, version});
  return links;
}

TEST(ObjectLinksPoolTest, EqualListsShareOneCopy) {
  ObjectLinksPool pool;
  std::shared_ptr<const ObjectLinks> a = pool.Intern(Links({1, 3, 4, 5}));
  std::shared_ptr<const ObjectLinks> b = pool.Intern(Links({1, 3, 4, 5}));
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(*a, Links({1, 3, 4, 5}));
  EXPECT_EQ(pool.size(), 1u);
}

TEST(ObjectLinksPoolTest, AnyDifferenceKeepsListsApart) {
  ObjectLinksPool pool;
  std::shared_ptr<const ObjectLinks> base = pool.Intern(Links({1, 3}));
  EXPECT_NE(pool.Intern(Links({1, 3, 5})).get(), base.get());
  EXPECT_NE(pool.Intern(Links({1, 3}, "1.1")).get(), base.get());
  ObjectLinks other_root = Links({1, 3});
  other_root.alternate_path = "/lwm2m";
  EXPECT_NE(pool.Intern(other_root).get(), base.get());
  ObjectLinks other_formats = Links({1, 3});
  other_formats.content_formats = {60, 11543};
  EXPECT_NE(pool.Intern(other_formats).get(), base.get());
  ObjectLinks no_instance = Links({1, 3});
  no_instance.links[1].instance_id.reset();
  EXPECT_NE(pool.Intern(no_instance).get(), base.get());
  EXPECT_EQ(pool.Intern(Links({1, 3})).get(), base.get());
}

TEST(ObjectLinksPoolTest, ListsNobodyHoldsAreDropped) {
  ObjectLinksPool pool;
  std::shared_ptr<const ObjectLinks> kept = pool.Intern(Links({1, 3}));
  for (uint16_t i = 0; i < 1000; ++i) pool.Intern(Links({1, static_cast<uint16_t>(100 + i)}));
  // Only lists in use, and those pooled since the last sweep, remain.
  EXPECT_LT(pool.size(), 200u);
  EXPECT_EQ(pool.Intern(Links({1, 3})).get(), kept.get());
}

TEST(ObjectLinksPoolTest, RegistrationsStartWithAnEmptyList) {
  Registration registration;
  ASSERT_NE(registration.objects, nullptr);
  EXPECT_EQ(registration.objects->alternate_path, "/");
  EXPECT_TRUE(registration.objects->links.empty());
}

// The stored form is unchanged: a registration read back holds an equal list.
TEST(ObjectLinksPoolTest, SerializedRegistrationRoundTrips) {
  ObjectLinksPool pool;
  Registration registration;
  registration.endpoint = "dev-1";
  registration.id = "abcdefgh";
  registration.address = *net::PeerAddress::Parse("10.0.0.1:5683");
  registration.objects = pool.Intern(Links({1, 3, 4, 5}, "1.1"));
  absl::StatusOr<Registration> parsed = Registration::Parse(registration.Serialize());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed->objects, *registration.objects);
  EXPECT_EQ(pool.Intern(parsed->objects).get(), registration.objects.get());
}

}  // namespace
}  // namespace lwm2md::lwm2m
