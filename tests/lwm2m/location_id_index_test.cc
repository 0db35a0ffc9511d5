#include "lwm2m/location_id_index.h"

#include <string>

#include "gtest/gtest.h"

namespace lwm2md::lwm2m {
namespace {

TEST(LocationIdIndexTest, PacksServerIdsAndNothingElse) {
  EXPECT_TRUE(LocationIdIndex::Pack("a").has_value());
  EXPECT_TRUE(LocationIdIndex::Pack("k3x9a0qz").has_value());
  EXPECT_TRUE(LocationIdIndex::Pack("99999999").has_value());
  EXPECT_FALSE(LocationIdIndex::Pack("").has_value());
  EXPECT_FALSE(LocationIdIndex::Pack("k3x9a0qz1").has_value());  // too long
  EXPECT_FALSE(LocationIdIndex::Pack("K3x9a0qz").has_value());   // upper case
  EXPECT_FALSE(LocationIdIndex::Pack("ab-c").has_value());
  // Lengths differ in the packed form: no character packs to 0.
  EXPECT_NE(LocationIdIndex::Pack("a"), LocationIdIndex::Pack("aa"));
  EXPECT_NE(LocationIdIndex::Pack("0"), LocationIdIndex::Pack("a0"));
  EXPECT_NE(LocationIdIndex::Pack("z"), LocationIdIndex::Pack("0"));
}

TEST(LocationIdIndexTest, PutFindReplaceErase) {
  LocationIdIndex index;
  EXPECT_FALSE(index.Find("abcdefgh").has_value());
  index.Put("abcdefgh", 3);
  index.Put("abcdefg", 65535);
  index.Put("not/packed", 7);
  index.Put("ABCDEFGH", 9);
  EXPECT_EQ(index.size(), 4u);
  EXPECT_EQ(index.Find("abcdefgh"), 3);
  EXPECT_EQ(index.Find("abcdefg"), 65535);
  EXPECT_EQ(index.Find("not/packed"), 7);
  EXPECT_EQ(index.Find("ABCDEFGH"), 9);
  EXPECT_FALSE(index.Find("abcdefgi").has_value());
  // A registration that moves is indexed again under its new shard.
  index.Put("abcdefgh", 0);
  index.Put("not/packed", 1);
  EXPECT_EQ(index.size(), 4u);
  EXPECT_EQ(index.Find("abcdefgh"), 0);
  EXPECT_EQ(index.Find("not/packed"), 1);
  index.Erase("abcdefgh");
  index.Erase("not/packed");
  index.Erase("never-there");
  EXPECT_FALSE(index.Find("abcdefgh").has_value());
  EXPECT_FALSE(index.Find("not/packed").has_value());
  EXPECT_EQ(index.Find("abcdefg"), 65535);
  EXPECT_EQ(index.size(), 2u);
}

TEST(LocationIdIndexTest, ManyIds) {
  LocationIdIndex index;
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  auto id_of = [](int i) {
    std::string id(8, 'a');
    for (char& c : id) {
      c = kAlphabet[i % 36];
      i /= 36;
    }
    return id;
  };
  for (int i = 0; i < 5000; ++i) index.Put(id_of(i * 7919), i % 4);
  EXPECT_EQ(index.size(), 5000u);
  for (int i = 0; i < 5000; ++i) ASSERT_EQ(index.Find(id_of(i * 7919)), i % 4) << i;
}

}  // namespace
}  // namespace lwm2md::lwm2m
