#include "lwm2m/registration.h"

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace lwm2md::lwm2m {
namespace {

TEST(VersionTextTest, KeepsTheTextAsSent) {
  EXPECT_EQ(VersionText().view(), "1.0");
  EXPECT_EQ(VersionText("1.1").view(), "1.1");
  EXPECT_EQ(VersionText("001.001").view(), "001.001");  // the longest lwm2m= accepts
  EXPECT_TRUE(VersionText::Fits("001.001"));
  EXPECT_FALSE(VersionText::Fits("0001.001"));
  EXPECT_LE(sizeof(VersionText), 8u);
}

TEST(RareStringTest, EmptyHoldsNothingAndCopiesAreDeep) {
  RareString none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.view(), "");
  EXPECT_EQ(sizeof(RareString), sizeof(void*));
  RareString sms;
  sms = std::string_view("+4915112345");
  EXPECT_FALSE(sms.empty());
  RareString copy = sms;
  sms = std::string_view("");
  EXPECT_TRUE(sms.empty());
  EXPECT_EQ(copy.view(), "+4915112345");
  RareString moved = std::move(copy);
  EXPECT_EQ(moved.view(), "+4915112345");
  copy = moved;
  EXPECT_EQ(copy.view(), "+4915112345");
}

TEST(CompactTimeTest, KeepsNanoseconds) {
  const absl::Time t = absl::FromUnixNanos(1700000000123456789);
  EXPECT_EQ(CompactTime(t).time(), t);
  EXPECT_EQ(CompactTime().time(), absl::Time());
  EXPECT_EQ(sizeof(CompactTime), 8u);
}

Registration Sample() {
  Registration r;
  r.endpoint = "urn:imei:490154203237518";
  r.id = "k3x9a0qz";
  r.lifetime_seconds = 600;
  r.version = VersionText("1.01");
  r.binding = binding::kUdp | binding::kSms;
  r.queue_mode = true;
  r.sms_number = std::string_view("+4915112345");
  ObjectLinks objects;
  objects.links.push_back({.object_id = 3, .instance_id = 0, .version = {}});
  r.objects = std::make_shared<const ObjectLinks>(std::move(objects));
  r.address = *net::PeerAddress::Parse("192.0.2.7:5683");
  r.listener = 2;
  r.credentials = CredentialsKind::kPrimary;
  r.registered_at = absl::FromUnixMillis(1700000000123);
  r.updated_at = absl::FromUnixMillis(1700000060456);
  r.last_seen = absl::FromUnixMillis(1700000090789);
  return r;
}

// The stored form and the event payload are what they were before the fields were narrowed.
TEST(RegistrationTest, StoredFormAndPayloadUnchanged) {
  const Registration r = Sample();
  EXPECT_EQ(r.Serialize(),
            R"({"ep":"urn:imei:490154203237518","id":"k3x9a0qz","lt":600,"ver":"1.01","b":5,)"
            R"("q":true,"sms":"+4915112345","alt":"/","ct":[],"links":[{"o":3,"i":0}],)"
            R"("addr":"192.0.2.7:5683","l":2,"cred":"primary","reg":1700000000123,)"
            R"("upd":1700000060456,"seen":1700000090789})");
  EXPECT_EQ(r.EventPayload(),
            R"({"binding":"UQS","credentials":"primary","remoteAddr":"192.0.2.7:5683",)"
            R"("version":"1.01","discovery":{"children":{"3":{"children":{"0":{}}}}}})");
  absl::StatusOr<Registration> parsed = Registration::Parse(r.Serialize());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Serialize(), r.Serialize());
  EXPECT_EQ(parsed->sms_number.view(), "+4915112345");
  EXPECT_EQ(parsed->last_seen.time(), r.last_seen.time());

  Registration plain = Sample();
  plain.sms_number = std::string_view();
  absl::StatusOr<Registration> reparsed = Registration::Parse(plain.Serialize());
  ASSERT_TRUE(reparsed.ok());
  EXPECT_TRUE(reparsed->sms_number.empty());
  EXPECT_NE(plain.Serialize().find(R"("sms":"")"), std::string::npos);
}

TEST(RegistrationTest, AVersionNoClientCanSendIsCorrupt) {
  std::string stored = Sample().Serialize();
  stored.replace(stored.find("\"1.01\""), 6, "\"1.000001\"");
  EXPECT_FALSE(Registration::Parse(stored).ok());
}

}  // namespace
}  // namespace lwm2md::lwm2m
